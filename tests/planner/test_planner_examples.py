"""The example configs load, and mean what their comments say."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.config import load_config
from planner.filters import apply_filters
from planner.inventory import Assessor, Experiment, FileEntry, Inventory, Resource, Scan, Subject

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def res(label: str) -> Resource:
    return Resource(label, files=(FileEntry("a.dcm", 100, "d"),))


def scan(sid: str, stype: str) -> Scan:
    return Scan(id=sid, type=stype, resources={x: res(x) for x in ("DICOM", "NIFTI", "SNAPSHOTS")})


def inventory() -> Inventory:
    mr = Experiment(
        label="S1_MR",
        xsi_type="xnat:mrSessionData",
        scans={s.id: s for s in (scan("1", "LOCALIZER"), scan("2", "T1w"), scan("3", "T2"))},
        resources={"NOTES": res("NOTES")},
        assessors={
            "QC": Assessor("QC", xsi_type="xnat:qcAssessmentData"),
            "FS": Assessor("FS", xsi_type="fs:fsData"),
        },
    )
    ct = Experiment(label="S1_CT", xsi_type="xnat:ctSessionData", scans={"1": scan("1", "HEAD")})
    form = Experiment(label="S1_FORM", xsi_type="xnat:qcData", is_imaging=False)
    subject = Subject(
        "S1", resources={"CONSENT": res("CONSENT")}, experiments={"S1_MR": mr, "S1_CT": ct,
                                                                  "S1_FORM": form}
    )  # fmt: skip
    return Inventory("http://src", "STUDY1", resources={"PROTO": res("PROTO")},
                     subjects={"S1": subject})  # fmt: skip


def kept(name: str):
    cfg = load_config(EXAMPLES / name)
    out = apply_filters(inventory(), cfg.filtering)
    return cfg, out, out.inventory.subjects["S1"]


def test_every_example_is_tested():
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {
        "everything.yaml",
        "mr-only.yaml",
        "mr-without-snapshots.yaml",
        "t1-by-pattern.yaml",
    }


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_name_their_projects(name):
    cfg = load_config(EXAMPLES / name)
    assert cfg.source_project == "STUDY1" and cfg.dest_project


def test_everything():
    _, out, s1 = kept("everything.yaml")
    assert out.skipped == ()
    assert out.inventory.fingerprint() == inventory().fingerprint()
    assert set(s1.experiments) == {"S1_MR", "S1_CT", "S1_FORM"}


def test_mr_only():
    _, out, s1 = kept("mr-only.yaml")
    assert set(s1.experiments) == {"S1_MR", "S1_FORM"}
    mr = s1.experiments["S1_MR"]
    assert set(mr.scans) == {"1", "2", "3"} and set(mr.assessors) == {"QC", "FS"}
    assert all(len(sc.resources) == 3 for sc in mr.scans.values())
    assert [a for a, _, _ in out.skipped] == ["S1/S1_CT"]
    assert set(s1.resources) == {"CONSENT"} and set(out.inventory.resources) == {"PROTO"}


def test_mr_without_snapshots():
    cfg, out, s1 = kept("mr-without-snapshots.yaml")
    assert cfg.scan_workers == 8
    assert set(s1.experiments) == {"S1_MR", "S1_FORM"}
    mr = s1.experiments["S1_MR"]
    assert all(set(sc.resources) == {"DICOM", "NIFTI"} for sc in mr.scans.values())
    assert set(mr.assessors) == {"FS"}
    assert set(mr.resources) == {"NOTES"}
    assert sorted(a for a, _, _ in out.skipped) == [
        "S1/S1_CT",
        "S1/S1_MR/assessors/QC",
        "S1/S1_MR/scans/1/SNAPSHOTS",
        "S1/S1_MR/scans/2/SNAPSHOTS",
        "S1/S1_MR/scans/3/SNAPSHOTS",
    ]


def test_t1_by_pattern():
    _, out, s1 = kept("t1-by-pattern.yaml")
    assert set(s1.experiments) == {"S1_MR", "S1_FORM"}
    mr = s1.experiments["S1_MR"]
    assert set(mr.scans) == {"2"}
    assert set(mr.scans["2"].resources) == {"DICOM", "NIFTI"}
    assert ("S1/S1_MR/scans/1", "filter: imaging_sessions[xnat:mrSessionData].scan_types "
            "excludes LOCALIZER") in {(a, r) for a, _, r in out.skipped}  # fmt: skip
