"""Scans without DICOM to import (derived scans, or DICOM left out by a filter): classified,
planned as create_scan plus their resources, carried in the XML document, checked for
staleness and verified like any other scan."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.drift import IN_SYNC, MISSING, check_drift
from planner.errors import Conflict
from planner.filters import filter_experiment
from planner.plan import ChangeStatus, Level, StepKind
from planner.planfile import plan_from_dict, plan_to_dict
from planner.progress import NullReporter
from planner.restpaths import step_source
from planner.staleness import dest_changes, source_changes
from planner.steps import StepContext, run_step, scan_mapping
from planner.verify import verify_experiment
from planner.xmldoc import Destination, rewrite
from xnatctl.views.summary import summary_line

EXCLUDE_DICOM = {"filtering": {"scan_resources": {"sync_type": "exclude", "items": ["DICOM"]}}}


def plan(src, dst, config: dict[str, Any] | None = None):
    return make_plan(
        src,
        dst,
        TransferConfig.from_dict(config or {}),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )


def dst_of(b, *subjects):
    return b.inv(*subjects, url="http://dst", project="Q")


def derived(b, sid: str = "99"):
    """A NIfTI-only derived scan, as a pipeline stores it: no DICOM, no series UID."""
    scan = b.scan(sid, uid="", n=0, extra=(b.res("NIFTI", 2, 700),), type_="DTI_derived")
    return replace(scan, quality="questionable", fields={"note": "from the DWI"})


def by_address(p):
    return {c.address: c for c in p.changes}


def step_of(p, kind: StepKind, address: str):
    (step,) = [s for s in p.steps if s.kind == kind and s.address == address]
    return step


# -- classification and steps: a NIfTI-only scan ---------------------------------------------


def test_a_missing_nifti_only_scan_is_created_then_its_resources_uploaded(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"), derived(b)))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1"),), eid="D_E1")))
    p = plan(src, dst)
    changes = by_address(p)
    assert changes["S1/E1/scans/99"].status == ChangeStatus.CREATE
    assert changes["S1/E1/scans/99/NIFTI"].status == ChangeStatus.CREATE
    assert changes["S1/E1"].status == ChangeStatus.DIFFERS
    assert "1 scan missing on the destination" in changes["S1/E1"].differences

    create = step_of(p, StepKind.CREATE_SCAN, "S1/E1/scans/99")
    assert create.level == Level.SCAN
    assert create.target == {"project": "Q", "subject": "S1", "experiment": "E1", "scan": "99"}
    assert create.facts["xsi_type"] == "xnat:mrScanData"
    assert create.facts["type"] == "DTI_derived"
    assert create.facts["source_experiment_id"] == "X_E1"
    assert create.depends_on == ()  # the experiment exists already

    upload = step_of(p, StepKind.UPLOAD_RESOURCE, "S1/E1/scans/99/NIFTI")
    assert upload.depends_on == (create.id,)
    assert upload.target["scan"] == "99" and upload.owner_level == "scan"
    assert step_source(upload, "P") == "/data/experiments/X_E1/scans/99/resources/NIFTI"
    assert upload.facts["bytes"] == 1400 and not upload.facts["repair"]

    # its fields (quality, note) come with the experiment's XML document, after it exists
    document = step_of(p, StepKind.UPDATE_EXPERIMENT, "S1/E1")
    assert create.id in document.depends_on
    assert document.facts["scans"] == ["1", "99"]
    assert document.facts["scan_fields"]["99"] == {
        "note": "from the DWI",
        "quality": "questionable",
        "series_description": "DTI_derived",
        "type": "DTI_derived",
    }
    assert "created scan" in document.reason

    assert (p.summary.scans_to_create, p.summary.scans_to_transfer) == (1, 0)
    assert p.summary.has_changes
    assert p.summary.bytes_to_transfer == 1400
    line = summary_line(p)
    assert "1 scan (1 without DICOM)" in line and "1 resource" in line, line


def test_a_new_experiment_with_both_kinds_of_scan_and_its_totals(b):
    src = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("1", extra=(b.res("SNAPSHOTS", 2),)), derived(b))))
    )
    p = plan(src, dst_of(b))
    kinds = {(s.kind, s.address) for s in p.steps}
    assert (StepKind.IMPORT_SCAN, "S1/E1/scans/1") in kinds
    assert (StepKind.CREATE_SCAN, "S1/E1/scans/99") in kinds
    create = step_of(p, StepKind.CREATE_SCAN, "S1/E1/scans/99")
    assert create.depends_on == ("create_experiment:S1/E1",)
    document = step_of(p, StepKind.UPDATE_EXPERIMENT, "S1/E1")
    assert {"import_scan:S1/E1/scans/1", create.id} <= set(document.depends_on)

    # what the tree shows for the new experiment is what the steps move, and the summary too
    moved = sum(int(s.facts.get("bytes", 0) or 0) for s in p.steps)
    experiment = by_address(p)["S1/E1"]
    assert experiment.bytes == moved == p.summary.bytes_to_transfer == 300 + 200 + 1400
    assert experiment.files == 3 + 2 + 2
    under_scans = [c for c in p.changes if "/scans/" in c.address]
    assert sum(c.bytes for c in under_scans) == moved  # scan rows show DICOM, resources theirs
    line = summary_line(p)
    assert "2 scans (1 without DICOM)" in line, line


def test_a_scan_without_any_resource_is_created_too(b):
    empty = b.scan("7", uid="", n=0)
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (empty,))))
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1"))))
    assert by_address(p)["S1/E1/scans/7"].status == ChangeStatus.CREATE
    assert {s.kind for s in p.steps} == {StepKind.CREATE_SCAN, StepKind.UPDATE_EXPERIMENT}


def test_a_present_nifti_only_scan_is_compared_by_its_resources(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (derived(b),))))
    same = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1", (derived(b),)))))
    assert same.steps == ()
    assert by_address(same)["S1/E1/scans/99"].status == ChangeStatus.IN_SYNC
    assert by_address(same)["S1/E1"].status == ChangeStatus.IN_SYNC
    assert summary_line(same) == "No changes: destination matches the source."

    older = replace(derived(b), resources={"NIFTI": b.res("NIFTI", 1, 700)})
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1", (older,)))))
    changes = by_address(p)
    assert changes["S1/E1/scans/99"].status == ChangeStatus.IN_SYNC  # no DICOM on either side
    assert changes["S1/E1/scans/99/NIFTI"].status == ChangeStatus.DIFFERS
    (upload,) = p.steps
    assert (upload.kind, upload.facts["repair"], upload.depends_on) == (
        StepKind.UPLOAD_RESOURCE,
        True,
        (),
    )


def test_drift_reports_a_missing_nifti_only_scan_and_then_in_sync(b):
    filtering = TransferConfig().filtering
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"), derived(b)))))
    before = check_drift(src, dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1"),)))), filtering)
    classes = {e.address: e.drift_class for e in before.entries}
    assert classes["S1/E1/scans/99"] == MISSING
    assert classes["S1/E1/scans/99/NIFTI"] == MISSING
    assert not before.in_sync and before.counts["not_compared"] == 0

    after = check_drift(
        src, dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1"), derived(b))))), filtering
    )
    assert after.in_sync
    assert {e.address: e.drift_class for e in after.entries}["S1/E1/scans/99"] == IN_SYNC


# -- a filter that leaves DICOM out -----------------------------------------------------------


def _full_scan(b, sid: str):
    return b.scan(sid, extra=(b.res("NIFTI", 1, 50), b.res("SNAPSHOTS", 2, 10)))


def test_dicom_filtered_out_creates_every_scan_and_moves_the_rest(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (_full_scan(b, "1"), _full_scan(b, "2")))))
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1"))), EXCLUDE_DICOM)
    kinds = sorted((s.kind.value, s.address) for s in p.steps)
    assert kinds == [
        ("create_scan", "S1/E1/scans/1"),
        ("create_scan", "S1/E1/scans/2"),
        ("update_experiment", "S1/E1"),
        ("upload_resource", "S1/E1/scans/1/NIFTI"),
        ("upload_resource", "S1/E1/scans/1/SNAPSHOTS"),
        ("upload_resource", "S1/E1/scans/2/NIFTI"),
        ("upload_resource", "S1/E1/scans/2/SNAPSHOTS"),
    ]
    changes = by_address(p)
    assert changes["S1/E1/scans/1/DICOM"].status == ChangeStatus.SKIPPED
    assert changes["S1/E1/scans/1/DICOM"].reason == "filter: scan_resources excludes DICOM"
    assert changes["S1/E1/scans/1"].status == ChangeStatus.CREATE
    assert changes["S1/E1/scans/1"].bytes == 0  # its DICOM is not moved
    assert p.summary.bytes_to_transfer == 2 * (50 + 20)
    assert "2 scans (2 without DICOM)" in summary_line(p)


def test_filtered_dicom_held_by_the_destination_is_no_difference(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (_full_scan(b, "1"),))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1", (_full_scan(b, "1"),))))
    p = plan(src, dst, EXCLUDE_DICOM)
    assert p.steps == ()
    changes = by_address(p)
    assert changes["S1/E1/scans/1"].status == ChangeStatus.IN_SYNC
    assert changes["S1/E1"].status == ChangeStatus.IN_SYNC
    filtering = TransferConfig.from_dict(EXCLUDE_DICOM).filtering
    assert check_drift(src, dst, filtering).in_sync

    # the destination scan holds DICOM (filtered on both sides) but lacks the NIfTI
    dicom_only = dst_of(b, b.subj("S1", b.exp("E1", "S1", (b.scan("1"),))))
    p = plan(src, dicom_only, EXCLUDE_DICOM)
    changes = by_address(p)
    assert changes["S1/E1/scans/1"].status == ChangeStatus.IN_SYNC
    assert changes["S1/E1/scans/1"].differences == ()
    assert sorted((s.kind.value, s.address) for s in p.steps) == [
        ("upload_resource", "S1/E1/scans/1/NIFTI"),
        ("upload_resource", "S1/E1/scans/1/SNAPSHOTS"),
    ]
    report = check_drift(src, dicom_only, filtering)
    assert {e.address for e in report.entries if e.drift_class == MISSING} == {
        "S1/E1/scans/1/NIFTI",
        "S1/E1/scans/1/SNAPSHOTS",
    }


def test_the_plan_file_keeps_create_scan_steps(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (derived(b),))))
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1"))))
    again = plan_from_dict(plan_to_dict(p))
    assert again.steps == p.steps and again.summary == p.summary
    assert again.summary.scans_to_create == 1


# -- the XML document keeps a created scan -----------------------------------------------------

SOURCE_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<xnat:MRSession xmlns:xnat="http://nrg.wustl.edu/xnat"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    ID="X_E1" project="P" label="E1">
  <xnat:subject_ID>S_S1</xnat:subject_ID>
  <xnat:scans>
    <xnat:scan ID="1" type="T1" UID="1.2.3.1" xsi:type="xnat:mrScanData">
      <xnat:quality>usable</xnat:quality>
      <xnat:file xsi:type="xnat:resourceCatalog" label="DICOM" URI="/a/b.xml"/>
    </xnat:scan>
    <xnat:scan ID="99" type="DTI_derived" xsi:type="xnat:mrScanData">
      <xnat:quality>questionable</xnat:quality>
      <xnat:note>from the DWI</xnat:note>
      <xnat:file xsi:type="xnat:resourceCatalog" label="NIFTI" URI="/a/c.xml"/>
    </xnat:scan>
  </xnat:scans>
</xnat:MRSession>
"""


