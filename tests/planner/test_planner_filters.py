"""apply_filters: every level, every sync_type, patterns, and what is reported as skipped."""

from __future__ import annotations

import pytest

from planner.config import (
    Filtering,
    ItemFilter,
    SessionTypeFilter,
    SyncType,
    TypedFilter,
    loads_config,
)
from planner.filters import apply_filters
from planner.inventory import (
    Assessor,
    Experiment,
    FileEntry,
    Inventory,
    Resource,
    Scan,
    Subject,
)
from planner.plan import Level

MR, CT, PET, QC = "xnat:mrSessionData", "xnat:ctSessionData", "xnat:petSessionData", "xnat:qcData"


def res(label: str, n: int = 2) -> Resource:
    return Resource(label, files=tuple(FileEntry(f"f{i}.dcm", 10 + i, f"d{i}") for i in range(n)))


def scan(sid: str, stype: str, labels=("DICOM", "SNAPSHOTS")) -> Scan:
    return Scan(id=sid, type=stype, resources={lb: res(lb) for lb in labels})


def session(label: str, xsi: str, scans: list[Scan], resources=(), assessors=()) -> Experiment:
    return Experiment(
        label=label,
        xsi_type=xsi,
        subject_label="S1",
        scans={s.id: s for s in scans},
        resources={lb: res(lb) for lb in resources},
        assessors={a.label: a for a in assessors},
    )


def inventory() -> Inventory:
    mr = session(
        "S1_MR",
        MR,
        [scan("1", "LOCALIZER"), scan("2", "T1_MPRAGE"), scan("3", "T1w"), scan("4", "FLAIR")],
        resources=("NOTES",),
        assessors=(
            Assessor("S1_MR_QC", xsi_type="xnat:qcAssessmentData"),
            Assessor("S1_MR_FS", xsi_type="fs:fsData"),
        ),
    )
    ct = session("S1_CT", CT, [scan("1", "HEAD"), scan("2", "")])
    pet = session("S1_PET", PET, [scan("1", "PET_AC")])
    form = Experiment(label="S1_FORM", xsi_type=QC, is_imaging=False, resources={"X": res("X")})
    s1 = Subject(
        "S1",
        resources={"CONSENT": res("CONSENT"), "OTHER": res("OTHER")},
        experiments={e.label: e for e in (mr, ct, pet, form)},
    )
    s2 = Subject("S2", experiments={"S2_MR": session("S2_MR", MR, [scan("1", "T2")])})
    return Inventory(
        server_url="http://src",
        project="P",
        resources={"PROTOCOL": res("PROTOCOL"), "SCRATCH": res("SCRATCH")},
        subjects={"S1": s1, "S2": s2},
    )


def cfg(yaml_text: str) -> Filtering:
    return loads_config(yaml_text).filtering


def exps(inv: Inventory, subject: str = "S1") -> set[str]:
    return set(inv.subjects[subject].experiments)


def test_default_keeps_everything_and_reports_nothing():
    inv = inventory()
    out = apply_filters(inv, Filtering())
    assert out.skipped == ()
    assert out.inventory.content_dict() == inv.content_dict()


def test_all_with_explicit_noop_entries_keeps_content():
    inv = inventory()
    f = Filtering(imaging_sessions=TypedFilter(SyncType.ALL, (SessionTypeFilter(MR),)))
    out = apply_filters(inv, f)
    assert out.skipped == ()
    assert out.inventory.fingerprint() == inv.fingerprint()
    # untouched experiments are the very same objects (no copying)
    assert out.inventory.subjects["S1"] is inv.subjects["S1"]


def test_project_and_subject_resources():
    out = apply_filters(
        inventory(),
        cfg(
            "filtering:\n"
            "  project_resources: {sync_type: exclude, items: [SCRATCH]}\n"
            "  subject_resources: {sync_type: include, items: [CONS*]}\n"
        ),
    )
    inv = out.inventory
    assert set(inv.resources) == {"PROTOCOL"}
    assert set(inv.subjects["S1"].resources) == {"CONSENT"}
    assert exps(inv) == {"S1_MR", "S1_CT", "S1_PET", "S1_FORM"}
    assert set(out.skipped) == {
        (
            "@project/resources/SCRATCH",
            Level.RESOURCE,
            "filter: project_resources excludes SCRATCH",
        ),
        ("S1/resources/OTHER", Level.RESOURCE, "filter: subject_resources excludes OTHER"),
    }


