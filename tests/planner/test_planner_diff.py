"""Diff into a plan: every class of change, steps and their facts, filters, state, determinism."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from planner.address import Address
from planner.compare import (
    compare_experiment,
    compare_resource,
    compare_scan,
    completion_fingerprint,
    files_digest,
    subject_fingerprint,
)
from planner.config import (
    Filtering,
    ItemFilter,
    SessionTypeFilter,
    SyncType,
    TransferConfig,
    TypedFilter,
    parse_config,
)
from planner.diff import diff_inventories, make_plan
from planner.inventory import FileEntry, Resource
from planner.plan import ChangeStatus, StepKind
from planner.planfile import plan_to_dict
from planner.restpaths import step_source
from planner.sameness import names_digest
from xnatctl.views.summary import human_bytes, summary_line


def plan(src, dst, config=None, completed=None, **kw):
    return make_plan(
        src,
        dst,
        config or TransferConfig(),
        completed_subjects=completed or {},
        state_serial=kw.pop("state_serial", 3),
        created_at="2026-01-01T00:00:00Z",
        tool_version="0.1.0",
        **kw,
    )


def diff(src, dst, memory=None):
    return diff_inventories(
        src,
        dst,
        TransferConfig(),
        completed_subjects={},
        state_serial=3,
        created_at="2026-01-01T00:00:00Z",
        tool_version="0.1.0",
        memory=memory,
    )


def status(p) -> dict[str, ChangeStatus]:
    return {c.address: c.status for c in p.changes}


def steps(p) -> dict[str, StepKind]:
    """Address -> kind of the steps that move data (field updates are asserted apart)."""
    return {s.address: s.kind for s in p.steps if s.kind != StepKind.UPDATE_EXPERIMENT}


def updates(p) -> set[str]:
    return {s.address for s in p.steps if s.kind == StepKind.UPDATE_EXPERIMENT}


def dst_of(b, *subjects, resources=()):
    return b.inv(*subjects, url="http://dst", project="Q", resources=resources)


# -- comparisons -----------------------------------------------------------------------------


def test_compare_resource_explains_count_size_and_digest(b):
    src = b.res("DICOM", 4)
    files = list(src.files)
    files[1] = FileEntry(files[1].path, 500, files[1].digest)
    files[2] = FileEntry(files[2].path, files[2].size, "0" * 32)
    dst = Resource("DICOM", "DICOM", "", tuple(files[:3]))
    assert compare_resource(src, dst, digests=True) == (
        "file count 4 != 3",
        "size of 1.dcm 100 != 500",
        "digest of 2.dcm differs",
        "3.dcm missing on the destination",
    )
    assert "digest of 2.dcm differs" not in compare_resource(src, dst, digests=False)
    assert compare_resource(src, src, digests=True) == ()


def test_compare_resource_without_digests_ignores_md5(b):
    src = b.res("NIFTI", 2)
    dst = replace(src, files=tuple(FileEntry(f.path, f.size, "") for f in src.files))
    assert compare_resource(src, dst, digests=False) == ()
    assert compare_resource(src, dst, digests=True) == ()  # unknown digests never differ


def test_compare_resource_caps_the_file_list(b):
    diffs = compare_resource(b.res("DICOM", 20), b.res("DICOM", 0), digests=True)
    assert diffs[0] == "file count 20 != 0"
    assert diffs[-1] == "and 15 more file differences"


def test_compare_scan(b):
    src = b.scan("3", "U", n=10, type_="T1")
    dst = b.scan("3", "U", n=9, type_="T1w")
    assert compare_scan(src, dst, digests=True) == (
        "type T1 != T1w",
        "series_description 'T1' != 'T1w'",
        "DICOM: file count 10 != 9",
        "DICOM: 9.dcm missing on the destination",
    )
    assert compare_scan(src, b.scan("3", "V", n=10), digests=True) == ("series UID differs",)


def test_files_digest_is_sha256_of_sorted_lines(b):
    r = b.res("DICOM", 2)
    text = "".join(
        f"{f.path}\t{f.size}\t{f.digest}\n" for f in sorted(r.files, key=lambda f: f.path)
    )
    assert files_digest(r) == hashlib.sha256(text.encode()).hexdigest()


def test_compare_experiment_aggregates_children(b):
    src = b.exp("E1", "S1", (b.scan("1"), b.scan("2", extra=(b.res("NIFTI", 1),))))
    dst = b.exp("E1", "S1", (b.scan("1", n=2),))
    changes = compare_experiment(src, dst, digests=True)
    by = {c.address: c for c in changes}
    assert changes[0].address == "S1/E1" and changes[0].status == ChangeStatus.DIFFERS
    assert by["S1/E1/scans/1"].status == ChangeStatus.DIFFERS
    assert by["S1/E1/scans/2"].status == ChangeStatus.CREATE
    assert by["S1/E1/scans/2/NIFTI"].status == ChangeStatus.CREATE
    assert "S1/E1/scans/1/DICOM" not in by  # judged with its scan
    assert set(changes[0].differences) >= {"1 scan missing on the destination", "1 scan differs"}
    same = compare_experiment(src, src, digests=True)
    assert {c.status for c in same} == {ChangeStatus.IN_SYNC}
    missing = compare_experiment(src, None, digests=True)
    assert {c.status for c in missing} == {ChangeStatus.CREATE}


def test_dest_only_scan_does_not_make_an_experiment_differ(b):
    src = b.exp("E1", "S1", (b.scan("1"),))
    dst = b.exp("E1", "S1", (b.scan("1"), b.scan("9")))
    changes = compare_experiment(src, dst, digests=True)
    assert changes[0].status == ChangeStatus.IN_SYNC
    assert "1 scan only on the destination" in changes[0].reason
    assert {c.address: c.status for c in changes}["S1/E1/scans/9"] == ChangeStatus.DEST_ONLY


# -- the plan --------------------------------------------------------------------------------


def _world(b):
    src = b.inv(
        b.subj(
            "S1",
            b.exp(
                "E1",
                "S1",
                (b.scan("1"), b.scan("2", extra=(b.res("NIFTI", 2),))),
                resources=(b.res("SNAPSHOTS", 1),),
            ),
            resources=(b.res("CONSENT", 1),),
            fields={"gender": "female"},
        ),
        b.subj("S2", b.exp("E2", "S2", (b.scan("1"),)), b.exp("E3", "S2", (b.scan("1", n=4),))),
        resources=(b.res("PROTOCOL", 1),),
    )
    dst = dst_of(
        b,
        b.subj(
            "S2",
            b.exp("E2", "S2", (b.scan("1"),)),
            b.exp("E3", "S2", (b.scan("1", n=3),)),
            b.exp("E8", "S2", (b.scan("1"),)),
        ),
    )
    return src, dst


def test_classifies_and_plans_steps(b):
    src, dst = _world(b)
    p = plan(src, dst)
    st = status(p)
    assert st["S1"] == ChangeStatus.CREATE
    assert st["S2"] == ChangeStatus.IN_SYNC
    assert st["S2/E2"] == ChangeStatus.IN_SYNC
    assert st["S2/E3"] == ChangeStatus.DIFFERS
    assert st["S2/E8"] == ChangeStatus.DEST_ONLY
    assert steps(p) == {
        "@project/resources/PROTOCOL": StepKind.UPLOAD_RESOURCE,
        "S1": StepKind.CREATE_SUBJECT,
        "S1/resources/CONSENT": StepKind.UPLOAD_RESOURCE,
        "S1/E1": StepKind.CREATE_EXPERIMENT,
        "S1/E1/resources/SNAPSHOTS": StepKind.UPLOAD_RESOURCE,
        "S1/E1/scans/1": StepKind.IMPORT_SCAN,
        "S1/E1/scans/2": StepKind.IMPORT_SCAN,
        "S1/E1/scans/2/NIFTI": StepKind.UPLOAD_RESOURCE,
        "S2/E3/scans/1": StepKind.IMPORT_SCAN,
    }

    # The plan's records are in file order (docs/plans.md): grouped by subject, then
    # experiment (the project's own first), each step after the steps it depends on.
    def group(address):
        at = Address.parse(address)
        return (at.subject or "", at.experiment or "")

    groups = [group(s.address) for s in p.steps]
    assert groups == sorted(groups)
    seen: set[str] = set()
    for step in p.steps:
        assert set(step.depends_on) <= seen
        seen.add(step.id)
    s = p.summary
    assert (s.subjects_to_create, s.experiments_to_create, s.scans_to_transfer) == (1, 1, 3)
    assert (s.resources_to_upload, s.experiments_in_sync, s.differs, s.dest_only) == (4, 1, 1, 1)
    assert s.bytes_to_transfer == 300 + 300 + 400 + 200 + 100 + 100 + 100


def test_step_facts_targets_and_dependencies(b):
    src, dst = _world(b)
    by = {s.address: s for s in plan(src, dst).steps if s.kind != StepKind.UPDATE_EXPERIMENT}
    subj, exp = by["S1"], by["S1/E1"]
    assert subj.id == "create_subject:S1"
    assert subj.facts == {"source_id": "S_S1", "fields": {"gender": "female"}}
    assert subj.target == {"project": "Q", "subject": "S1"}
    assert exp.depends_on == ("create_subject:S1",)
    assert exp.facts == {
        "source_id": "X_E1",
        "xsi_type": "xnat:mrSessionData",
        "date": "2024-01-02",
        "fields": {},
    }
    assert exp.target == {"project": "Q", "subject": "S1", "experiment": "E1"}
    imp = by["S1/E1/scans/2"]
    dicom = src.subjects["S1"].experiments["E1"].scans["2"].resources["DICOM"]
    assert imp.depends_on == ("create_experiment:S1/E1",)
    assert imp.facts == {
        "source_experiment_id": "X_E1",
        "scan_id": "2",
        "xsi_type": "xnat:mrScanData",
        "type": "T1",
        "uid": "1.2.3.2",
        "file_count": 3,
        "bytes": 300,
        "files_digest": files_digest(dicom),
        "names_digest": names_digest(dicom),
        "resource": "DICOM",
        "repair": False,
    }
    assert imp.target == {"project": "Q", "subject": "S1", "experiment": "E1", "scan": "2"}
    nifti = by["S1/E1/scans/2/NIFTI"]
    assert nifti.depends_on == ("import_scan:S1/E1/scans/2",)
    assert step_source(nifti, "P") == "/data/experiments/X_E1/scans/2/resources/NIFTI"
    assert nifti.owner_level == "scan"
    assert nifti.target == {
        "project": "Q",
        "subject": "S1",
        "experiment": "E1",
        "scan": "2",
        "label": "NIFTI",
    }
    proj = by["@project/resources/PROTOCOL"]
    assert step_source(proj, "P") == "/data/projects/P/resources/PROTOCOL"
    assert proj.target == {"project": "Q", "label": "PROTOCOL"} and proj.depends_on == ()
    cons = by["S1/resources/CONSENT"]
    assert step_source(cons, "P") == "/data/projects/P/subjects/S1/resources/CONSENT"
    assert cons.depends_on == ("create_subject:S1",)
    assert step_source(by["S1/E1/resources/SNAPSHOTS"], "P") == (
        "/data/experiments/X_E1/resources/SNAPSHOTS"
    )
    repair = by["S2/E3/scans/1"]
    assert repair.facts["repair"] is True and repair.depends_on == ()
    assert "DICOM: file count 4 != 3" in repair.reason


def test_repair_targets_the_destination_scan_paired_by_uid(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", "UID-A", n=3),))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("7", "UID-A", n=2),))))
    p = plan(src, dst)
    (step,) = (s for s in p.steps if s.kind == StepKind.IMPORT_SCAN)
    assert step.address == "S1/E1/scans/1"
    assert step.target["scan"] == "7" and step.facts["scan_id"] == "1"
    # the import resets the scan's fields: the document follows it, for the paired scan
    assert updates(p) == {"S1/E1"}


def test_differing_scan_resource_is_uploaded_again(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", extra=(b.res("NIFTI", 2),)),))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1", extra=(b.res("NIFTI", 1),)),))))
    p = plan(src, dst)
    (step,) = p.steps
    assert step.kind == StepKind.UPLOAD_RESOURCE and step.facts["repair"] is True
    assert status(p)["S1/E1/scans/1"] == ChangeStatus.IN_SYNC
    assert status(p)["S1/E1/scans/1/NIFTI"] == ChangeStatus.DIFFERS


def test_scan_type_difference_alone_plans_no_import(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", type_="T1"),))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1", type_="T1w"),))))
    p = plan(src, dst)
    (step,) = p.steps  # only the experiment's document, which carries the scan type
    assert step.kind == StepKind.UPDATE_EXPERIMENT and step.reason == "fields of 1 scan differ"
    assert status(p)["S1/E1/scans/1"] == ChangeStatus.DIFFERS


def test_conflicts_are_never_steps(b):
    src = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("1"),))),
        b.subj(
            "S2",
            b.exp("E2", "S2", (b.scan("1", "NEW"),)),
            b.exp("E3", "S2", xsi="xnat:mrSessionData"),
        ),
    )
    dst = dst_of(
        b,
        b.subj("S9", b.exp("E1", "S9", (b.scan("1"),))),
        b.subj(
            "S2",
            b.exp("E2", "S2", (b.scan("1", "OLD"),)),
            b.exp("E3", "S2", xsi="xnat:petSessionData"),
        ),
    )
    p = plan(src, dst)
    st = status(p)
    assert st["S1/E1"] == ChangeStatus.CONFLICT
    assert st["S2/E2/scans/1"] == ChangeStatus.CONFLICT
    assert st["S2/E3"] == ChangeStatus.CONFLICT
    assert "S9/E1" not in st
    assert set(steps(p)) == {"S1"}  # the subject may be created; nothing in conflict is
    assert p.summary.conflicts == 3
    conflict = next(c for c in p.changes if c.address == "S2/E2/scans/1")
    assert "another series" in conflict.differences[0]


def test_subject_assessor_and_session_assessor(b):
    from planner.inventory import Assessor

    qc = Assessor("QC", "A1", "xnat:qcAssessmentData", "", {"PDF": b.res("PDF", 1)})
    src = b.inv(
        b.subj(
            "S1",
            b.exp("F1", "S1", xsi="xnat:clinicalData", resources=(b.res("FORM", 1),)),
            b.exp("E1", "S1", (b.scan("1"),), assessors=(qc,)),
        )
    )
    p = plan(src, dst_of(b))
    assert steps(p)["S1/F1"] == StepKind.CREATE_EXPERIMENT
    assert steps(p)["S1/F1/resources/FORM"] == StepKind.UPLOAD_RESOURCE
    assert status(p)["S1/E1/assessors/QC"] == ChangeStatus.CREATE
    assert steps(p)["S1/E1/assessors/QC"] == StepKind.CREATE_ASSESSOR
    by = {(s.kind, s.address): s for s in p.steps}
    upload = by[(StepKind.UPLOAD_RESOURCE, "S1/E1/assessors/QC/PDF")]
    assert upload.depends_on == ("create_assessor:S1/E1/assessors/QC",)
    assert upload.owner_level == "assessor"
    assert step_source(upload, "P") == "/data/experiments/X_E1/assessors/A1/resources/PDF"
    assert upload.target["assessor"] == "QC"
    assert updates(p) == {"S1/F1", "S1/E1", "S1/E1/assessors/QC"}


def test_filters_apply_to_both_sides(b):
    src = b.inv(
        b.subj(
            "S1",
            b.exp("E1", "S1", (b.scan("1"),)),
            b.exp("C1", "S1", (b.scan("1"),), xsi="xnat:ctSessionData"),
        ),
        resources=(b.res("SECRET", 1),),
    )
    dst = dst_of(
        b,
        b.subj("S1", b.exp("C2", "S1", (b.scan("1"),), xsi="xnat:ctSessionData")),
        resources=(b.res("SECRET", 2),),
    )
    filtering = Filtering(
        project_resources=ItemFilter(SyncType.EXCLUDE, ("SECRET",)),
        imaging_sessions=TypedFilter(SyncType.EXCLUDE, (SessionTypeFilter("xnat:ctSessionData"),)),
    )
    p = plan(src, dst, TransferConfig(filtering=filtering))
    st = status(p)
    assert st["S1/C1"] == ChangeStatus.SKIPPED
    assert st["@project/resources/SECRET"] == ChangeStatus.SKIPPED
    assert "S1/C2" not in st  # filtered on the destination too: not reported dest_only
    assert set(steps(p)) == {"S1/E1", "S1/E1/scans/1"}
    skipped = next(c for c in p.changes if c.address == "S1/C1")
    assert "imaging_sessions" in skipped.reason
    assert p.summary.skipped == 2 and p.summary.dest_only == 0


def test_filtered_scan_resource_is_skipped(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", extra=(b.res("SNAPSHOTS", 1),)),))))
    filtering = Filtering(scan_resources=ItemFilter(SyncType.EXCLUDE, ("SNAPSHOTS",)))
    p = plan(src, dst_of(b), TransferConfig(filtering=filtering))
    assert status(p)["S1/E1/scans/1/SNAPSHOTS"] == ChangeStatus.SKIPPED
    assert set(steps(p)) == {"S1", "S1/E1", "S1/E1/scans/1"}


def _completed_world(b):
    """``_world`` after S1 was transferred: a subject recorded complete is skipped only while
    the destination still holds it whole."""
    src, dst = _world(b)
    return src, replace(dst, subjects={**dst.subjects, "S1": src.subjects["S1"]})


def test_sync_new_only_skips_completed_subjects(b):
    src, dst = _completed_world(b)
    fp = subject_fingerprint(src.subjects["S1"])
    p = plan(src, dst, completed={"S1": fp})
    skip = next(c for c in p.changes if c.address == "S1")
    assert skip.status == ChangeStatus.SKIPPED and skip.reason == "completed by an earlier run"
    assert not any(s.address.startswith("S1") for s in p.steps)
    assert not any(c.address.startswith("S1/") for c in p.changes)
    line = summary_line(p)
    assert "1 subject completed by an earlier run, not compared with the destination" in line


def test_a_completed_subject_the_destination_lacks_is_compared_again(b):
    src, dst = _completed_world(b)
    fp = completion_fingerprint(src.subjects["S1"], TransferConfig().to_dict())
    missing = plan(src, _world(b)[1], completed={"S1": fp})
    assert status(missing)["S1"] == ChangeStatus.CREATE
    # Its steps were done once: they carry the serial they are planned at, so the state DB's
    # record of the earlier run does not make apply skip them.
    assert {s.facts.get("completed_before") for s in missing.steps if s.address[:2] == "S1"} == {3}
    s1 = src.subjects["S1"]
    no_scan = replace(
        s1,
        experiments={
            "E1": replace(s1.experiments["E1"], scans={"1": s1.experiments["E1"].scans["1"]})
        },
    )
    lacking = plan(
        src, replace(dst, subjects={**dst.subjects, "S1": no_scan}), completed={"S1": fp}
    )
    assert status(lacking)["S1/E1/scans/2"] == ChangeStatus.CREATE
    assert "destination matches the source" not in summary_line(lacking)


def test_sync_new_only_notes_new_data(b):
    src, dst = _completed_world(b)
    p = plan(src, dst, completed={"S1": "an older fingerprint"})
    skip = next(c for c in p.changes if c.address == "S1")
    assert skip.reason == "completed by an earlier run; has new data on the source"
    line = summary_line(p)
    assert "matches the source" not in line
    assert "1 subject completed earlier with new data on the source" in line


def test_sync_new_only_notes_a_subject_completed_under_other_filters(b):
    src, dst = _completed_world(b)
    narrow = TransferConfig(
        filtering=parse_config(
            {"filtering": {"project_resources": {"sync_type": "none"}}}
        ).filtering
    )
    recorded = completion_fingerprint(src.subjects["S1"], narrow.to_dict())
    same = plan(src, dst, narrow, completed={"S1": recorded})
    skip = next(c for c in same.changes if c.address == "S1")
    assert skip.reason == "completed by an earlier run"
    wider = plan(src, dst, completed={"S1": recorded})
    skip = next(c for c in wider.changes if c.address == "S1")
    assert skip.reason == "completed by an earlier run; was completed under other filters"
    assert "under other filters" in summary_line(wider)


def test_without_sync_new_only_completed_subjects_are_checked(b):
    src, dst = _world(b)
    p = plan(src, dst, TransferConfig(sync_new_only=False), completed={"S1": "x"})
    assert status(p)["S1"] == ChangeStatus.CREATE


def test_plan_endpoints_and_config(b):
    src, dst = _world(b)
    config = TransferConfig(scan_workers=2)
    p = plan(src, dst, config, source_profile="prod", dest_profile="staging")
    assert p.source.url == "http://src" and p.source.project == "P"
    assert p.source.profile == "prod" and p.dest.profile == "staging"
    assert p.source.inventory_fingerprint == src.fingerprint()
    assert p.dest.inventory_fingerprint == dst.fingerprint()
    assert p.source.server_version == "1.8.11"
    assert p.config == config.to_dict() and p.config_hash == config.config_hash()
    assert p.state_serial == 3 and p.created_at == "2026-01-01T00:00:00Z"


def test_same_inputs_give_the_same_plan(b):
    src, dst = _world(b)
    assert plan_to_dict(plan(src, dst)) == plan_to_dict(plan(src, dst))
    assert plan(src, dst) == plan(src, dst)


def test_identical_projects_have_no_changes(b):
    src, _ = _world(b)
    same = replace(src, server_url="http://dst")
    p = plan(src, same)
    assert p.steps == ()
    assert summary_line(p) == "No changes: destination matches the source."


def test_summary_line(b):
    src, dst = _world(b)
    line = summary_line(plan(src, dst))
    assert line == (
        "Plan: 1 subject, 1 experiment, 3 scans, 4 resources, 2 field updates to "
        "transfer (1.5 kB); "
        "1 experiment in sync; 1 differs; 1 only on the destination; 0 conflicts."
    )


def test_human_bytes():
    assert human_bytes(0) == "0 B"
    assert human_bytes(999) == "999 B"
    assert human_bytes(18_200_000_000) == "18.2 GB"
    assert human_bytes(5 * 10**15) == "5000.0 TB"


def test_digest_differences_ignored_when_a_side_lacks_digests(b):
    # A non-DICOM resource: a scan's DICOM is compared by names (planner.sameness), since the
    # destination's anonymization script rewrites headers, so its MD5 never counts alone.
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", extra=(b.res("NIFTI", 3),)),))))
    r = b.res("NIFTI", 3, salt="other")
    moved = replace(b.scan("1"), resources={**b.scan("1").resources, "NIFTI": r})
    changed = b.inv(b.subj("S1", b.exp("E1", "S1", (moved,))), url="http://dst", project="Q")
    assert status(plan(src, changed))["S1/E1/scans/1/NIFTI"] == ChangeStatus.DIFFERS
    no_digests = replace(changed, digests=False)
    assert status(plan(src, no_digests))["S1/E1/scans/1/NIFTI"] == ChangeStatus.IN_SYNC


def test_dicom_rewritten_by_the_destination_is_in_sync_unless_remembered_otherwise(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"),))))
    r = b.res("DICOM", 3, size=140, salt="anonymized")  # same names, other bytes
    rewritten = replace(b.scan("1"), resources={"DICOM": r})
    dst = b.inv(b.subj("S1", b.exp("E1", "S1", (rewritten,))), url="http://dst", project="Q")
    made = diff(src, dst)
    assert status(made.plan)["S1/E1/scans/1"] == ChangeStatus.IN_SYNC
    assert made.plan.steps == ()
    assert [(m.address, m.dest_scan) for m in made.equal_scans] == [("S1/E1/scans/1", "1")]
    memory = {m.address: m for m in made.equal_scans}
    assert diff(src, dst, memory).plan.steps == ()
    # the source re-sends 0.dcm with other pixel data under the same name
    files = list(src.subjects["S1"].experiments["E1"].scans["1"].resources["DICOM"].files)
    files[0] = FileEntry(files[0].path, files[0].size, "0" * 32)
    resent = replace(b.scan("1"), resources={"DICOM": replace(b.res("DICOM"), files=tuple(files))})
    src2 = b.inv(b.subj("S1", b.exp("E1", "S1", (resent,))))
    again = diff(src2, dst, memory)
    change = {c.address: c for c in again.plan.changes}["S1/E1/scans/1"]
    assert change.status == ChangeStatus.DIFFERS
    assert change.differences == ("DICOM: source files changed since they were last found equal",)
    kinds = {s.kind: s for s in again.plan.steps}
    assert set(kinds) == {StepKind.IMPORT_SCAN, StepKind.UPDATE_EXPERIMENT}
    assert kinds[StepKind.IMPORT_SCAN].facts["repair"] is True
    assert again.equal_scans == ()
    # without the memory the names alone agree: this is what the memory is for
    assert diff(src2, dst).plan.steps == ()
    # memory of another destination scan (another pairing) does not apply
    moved = {k: replace(v, dest_scan="9") for k, v in memory.items()}
    assert diff(src2, dst, moved).plan.steps == ()


def test_field_and_date_differences_are_reported_and_planned_as_updates(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", date="2024-01-02"), fields={"gender": "female"}))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", date="2024-02-02"), fields={"gender": "male"}))
    p = plan(src, dst)
    by = {c.address: c for c in p.changes}
    assert by["S1"].status == ChangeStatus.DIFFERS
    assert by["S1"].differences == ("gender 'female' != 'male'",)
    assert by["S1/E1"].status == ChangeStatus.DIFFERS
    assert by["S1/E1"].differences == ("date 2024-01-02 != 2024-02-02",)
    assert [(s.kind, s.address) for s in p.steps] == [
        (StepKind.UPDATE_SUBJECT, "S1"),
        (StepKind.UPDATE_EXPERIMENT, "S1/E1"),
    ]
    assert p.steps[0].facts["fields"] == {"gender": "female"}
    assert p.summary.differs == 2
    assert (p.summary.subjects_to_update, p.summary.experiments_to_update) == (1, 1)


def test_empty_resource_is_created(b):
    src = b.inv(b.subj("S1", resources=(b.res("NOTES", 0),)))
    dst = dst_of(b, b.subj("S1"))
    (step,) = plan(src, dst).steps
    assert step.kind == StepKind.UPLOAD_RESOURCE
    assert step.facts["file_count"] == 0 and step.facts["bytes"] == 0


def test_source_scan_without_dicom_is_created_with_its_resources(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", n=0, extra=(b.res("NIFTI", 1),)),))))
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1"))))
    by = {c.address: c for c in p.changes}
    assert by["S1/E1/scans/1"].status == ChangeStatus.CREATE
    assert by["S1/E1/scans/1/NIFTI"].status == ChangeStatus.CREATE
    assert steps(p) == {
        "S1/E1/scans/1": StepKind.CREATE_SCAN,
        "S1/E1/scans/1/NIFTI": StepKind.UPLOAD_RESOURCE,
    }


def test_session_assessor_differences(b):
    from planner.inventory import Assessor

    qc = Assessor("QC", "A1", "xnat:qcAssessmentData", "", {"PDF": b.res("PDF", 2)})
    qc_dst = Assessor("QC", "A9", "xnat:qcAssessmentData", "", {"PDF": b.res("PDF", 1)})
    src = b.inv(b.subj("S1", b.exp("E1", "S1", assessors=(qc,))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", assessors=(qc_dst,))))
    by = {c.address: c for c in plan(src, dst).changes}
    # the assessor's resources are its own entities, never the session's
    assert by["S1/E1/assessors/QC"].status == ChangeStatus.IN_SYNC
    assert by["S1/E1/assessors/QC/PDF"].status == ChangeStatus.DIFFERS
    assert by["S1/E1/assessors/QC/PDF"].differences[0] == "file count 2 != 1"
    assert by["S1/E1"].status == ChangeStatus.DIFFERS