def test_the_document_keeps_a_created_scan_under_its_source_id(b):
    from planner.inventory import Scan
    from planner.xmldoc import scan_uids

    # after create_scan the destination has 99 (no UID) and the import numbered scan 1 as 5
    dest_scans = {"5": Scan(id="5", uid="1.2.3.1"), "99": Scan(id="99", uid="")}
    mapping = scan_mapping(scan_uids(SOURCE_DOC), ["1", "99"], dest_scans)
    assert mapping == {"1": "5", "99": "99"}
    body = rewrite(SOURCE_DOC, Destination(project="Q", label="E1", id="D_E1", scan_ids=mapping))
    text = body.decode()
    assert 'ID="99"' in text and 'type="DTI_derived"' in text
    assert "<xnat:note>from the DWI</xnat:note>" in text
    assert "<xnat:quality>questionable</xnat:quality>" in text
    assert "xnat:file" not in text  # its resources are uploaded by their own steps


# -- staleness ---------------------------------------------------------------------------------


def test_a_create_scan_is_stale_when_the_scan_appeared_on_the_destination(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (derived(b),))))
    dst = dst_of(b, b.subj("S1", b.exp("E1", "S1")))
    p = plan(src, dst)
    create = step_of(p, StepKind.CREATE_SCAN, "S1/E1/scans/99")
    assert dest_changes(p, dst, set()) == []
    bare = replace(derived(b), resources={})  # someone created the scan, no files yet
    now = dst_of(b, b.subj("S1", b.exp("E1", "S1", (bare,))))
    assert dest_changes(p, now, set()) == ["scan S1/E1/scans/99 now exists on the destination"]
    assert dest_changes(p, now, {create.id}) == []  # this plan's own earlier run made it


