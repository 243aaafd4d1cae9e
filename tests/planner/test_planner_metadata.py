"""Metadata end to end: fields, assessors and shared data between two xnatsim servers.

The source is seeded with demographics and a custom subject field, session fields, a scan
whose type was renamed after import, a scan quality and note, a subject assessor and a
session assessor with resources, and a subject shared in from a second project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.diff import make_plan
from planner.drift import DIFFERS, IN_SYNC, NOT_COMPARED, check_drift
from planner.filters import shared_reason
from planner.inventory import Inventory
from planner.plan import ChangeStatus, Plan, StepKind
from planner.snapshot import take_snapshot
from planner.state import StateDB

ADMIN = ("admin", "admin")
PROJECT = "P"


def client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def seed(url: str, *, shared: bool = True) -> None:
    from xnatsim.seed import SeedSpec, seed_project

    spec = SeedSpec(
        project=PROJECT,
        subjects=2,
        sessions_per_subject=1,
        scans_per_session=3,
        instances_per_scan=1,
        rows=8,
        cols=8,
        modalities=("MR",),
        shared=shared,
    )
    seed_project(url, spec, auth=ADMIN)


def config(**kw: Any) -> TransferConfig:
    base: dict[str, Any] = {"source_project": PROJECT, "dest_project": PROJECT}
    base.update(kw)
    return TransferConfig(**base)


def snapshots(src: Any, dst: Any) -> tuple[Inventory, Inventory]:
    return take_snapshot(src, PROJECT), take_snapshot(dst, PROJECT)


def plan_now(src: Any, dst: Any, cfg: TransferConfig) -> Plan:
    a, b = snapshots(src, dst)
    return make_plan(
        a,
        b,
        cfg,
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )


def options(tmp_path: Path) -> ApplyOptions:
    return ApplyOptions(
        workers=3,
        retry_count=2,
        retry_delay=0.01,
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
    )


def drift_entries(src: Any, dst: Any, cfg: TransferConfig) -> list[tuple[str, str, tuple]]:
    a, b = snapshots(src, dst)
    report = check_drift(a, b, cfg.filtering, copy_shared=cfg.copy_shared)
    return [
        (e.address, e.drift_class, e.differences)
        for e in report.entries
        if e.drift_class not in (IN_SYNC, NOT_COMPARED)
    ]


@pytest.fixture
def world(sim_pair) -> tuple[Any, Any, Any]:
    seed(sim_pair.src.url)
    r = requests.put(f"{sim_pair.dst.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30)
    assert r.status_code in (200, 201), r.text
    return sim_pair, client(sim_pair.src.url), client(sim_pair.dst.url)


def _doc(url: str, path: str) -> dict[str, Any]:
    r = requests.get(f"{url}{path}", params={"format": "json"}, auth=ADMIN, timeout=30)
    r.raise_for_status()
    return r.json()["items"][0]


def test_the_seeded_source_has_the_metadata_this_suite_relies_on(world) -> None:
    _sims, src, _dst = world
    inv = take_snapshot(src, PROJECT)
    s1 = inv.subjects["SUBJ001"]
    assert {"gender", "yob", "handedness", "group", "fields/study_arm"} <= set(s1.fields)
    mr = s1.experiments["SUBJ001_MR1"]
    assert mr.fields["visit_id"] == "V1" and mr.fields["acquisition_site"] == "Site North"
    assert mr.fields["fields/protocol_version"] == "2.1"
    assert mr.scans["3"].type == "T2w_SPACE (renamed)" != mr.scans["3"].series_description
    assert mr.scans["1"].quality == "questionable"
    assert mr.scans["1"].fields == {"note": "motion in the last volumes"}
    qc = mr.assessors["SUBJ001_MR1_QC"]
    assert qc.fields["note"] == "automatic QC: passed" and "QC_REPORT" in qc.resources
    clin = s1.experiments["SUBJ001_CLIN1"]
    assert not clin.is_imaging and "FORMS" in clin.resources and "fields/moca" in clin.fields
    partner = inv.subjects["PARTNER001"]
    assert partner.shared_from == "P_PARTNER"
    assert partner.experiments["PARTNER001_MR1"].shared_from == "P_PARTNER"


def test_shared_data_is_skipped_by_default_with_the_reason(world) -> None:
    _sims, src, dst = world
    plan = plan_now(src, dst, config())
    by = {c.address: c for c in plan.changes}
    assert by["PARTNER001"].status == ChangeStatus.SKIPPED
    assert by["PARTNER001"].reason == shared_reason("P_PARTNER")
    assert not any(s.address.startswith("PARTNER001") for s in plan.steps)
    assert drift_entries(src, dst, config()) != []  # the rest is not there yet
    assert all(not a.startswith("PARTNER001") for a, _, _ in drift_entries(src, dst, config()))


def test_transfer_carries_metadata_and_drift_is_clean(world, tmp_path: Path) -> None:
    sims, src, dst = world
    cfg = config(copy_shared=True, sync_new_only=False)
    state = StateDB(tmp_path / "state.db")

    plan = plan_now(src, dst, cfg)
    kinds = {s.kind for s in plan.steps}
    assert StepKind.CREATE_ASSESSOR in kinds and StepKind.UPDATE_EXPERIMENT in kinds
    result = apply_plan(plan, src, dst, state, options(tmp_path))
    assert result.status == "completed", (result.failed_steps, result.verification.failures)
    assert result.verification.failed == 0 and result.verification.checked >= 5

    assert drift_entries(src, dst, cfg) == []
    again = plan_now(src, dst, cfg)
    assert again.steps == (), [s.id for s in again.steps]

    # what arrived, read straight from the destination
    durl = sims.dst.url
    inv = take_snapshot(dst, PROJECT)
    s1 = inv.subjects["SUBJ001"]
    source = take_snapshot(src, PROJECT).subjects["SUBJ001"]
    assert s1.fields == source.fields and "fields/study_arm" in s1.fields
    mr = s1.experiments["SUBJ001_MR1"]
    assert mr.scans["3"].type == "T2w_SPACE (renamed)"  # not the import's SeriesDescription
    assert mr.scans["1"].fields == {"note": "motion in the last volumes"}
    assert mr.fields["fields/protocol_version"] == "2.1"
    qc = mr.assessors["SUBJ001_MR1_QC"]
    assert qc.fields["note"] == "automatic QC: passed"
    assert [f.path for f in qc.resources["QC_REPORT"].files] == ["qc_summary.txt"]
    assert "FORMS" in s1.experiments["SUBJ001_CLIN1"].resources
    assert inv.subjects["PARTNER001"].shared_from == ""  # copied as the project's own
    assert inv.subjects["PARTNER001"].experiments["PARTNER001_MR1"].scans
    session_doc = _doc(durl, f"/data/projects/{PROJECT}/subjects/SUBJ001/experiments/SUBJ001_MR1")
    assert session_doc["data_fields"]["project"] == PROJECT

    # a subject field changed on the source: drift names it, the next plan updates it
    r = requests.put(
        f"{sims.src.url}/data/projects/{PROJECT}/subjects/SUBJ001",
        params={"handedness": "ambidextrous", "gender": "other"},
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    ((address, drift_class, diffs),) = drift_entries(src, dst, cfg)
    assert (address, drift_class) == ("SUBJ001", DIFFERS)
    assert any(d.startswith("gender 'other'") for d in diffs)
    assert any(d.startswith("handedness 'ambidextrous'") for d in diffs)

    update = plan_now(src, dst, cfg)
    assert [(s.kind, s.address) for s in update.steps] == [(StepKind.UPDATE_SUBJECT, "SUBJ001")]
    result = apply_plan(update, src, dst, state, options(tmp_path))
    assert result.status == "completed", result.failed_steps
    assert drift_entries(src, dst, cfg) == []
    assert plan_now(src, dst, cfg).steps == ()


def test_a_reimported_scan_gets_its_renamed_type_back(world, tmp_path: Path) -> None:
    sims, src, dst = world
    cfg = config(sync_new_only=False)
    state = StateDB(tmp_path / "state.db")
    assert apply_plan(plan_now(src, dst, cfg), src, dst, state, options(tmp_path)).ok
    # the destination scan loses a file: the repair import resets its type to the DICOM's
    base = f"{sims.dst.url}/data/projects/{PROJECT}/subjects/SUBJ002/experiments/SUBJ002_MR1"
    files = requests.get(
        f"{base}/scans/3/resources/DICOM/files", params={"format": "json"}, auth=ADMIN, timeout=30
    ).json()["ResultSet"]["Result"]
    r = requests.delete(f"{sims.dst.url}{files[0]['URI']}", auth=ADMIN, timeout=30)
    assert r.status_code == 200, r.text
    repair = plan_now(src, dst, cfg)
    kinds = [(s.kind, s.address) for s in repair.steps]
    assert (StepKind.IMPORT_SCAN, "SUBJ002/SUBJ002_MR1/scans/3") in kinds
    assert (StepKind.UPDATE_EXPERIMENT, "SUBJ002/SUBJ002_MR1") in kinds
    result = apply_plan(repair, src, dst, state, options(tmp_path))
    assert result.status == "completed", (result.failed_steps, result.verification.failures)
    scan = take_snapshot(dst, PROJECT).subjects["SUBJ002"].experiments["SUBJ002_MR1"].scans["3"]
    assert scan.type == "T2w_SPACE (renamed)"
    assert plan_now(src, dst, cfg).steps == ()
