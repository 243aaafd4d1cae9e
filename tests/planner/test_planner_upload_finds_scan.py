"""A resource of a scan the run imports is uploaded to the scan the import made.

DICOM import numbers a destination scan by its SeriesNumber (``Restructurer
.determineScanSubdir``; TestImport.testModifiedSeriesUIDs relies on that numbering), which
need not be the source scan's ID, and XNAT refuses a resource of a scan that does not exist
with 404 "Unable to identify scan" (``XNATTemplate``). So the plan gives such an upload the
scan's series UID, and the step finds the scan by it at apply time.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.errors import NotFound
from planner.plan import Step, StepKind
from planner.progress import NullReporter
from planner.steps import StepContext, resource_owner, run_step
from tests.planner.steps import Dest, make_step

EXP = "/data/projects/Q/subjects/S1/experiments/E1"


def _plan(src, dst):
    return make_plan(
        src,
        dst,
        TransferConfig.from_dict({}),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )


def _upload(p, address: str) -> Step:
    (step,) = [s for s in p.steps if s.kind == StepKind.UPLOAD_RESOURCE and s.address == address]
    return step


def test_a_new_imported_scan_s_resource_is_planned_with_its_series_uid(b) -> None:
    nifti = b.res("NIFTI", 1)
    src = b.inv(
        b.subj(
            "S1",
            b.exp(
                "E1",
                "S1",
                (b.scan("7", "1.2.9", extra=(nifti,)), b.scan("8", "1.2.8", extra=(nifti,))),
            ),
        )
    )
    # Scan 8 is on the destination already under its SeriesNumber 4: its resource goes there.
    dst = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("4", "1.2.8"),))), url="http://dst", project="Q"
    )
    p = _plan(src, dst)
    new = _upload(p, "S1/E1/scans/7/NIFTI")
    assert new.facts["scan_uid"] == "1.2.9" and new.facts["source_owner_id"] == "7"
    assert new.depends_on == ("import_scan:S1/E1/scans/7",)
    paired = _upload(p, "S1/E1/scans/8/NIFTI")
    assert paired.target["scan"] == "4" and "scan_uid" not in paired.facts


def test_a_created_scan_without_dicom_keeps_its_planned_id(b) -> None:
    derived = b.scan("99", "", n=0, extra=(b.res("NIFTI", 1),))
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (derived,))))
    dst = b.inv(url="http://dst", project="Q")
    step = _upload(_plan(src, dst), "S1/E1/scans/99/NIFTI")
    assert step.target["scan"] == "99" and "scan_uid" not in step.facts


class Destination:
    """A destination whose experiment document lists the given (scan ID, series UID) pairs,
    recording the writes of an upload step."""

    url = "http://dst"

    def __init__(self, scans: list[tuple[str, str]]) -> None:
        self.scans = scans
        self.writes: list[str] = []

    def get_json(self, path: str, params: Any = None) -> Any:
        assert path == EXP, path
        items = [{"data_fields": {"ID": sid, "UID": uid}} for sid, uid in self.scans]
        return {
            "items": [
                {
                    "data_fields": {"ID": "DST_E1"},
                    "children": [{"field": "scans/scan", "items": items}],
                }
            ]
        }

    def request_text(self, method: str, path: str, params: Any = None, **kw: Any) -> str:
        self.writes.append(f"{method} {path}")
        return ""

    def upload(self, method: str, path: str, src: Path, params: Any = None, **kw: Any) -> str:
        self.writes.append(f"{method} {path}")
        return ""

    def download(self, path: str, dest: Path, params: Any = None, *, on_bytes=None) -> int:
        import zipfile

        with zipfile.ZipFile(dest, "w") as zf:
            zf.writestr("t2.nii.gz", b"volume")
        return Path(dest).stat().st_size


def _step(**facts: Any) -> Step:
    return make_step(
        StepKind.UPLOAD_RESOURCE,
        "S1/E1/scans/7/NIFTI",
        Dest("Q", "S1", "E1", scan="7", label="NIFTI"),
        source_experiment_id="SRC_E1",
        source_owner_id="7",
        label="NIFTI",
        format="NIFTI",
        file_count=1,
        bytes=6,
        **facts,
    )


def test_the_upload_finds_the_imported_scan_by_series_uid(tmp_path: Path) -> None:
    # The destination has a scan 7 of another series and the imported series as scan 3: the
    # resource goes to scan 3, never to the other series' scan 7.
    dst = Destination([("7", "1.2.other"), ("3", "1.2.9")])
    step = _step(scan_uid="1.2.9")
    assert resource_owner(step, dst) == f"{EXP}/scans/3"  # type: ignore[arg-type]

    (tmp_path / "work").mkdir()
    ctx = StepContext(
        src=dst,  # type: ignore[arg-type]
        dst=dst,  # type: ignore[arg-type]
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
        run_id="1",
        retry_count=0,
        retry_delay=0,
        reporter=NullReporter(),
        cancel=threading.Event(),
    )
    outcome = run_step(step, ctx)
    assert outcome.ok, outcome.error
    assert dst.writes == [
        f"PUT {EXP}/scans/3/resources/NIFTI",
        f"PUT {EXP}/scans/3/resources/NIFTI/files",
    ]


def test_the_upload_fails_when_the_import_left_no_such_series() -> None:
    dst = Destination([("7", "1.2.other")])
    with pytest.raises(NotFound, match=r"no scan of series 1\.2\.9"):
        resource_owner(_step(scan_uid="1.2.9"), dst)  # type: ignore[arg-type]


def test_a_step_without_a_series_uid_uses_its_planned_scan() -> None:
    # Plans of scans already paired, and plan files written before the lookup existed.
    assert resource_owner(_step(), Destination([])) == f"{EXP}/scans/7"  # type: ignore[arg-type]
