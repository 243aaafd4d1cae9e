"""A project holding real-world DICOM variety, transferred end to end through the CLI.

The source's sessions are imported the way a site fills XNAT: DICOM-zip with the site script
on (`GradualDicomImporter.call`), so the source holds what XNAT 1.8.11 stores for each kind
(tests/xnatsim/test_xnatsim_dicom_variety.py). The transfer downloads each scan's zip, checks it
(planner/zipcheck.py), imports it at the destination (whose site script rewrites the headers
again) and verifies by names, counts and remembered digests (planner/sameness.py).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pydicom
import pytest
import requests

from tests.xnatsim.variety import BY_KEY, VARIANTS, dataset, variant_zip

from .conftest import ADMIN, PROJECT, Pair


def _import(url: str, path: Path, **params: str) -> None:
    with open(path, "rb") as fh:
        reply = requests.post(
            f"{url}/data/services/import",
            params={"import-handler": "DICOM-zip", "dest": "/archive", **params},
            data=fh,
            headers={"Content-Type": "application/zip"},
            auth=ADMIN,
            timeout=60,
        )
    assert reply.status_code == 200, reply.text


def _sop_uids(url: str) -> dict[str, set[str]]:
    """Session label -> SOPInstanceUIDs of every DICOM file in it, read from the files."""
    experiments = requests.get(
        f"{url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    out: dict[str, set[str]] = {}
    for exp in experiments:
        rows = requests.get(
            f"{url}/data/experiments/{exp['ID']}/scans/ALL/files",
            params={"format": "json"},
            auth=ADMIN,
            timeout=30,
        ).json()["ResultSet"]["Result"]
        uids = out.setdefault(exp["label"], set())
        for row in rows:
            data = requests.get(f"{url}{row['URI']}", auth=ADMIN, timeout=30).content
            uids.add(str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID))
    return out


def _scans(url: str) -> dict[str, tuple[str, str, str]]:
    """Scan ID -> (xsiType, series UID, type) of session VAR1_MR."""
    rows = requests.get(
        f"{url}/data/projects/{PROJECT}/experiments/VAR1_MR/scans",
        params={"format": "json", "columns": "ID,xsiType,UID,type"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    return {r["ID"]: (r["xsiType"], r["UID"], r["type"]) for r in rows}


@pytest.fixture
def variety(sim_pair, cli, monkeypatch, tmp_path) -> Pair:
    """A source project with one session of every variant and one routed from non-ASCII
    headers; an empty destination project; two profiles."""
    src, dst = sim_pair
    for srv in (src, dst):
        requests.put(
            f"{srv.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30
        ).raise_for_status()
    mix = tmp_path / "mix.zip"
    variant_zip(mix, list(VARIANTS), study="mix", instances=2)
    _import(src.url, mix, PROJECT_ID=PROJECT, SUBJECT_ID="VAR1", EXPT_LABEL="VAR1_MR")
    routed = tmp_path / "routed.zip"
    with zipfile.ZipFile(routed, "w") as zf:
        for n in (1, 2):
            ds = dataset(BY_KEY["utf8"], study="routed", series=1, instance=n)
            ds.PatientComments = f"Project: {PROJECT} Subject: VAR2 Session: VAR2_MR"
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            zf.writestr(f"IMAGES/IM{n:04d}", out.getvalue())
    _import(src.url, routed)
    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    assert cli("config", "add-profile", "src", "--url", src.url).code == 0
    assert cli("config", "add-profile", "dst", "--url", dst.url).code == 0
    return Pair(src, dst)


def _as_files(tmp_path, *, sync_new_only: bool = True) -> list[str]:
    """Transfer options allowing scans refused by the cross-modality rule to go as files."""
    config = tmp_path / "transfer.yaml"
    config.write_text(
        f"source_project: {PROJECT}\ndest_project: {PROJECT}\n"
        f"sync_new_only: {str(sync_new_only).lower()}\ncross_modality_as_files: true\n"
    )
    return ["--config", str(config)]


def test_a_scan_of_another_modality_fails_with_what_to_do_by_default(variety, cli) -> None:
    # PrearcSessionArchiver.checkForConflicts (preventCrossModalityMerge, on by default)
    # refuses the RT structure set, PDF and secondary captures of the MR session: without
    # cross_modality_as_files their steps fail and say why, never bypassing the destination's
    # site anonymization unasked; the MR scans arrive.
    first = cli("project", "transfer", *variety.pair_args(), "--yes")
    assert first.code == 1, first.err + first.out
    text = first.out + first.err
    assert "preventCrossModalityMerge" in text and "cross_modality_as_files: true" in text
    arrived = _scans(variety.dst.url)
    assert arrived and len(arrived) < len(_scans(variety.src.url))


def test_a_project_of_mixed_dicom_transfers_verifies_and_stays_in_sync(
    variety, cli, tmp_path
) -> None:
    source = _sop_uids(variety.src.url)
    assert len(source["VAR1_MR"]) == 2 * len(VARIANTS) and len(source["VAR2_MR"]) == 2
    options = _as_files(tmp_path)

    first = cli("project", "transfer", *variety.pair_args(), "--yes", "-o", "json", *options)
    assert first.code == 0, first.err + first.out
    summary = json.loads(first.out)
    assert summary["status"] == "completed", summary
    assert summary["verification"]["failed"] == 0 and summary["verification"]["checked"] > 0

    assert _sop_uids(variety.dst.url) == source  # every instance arrived
    # Scans of another modality than the MR session's cannot be merged in by import
    # (PrearcSessionArchiver.checkForConflicts, preventCrossModalityMerge): they arrive as
    # scans of the source's type and series UID with their files uploaded (planner.modalitymerge).
    assert _scans(variety.dst.url) == _scans(variety.src.url)

    drift = cli("project", "drift", *variety.pair_args())
    assert drift.code == 0, drift.out
    again = cli("project", "transfer", *variety.pair_args(), "--yes", *options)
    assert again.code == 0, again.err
    assert "No changes" in again.out, again.out


def test_a_changed_file_of_a_scan_stored_as_files_is_repaired(variety, cli, tmp_path) -> None:
    # The RT structure set (scan 12) cannot be merged into the MR session by import
    # (PrearcSessionArchiver.checkForConflicts); its repair goes the same way as its transfer.
    first = cli("project", "transfer", *variety.pair_args(), "--yes", *_as_files(tmp_path))
    assert first.code == 0, first.err + first.out
    owner = f"/data/projects/{PROJECT}/subjects/VAR1/experiments/VAR1_MR/scans/12"
    rows = requests.get(
        f"{variety.src.url}{owner}/resources/DICOM/files",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    name, uri = rows[0]["Name"], rows[0]["URI"]
    ds = pydicom.dcmread(io.BytesIO(requests.get(f"{variety.src.url}{uri}", auth=ADMIN).content))
    ds.StructureSetLabel = "EDITED"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    put = requests.put(
        f"{variety.src.url}{owner}/resources/DICOM/files/{name}",
        params={"overwrite": "true", "inbody": "true"},
        data=out.getvalue(),
        headers={"Content-Type": "application/octet-stream"},
        auth=ADMIN,
        timeout=30,
    )
    assert put.status_code in (200, 201), put.text

    drift = cli("project", "drift", *variety.pair_args())
    assert drift.code == 2, drift.out
    options = _as_files(tmp_path, sync_new_only=False)
    fixed = cli("project", "transfer", *variety.pair_args(), "--yes", *options)
    assert fixed.code == 0, fixed.err + fixed.out
    assert cli("project", "drift", *variety.pair_args()).code == 0
    got = requests.get(f"{variety.dst.url}{owner}/resources/DICOM/files/{name}", auth=ADMIN)
    assert pydicom.dcmread(io.BytesIO(got.content)).StructureSetLabel == "EDITED"
