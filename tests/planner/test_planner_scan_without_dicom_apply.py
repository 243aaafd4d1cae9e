"""Scans without DICOM to import, end to end over two xnatsim servers: a NIfTI-only derived
scan is copied with its files, and a filter that leaves DICOM out still copies every scan's
other resources. Afterwards drift is in sync and a new plan is empty."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.drift import check_drift
from planner.inventory import Inventory
from planner.plan import Plan, StepKind
from planner.snapshot import take_snapshot
from planner.state import StateDB
from tests.planner.plans import plan_between
from xnatctl.views.summary import summary_line

ADMIN = ("admin", "admin")
PROJECT = "P"
EXCLUDE_DICOM = {"filtering": {"scan_resources": {"sync_type": "exclude", "items": ["DICOM"]}}}
NIFTI_FILES = {"dwi/tensor.nii.gz": b"\x1f\x8b" + b"t" * 4000, "dwi/fa.nii.gz": b"f" * 1500}


def client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def seed(url: str) -> None:
    from xnatsim.seed import SeedSpec, seed_project

    spec = SeedSpec(
        project=PROJECT,
        subjects=1,
        sessions_per_subject=2,
        scans_per_session=2,
        instances_per_scan=2,
        rows=16,
        cols=16,
    )
    seed_project(url, spec, auth=ADMIN)


def put(url: str, path: str, params: dict[str, str] | None = None, **kw: Any) -> None:
    reply = requests.put(f"{url}{path}", params=params or {}, auth=ADMIN, timeout=30, **kw)
    assert reply.status_code in (200, 201), f"PUT {path}: {reply.status_code} {reply.text}"


def add_derived_scan(url: str, subject: str, session: str) -> str:
    """Scan 99 of ``session``: NIfTI only, as a processing pipeline leaves it."""
    scan = f"/data/projects/{PROJECT}/subjects/{subject}/experiments/{session}/scans/99"
    put(
        url,
        scan,
        {
            "xsiType": "xnat:mrScanData",
            "type": "DTI_derived",
            "series_description": "DTI tensor fit",
            "quality": "usable",
            "note": "derived from the DWI",
        },
    )
    put(url, f"{scan}/resources/NIFTI", {"format": "NIFTI", "content": "DERIVED"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, body in NIFTI_FILES.items():
            zf.writestr(name, body)
    put(
        url,
        f"{scan}/resources/NIFTI/files",
        {"extract": "true", "inbody": "true"},
        data=buf.getvalue(),
        headers={"Content-Type": "application/zip"},
    )
    return scan


def plan_now(src: Any, dst: Any, config: dict[str, Any] | None = None) -> Plan:
    parsed = TransferConfig.from_dict(
        {"source_project": PROJECT, "dest_project": PROJECT, **(config or {})}
    )
    return plan_between(src, dst, parsed)


def options(tmp_path: Path) -> ApplyOptions:
    return ApplyOptions(
        workers=2,
        retry_count=1,
        retry_delay=0.01,
        verify=True,
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
    )


def scan_files(inv: Inventory) -> dict[str, tuple[tuple[str, int, str], ...]]:
    """Every scan resource's files (path, size, MD5) by session/scan/label; DICOM by path
    only, since the destination's site anonymization script rewrites its headers."""
    out: dict[str, tuple[tuple[str, int, str], ...]] = {}
    for s in inv.subjects.values():
        for e in s.experiments.values():
            for sc in e.scans.values():
                for label, r in sc.resources.items():
                    dicom = label == "DICOM"
                    out[f"{e.label}/{sc.id}/{label}"] = tuple(
                        (f.path, 0 if dicom else f.size, "" if dicom else f.digest) for f in r.files
                    )
    return out


def scans_of(inv: Inventory) -> dict[str, Any]:
    return {
        f"{e.label}/{sc.id}": sc
        for s in inv.subjects.values()
        for e in s.experiments.values()
        for sc in e.scans.values()
    }


@pytest.fixture
def servers(sim_pair, tmp_path: Path):
    seed(sim_pair.src.url)
    put(sim_pair.dst.url, f"/data/projects/{PROJECT}")
    state = StateDB(tmp_path / "state.db")
    yield sim_pair, client(sim_pair.src.url), client(sim_pair.dst.url), state
    state.close()


def _drift_cli(sims: Any, capsys: Any, monkeypatch: Any, *extra: str) -> tuple[int, str]:
    """``xnatctl project drift`` in-process: its exit code and what it printed."""
    from xnatctl.cli.main import main

    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    for name, srv in (("src", sims.src), ("dst", sims.dst)):
        assert main(["config", "add-profile", name, "--url", srv.url]) == 0
    capsys.readouterr()
    code = main(
        [
            "project",
            "drift",
            "-p",
            "src",
            "-P",
            PROJECT,
            "--dest-profile",
            "dst",
            "--dest-project",
            PROJECT,
            *extra,
        ]
    )
    return code, capsys.readouterr().out