def test_imaging_sessions_none_keeps_subject_assessors_and_subjects():
    out = apply_filters(inventory(), cfg("filtering:\n  imaging_sessions: {sync_type: none}\n"))
    assert exps(out.inventory) == {"S1_FORM"}
    assert out.inventory.subjects["S2"].experiments == {}  # subject kept, empty
    assert ("S1/S1_CT", Level.EXPERIMENT, f"filter: imaging_sessions excludes {CT}") in (
        out.skipped
    )
    assert len(out.skipped) == 4  # highest level only: no scans listed
    assert all(level is Level.EXPERIMENT for _, level, _ in out.skipped)


def test_include_only_listed_types():
    out = apply_filters(
        inventory(),
        cfg(
            "filtering:\n  imaging_sessions:\n    sync_type: include\n    xsi_types: [" + MR + "]\n"
        ),
    )
    assert exps(out.inventory) == {"S1_MR", "S1_FORM"}
    assert set(out.inventory.subjects["S2"].experiments) == {"S2_MR"}
    # the listed type without nested filters keeps all its content
    mr = out.inventory.subjects["S1"].experiments["S1_MR"]
    assert set(mr.scans) == {"1", "2", "3", "4"}
    assert set(mr.assessors) == {"S1_MR_QC", "S1_MR_FS"} and set(mr.resources) == {"NOTES"}
    assert all(set(sc.resources) == {"DICOM", "SNAPSHOTS"} for sc in mr.scans.values())
    assert {a for a, _, _ in out.skipped} == {"S1/S1_CT", "S1/S1_PET"}


def test_exclude_keeps_the_rest_with_all_content():
    inv = inventory()
    out = apply_filters(
        inv,
        cfg(
            "filtering:\n  imaging_sessions:\n    sync_type: exclude\n    xsi_types: [" + CT + "]\n"
        ),
    )
    assert exps(out.inventory) == {"S1_MR", "S1_PET", "S1_FORM"}
    kept = out.inventory.subjects["S1"].experiments
    assert kept["S1_MR"] is inv.subjects["S1"].experiments["S1_MR"]
    assert set(kept["S1_MR"].assessors) == {"S1_MR_QC", "S1_MR_FS"}
    assert out.skipped == (
        ("S1/S1_CT", Level.EXPERIMENT, f"filter: imaging_sessions excludes {CT}"),
    )


def test_xsi_type_patterns_and_case():
    out = apply_filters(
        inventory(),
        cfg(
            "filtering:\n  imaging_sessions:\n    sync_type: include\n"
            "    xsi_types: ['xnat:MR*', 'XNAT:petSessionData']\n"
        ),
    )
    assert exps(out.inventory) == {"S1_MR", "S1_PET", "S1_FORM"}


def test_scan_types_by_pattern_with_reason():
    out = apply_filters(
        inventory(),
        cfg(
            "filtering:\n  imaging_sessions:\n    sync_type: include\n    xsi_types:\n"
            f"      - xsi_type: {MR}\n        scan_types: {{sync_type: include, items: ['T1*']}}\n"
        ),
    )
    mr = out.inventory.subjects["S1"].experiments["S1_MR"]
    assert set(mr.scans) == {"2", "3"}
    assert set(out.inventory.subjects["S2"].experiments["S2_MR"].scans) == set()
    assert (
        "S1/S1_MR/scans/1",
        Level.SCAN,
        f"filter: imaging_sessions[{MR}].scan_types excludes LOCALIZER",
    ) in out.skipped
    # the resources of kept scans are the same objects (no file tuples copied)
    src = inventory()
    assert (
        mr.scans["2"].resources["DICOM"]
        == src.subjects["S1"].experiments["S1_MR"].scans["2"].resources["DICOM"]
    )


def test_scan_types_exclude_and_empty_type():
    inv = inventory()
    f = Filtering(
        imaging_sessions=TypedFilter(
            SyncType.ALL,
            (SessionTypeFilter(CT, scan_types=ItemFilter(SyncType.INCLUDE, ("HEAD",))),),
        )
    )
    out = apply_filters(inv, f)
    assert set(out.inventory.subjects["S1"].experiments["S1_CT"].scans) == {"1"}
    assert (
        "S1/S1_CT/scans/2",
        Level.SCAN,
        f"filter: imaging_sessions[{CT}].scan_types excludes (no type)",
    ) in out.skipped
    # other types untouched under all
    assert (
        out.inventory.subjects["S1"].experiments["S1_MR"] is inv.subjects["S1"].experiments["S1_MR"]
    )