def test_a_create_scan_is_stale_when_the_source_scan_changed(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (derived(b),))))
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1"))))
    assert source_changes(p, src, None) == []
    gone = b.inv(b.subj("S1", b.exp("E1", "S1")))
    assert "scan S1/E1/scans/99 is gone from the source" in source_changes(p, gone, None)
    retyped = b.inv(
        b.subj("S1", b.exp("E1", "S1", (replace(derived(b), xsi_type="xnat:ctScanData"),)))
    )
    assert "scan S1/E1/scans/99 is now a xnat:ctScanData" in source_changes(p, retyped, None)
    with_dicom = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("99", uid="", extra=(b.res("NIFTI", 2, 700),)),)))
    )
    assert "scan S1/E1/scans/99 now has DICOM on the source" in source_changes(p, with_dicom, None)


# -- verification -----------------------------------------------------------------------------


def _verify(src, dst):
    return verify_experiment("S1/E1", src, dst, digests=True)


def test_a_created_scans_resources_are_verified(b):
    src = b.exp("E1", "S1", (b.scan("1"), derived(b)))
    assert _verify(src, src).ok
    empty = b.exp("E1", "S1", (b.scan("1"), replace(derived(b), resources={})))
    result = _verify(src, empty)
    assert not result.ok and not result.tier2
    # problems name the full address, as the plan and drift do (one walk for all three)
    assert "S1/E1/scans/99/NIFTI: missing on the destination" in result.problems
    short = replace(derived(b), resources={"NIFTI": b.res("NIFTI", 2, 700, salt="x")})
    assert not _verify(src, b.exp("E1", "S1", (b.scan("1"), short))).ok