def test_a_nifti_only_scan_is_copied_with_its_files(servers, tmp_path, capsys, monkeypatch):
    sims, src, dst, state = servers
    inv = take_snapshot(src, PROJECT)
    subject = next(iter(inv.subjects.values()))
    session = sorted(e.label for e in subject.experiments.values() if e.scans)[0]
    add_derived_scan(sims.src.url, subject.label, session)

    plan = plan_now(src, dst)
    create = [s for s in plan.steps if s.kind == StepKind.CREATE_SCAN]
    assert [s.address for s in create] == [f"{subject.label}/{session}/scans/99"]
    assert plan.summary.scans_to_create == 1
    assert "(1 without DICOM)" in summary_line(plan)

    result = apply_plan(plan, src, dst, state, options(tmp_path))
    assert result.status == "completed", result.failed_steps
    assert result.verification.failed == 0 and result.verification.checked >= 2
    assert result.scans_moved == plan.summary.scans_to_transfer + 1

    a, b = take_snapshot(src, PROJECT), take_snapshot(dst, PROJECT)
    files_a, files_b = scan_files(a), scan_files(b)
    assert files_a == files_b  # every scan resource, the derived NIfTI included, same MD5
    nifti = files_b[f"{session}/99/NIFTI"]
    assert sorted(p for p, _, _ in nifti) == sorted(NIFTI_FILES)
    assert all(digest for _, _, digest in nifti)
    copied = scans_of(b)[f"{session}/99"]
    assert set(copied.resources) == {"NIFTI"}  # nothing invented: no DICOM
    assert (copied.xsi_type, copied.type) == ("xnat:mrScanData", "DTI_derived")
    assert copied.series_description == "DTI tensor fit"
    assert copied.quality == "usable"
    assert copied.fields.get("note") == "derived from the DWI"

    assert check_drift(a, b, TransferConfig().filtering).in_sync
    code, out = _drift_cli(sims, capsys, monkeypatch)
    assert code == 0, out
    again = plan_now(src, dst)
    assert again.steps == (), [s.id for s in again.steps]
    assert summary_line(again) == "No changes: destination matches the source."


def test_excluding_dicom_copies_every_scans_other_resources(servers, tmp_path):
    _sims, src, dst, state = servers
    source = take_snapshot(src, PROJECT)
    plan = plan_now(src, dst, EXCLUDE_DICOM)
    kinds = {s.kind for s in plan.steps}
    assert StepKind.IMPORT_SCAN not in kinds
    n_scans = len(scans_of(source))
    assert plan.summary.scans_to_create == n_scans > 0

    result = apply_plan(plan, src, dst, state, options(tmp_path))
    assert result.status == "completed", result.failed_steps
    assert result.verification.failed == 0

    dest = take_snapshot(dst, PROJECT)
    assert set(scans_of(dest)) == set(scans_of(source))
    expected = {k: v for k, v in scan_files(source).items() if not k.endswith("/DICOM")}
    assert {k.rsplit("/", 1)[1] for k in expected} == {"NIFTI", "SNAPSHOTS"}
    assert scan_files(dest) == expected  # NIfTI and snapshots of every scan, no DICOM
    for key, scan in scans_of(dest).items():
        assert scan.type == scans_of(source)[key].type

    filtering = TransferConfig.from_dict(EXCLUDE_DICOM).filtering
    assert check_drift(source, dest, filtering).in_sync
    assert plan_now(src, dst, EXCLUDE_DICOM).steps == ()
    # unfiltered, the DICOM is what is missing: imports only
    full = plan_now(src, dst)
    assert {s.kind for s in full.steps} <= {StepKind.IMPORT_SCAN, StepKind.UPDATE_EXPERIMENT}


def test_dicom_filtered_out_but_held_by_the_destination_verifies(servers, tmp_path):
    sims, src, dst, state = servers
    assert apply_plan(plan_now(src, dst), src, dst, state, options(tmp_path)).ok
    inv = take_snapshot(src, PROJECT)
    subject = next(iter(inv.subjects.values()))
    exp = next(e for e in subject.experiments.values() if e.scans)
    scan_id = sorted(exp.scans)[0]
    owner = f"/data/projects/{PROJECT}/subjects/{subject.label}/experiments/{exp.label}"
    put(sims.src.url, f"{owner}/scans/{scan_id}/resources/EXTRA", {"format": "TXT"})
    put(
        sims.src.url,
        f"{owner}/scans/{scan_id}/resources/EXTRA/files/notes.txt",
        {"inbody": "true"},
        data=b"late notes",
        headers={"Content-Type": "application/octet-stream"},
    )

    plan = plan_now(src, dst, EXCLUDE_DICOM)
    assert [(s.kind, s.address) for s in plan.steps] == [
        (StepKind.UPLOAD_RESOURCE, f"{subject.label}/{exp.label}/scans/{scan_id}/EXTRA")
    ]
    result = apply_plan(plan, src, dst, state, options(tmp_path))
    assert result.status == "completed", (result.failed_steps, result.verification.failures)
    assert result.verification.checked == 1 and result.verification.failed == 0