def test_top_level_scan_resources_apply_to_every_session():
    out = apply_filters(
        inventory(), cfg("filtering:\n  scan_resources: {sync_type: exclude, items: [SNAPSHOTS]}\n")
    )
    for s in out.inventory.subjects.values():
        for e in s.experiments.values():
            for sc in e.scans.values():
                assert set(sc.resources) == {"DICOM"}
    assert (
        "S1/S1_PET/scans/1/SNAPSHOTS",
        Level.RESOURCE,
        "filter: scan_resources excludes SNAPSHOTS",
    ) in out.skipped
    assert len(out.skipped) == 8  # one per scan


def test_top_level_and_per_type_scan_resources_combine():
    inv = inventory()
    f = Filtering(
        scan_resources=ItemFilter(SyncType.EXCLUDE, ("SNAPSHOTS",)),
        imaging_sessions=TypedFilter(
            SyncType.ALL,
            (SessionTypeFilter(MR, scan_resources=ItemFilter(SyncType.EXCLUDE, ("DICOM",))),),
        ),
    )
    out = apply_filters(inv, f)
    mr = out.inventory.subjects["S1"].experiments["S1_MR"]
    assert all(sc.resources == {} for sc in mr.scans.values())  # both left out
    assert set(mr.scans) == {"1", "2", "3", "4"}  # scans themselves kept
    ct = out.inventory.subjects["S1"].experiments["S1_CT"]
    assert all(set(sc.resources) == {"DICOM"} for sc in ct.scans.values())
    reasons = {(a, r) for a, _, r in out.skipped}
    assert (
        "S1/S1_MR/scans/1/DICOM",
        f"filter: imaging_sessions[{MR}].scan_resources excludes DICOM",
    ) in reasons
    assert ("S1/S1_MR/scans/1/SNAPSHOTS", "filter: scan_resources excludes SNAPSHOTS") in reasons


def test_session_resources_and_assessors():
    f = cfg(
        "filtering:\n  imaging_sessions:\n    sync_type: include\n    xsi_types:\n"
        f"      - xsi_type: {MR}\n"
        "        resources: {sync_type: none}\n"
        "        session_assessors: {sync_type: exclude, items: ['XNAT:QC*']}\n"
        f"      - xsi_type: {CT}\n"
    )
    out = apply_filters(inventory(), f)
    mr = out.inventory.subjects["S1"].experiments["S1_MR"]
    assert mr.resources == {}
    assert set(mr.assessors) == {"S1_MR_FS"}
    assert set(mr.scans) == {"1", "2", "3", "4"}
    assert (
        "S1/S1_MR/assessors/S1_MR_QC",
        Level.ASSESSOR,
        f"filter: imaging_sessions[{MR}].session_assessors excludes xnat:qcAssessmentData",
    ) in out.skipped
    assert (
        "S1/S1_MR/resources/NOTES",
        Level.RESOURCE,
        f"filter: imaging_sessions[{MR}].resources excludes NOTES",
    ) in out.skipped


@pytest.mark.parametrize(
    ("yaml_text", "kept_form"),
    [
        ("subject_assessors: {sync_type: none}", False),
        (f"subject_assessors: {{sync_type: exclude, xsi_types: [{QC}]}}", False),
        (f"subject_assessors: {{sync_type: include, xsi_types: [{QC}]}}", True),
        ("subject_assessors: {sync_type: include, xsi_types: ['xnat:other']}", False),
    ],
)
def test_subject_assessors_are_separate_from_sessions(yaml_text, kept_form):
    out = apply_filters(inventory(), cfg("filtering:\n  " + yaml_text + "\n"))
    assert ("S1_FORM" in exps(out.inventory)) is kept_form
    # sessions are not touched by the subject assessor filter
    assert {"S1_MR", "S1_CT", "S1_PET"} <= exps(out.inventory)
    if not kept_form:
        assert out.skipped == (
            ("S1/S1_FORM", Level.EXPERIMENT, f"filter: subject_assessors excludes {QC}"),
        )


def test_session_filter_does_not_touch_subject_assessors():
    out = apply_filters(
        inventory(),
        cfg(
            "filtering:\n  imaging_sessions:\n    sync_type: exclude\n    xsi_types: [" + QC + "]\n"
        ),
    )
    assert "S1_FORM" in exps(out.inventory)


def test_input_is_not_changed_and_metadata_kept():
    inv = inventory()
    before = inv.to_dict()
    out = apply_filters(inv, cfg("filtering:\n  imaging_sessions: {sync_type: none}\n"))
    assert inv.to_dict() == before
    assert (out.inventory.server_url, out.inventory.project) == ("http://src", "P")
    assert out.skipped_at(Level.EXPERIMENT) == out.skipped