def test_verification_filters_the_destination_like_the_plan(b):
    full = b.exp("E1", "S1", (_full_scan(b, "1"),))
    kept_src = filter_experiment(full, EXCLUDE_DICOM)
    assert kept_src is not None and "DICOM" not in kept_src.scans["1"].resources
    # read back unfiltered, the destination's DICOM looks like a difference ...
    assert not _verify(kept_src, full).ok
    # ... which the plan never counted: filtered the same way, it verifies
    kept_dst = filter_experiment(full, EXCLUDE_DICOM)
    assert kept_dst is not None and _verify(kept_src, kept_dst).ok
    assert filter_experiment(full, {}) is full


# -- the executor ------------------------------------------------------------------------------


class _Dest:
    """Records PUTs; answers with ``reply`` (an exception to raise, or a text)."""

    url = "http://dst"

    def __init__(self, reply: Any = "") -> None:
        self.reply = reply
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def request_text(self, method: str, path: str, params: Any = None, **_: Any) -> str:
        self.calls.append((method, path, dict(params or {})))
        if isinstance(self.reply, Exception):
            raise self.reply
        return self.reply


def _ctx(dst: _Dest, tmp_path: Path) -> StepContext:
    return StepContext(
        src=None,  # type: ignore[arg-type]
        dst=dst,  # type: ignore[arg-type]
        work_dir=tmp_path,
        failed_dir=tmp_path / "failed",
        run_id="1",
        retry_count=2,
        retry_delay=0.0,
        reporter=NullReporter(),
        cancel=threading.Event(),
    )


def test_create_scan_puts_the_scan_with_its_type(b, tmp_path: Path):
    src = b.inv(b.subj("S 1", b.exp("E1", "S 1", (derived(b),))))
    p = plan(src, dst_of(b, b.subj("S 1", b.exp("E1", "S 1"))))
    create = step_of(p, StepKind.CREATE_SCAN, "S 1/E1/scans/99")
    dst = _Dest()
    outcome = run_step(create, _ctx(dst, tmp_path))
    assert outcome.ok, outcome.error
    assert dst.calls == [
        (
            "PUT",
            "/data/projects/Q/subjects/S%201/experiments/E1/scans/99",
            {
                "xsiType": "xnat:mrScanData",
                "type": "DTI_derived",
                "series_description": "DTI_derived",
            },
        )
    ]


def test_create_scan_of_another_xsitype_fails_without_retrying(b, tmp_path: Path):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (derived(b),))))
    p = plan(src, dst_of(b, b.subj("S1", b.exp("E1", "S1"))))
    create = step_of(p, StepKind.CREATE_SCAN, "S1/E1/scans/99")
    dst = _Dest(Conflict("PUT .../scans/99: 409", status=409, reason="exists as xnat:ctScanData"))
    outcome = run_step(create, _ctx(dst, tmp_path))
    assert not outcome.ok and len(dst.calls) == 1
    assert "another xsiType than xnat:mrScanData" in outcome.error
    assert "exists as xnat:ctScanData" in outcome.error
