"""One notion of "the same DICOM", end to end over two xnatsim servers and the CLI.

Real XNAT 1.8.11 applies its site-wide anonymization script on every import by default
(``SiteConfigPreferences.getEnableSitewideAnonymizationScript``; the default script sets
StudyDescription, PatientName and PatientID, and DicomEdit records itself in
DeidentificationMethodCodeSequence), so a destination's DICOM differs in size and MD5 from the
source's even between projects of the same ID. xnatsim does the same by default, so these
tests see a real rewrite on every import.

Also a source scan whose ID is not its SeriesNumber: DICOM import numbers the destination
scan by its SeriesNumber (TestImport.testModifiedSeriesUIDs relies on that numbering), so
verification, drift and a second transfer must pair the two by series UID, as the plan does."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from pydicom.uid import generate_uid

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.plan import Plan, StepKind
from planner.snapshot import take_snapshot
from planner.state import PairKey, StateDB
from tests.planner.plans import plan_between

from .renumbered import add_renumbered_scan

ADMIN = ("admin", "admin")
PROJECT = "STUDY"


def client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def _files(url: str, owner: str) -> dict[str, str]:
    """Name -> absolute URI of the DICOM files of one scan (``owner`` is its path)."""
    reply = requests.get(
        f"{url}{owner}/resources/DICOM/files", params={"format": "json"}, auth=ADMIN, timeout=30
    )
    reply.raise_for_status()
    return {r["Name"]: f"{url}{r['URI']}" for r in reply.json()["ResultSet"]["Result"]}


def _put_file(url: str, owner: str, name: str, body: bytes) -> None:
    reply = requests.put(
        f"{url}{owner}/resources/DICOM/files/{name}",
        params={"overwrite": "true", "inbody": "true"},
        data=body,
        headers={"Content-Type": "application/octet-stream"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text


def replace_header(url: str, owner: str, name: str) -> None:
    """Replace one destination file with a header-modified copy of the same name, as someone
    editing the destination after the transfer would."""
    raw = requests.get(_files(url, owner)[name], auth=ADMIN, timeout=30)
    raw.raise_for_status()
    ds = pydicom.dcmread(io.BytesIO(raw.content))
    ds.PatientName = "SOMEONE_ELSE"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    _put_file(url, owner, name, out.getvalue())


def _plan(src: Any, dst: Any) -> Plan:
    return plan_between(
        src, dst, TransferConfig.from_dict({"source_project": PROJECT, "dest_project": PROJECT})
    )


def _scan_owner(subject: str, session: str, scan: str) -> str:
    return f"/data/projects/{PROJECT}/subjects/{subject}/experiments/{session}/scans/{scan}"


@pytest.fixture
def rewritten(seeded, tmp_path: Path):
    """The seeded pair after one transfer (the destination's site script rewrote every DICOM
    header); the state DB is the CLI's, so the CLI's drift and transfer see what apply
    remembered."""
    src, dst = client(seeded.src.url), client(seeded.dst.url)
    state = StateDB(Path(os.environ["XNATCTL_CONFIG_DIR"]) / "transfer.db")
    options = ApplyOptions(
        workers=2,
        retry_count=1,
        retry_delay=0.01,
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
    )
    plan = _plan(src, dst)
    result = apply_plan(plan, src, dst, state, options)
    assert result.status == "completed", (result.failed_steps, result.verification.failures)
    assert result.verification.failed == 0 and result.verification.checked > 0
    pair = PairKey(src.url, PROJECT, dst.url, PROJECT)
    imported = [s for s in plan.steps if s.kind == StepKind.IMPORT_SCAN]
    assert imported and len(state.remembered_scans(pair)) == len(imported)
    state.close()
    yield seeded, src, dst
    src.close()
    dst.close()


def _one_scan(src: Any) -> tuple[str, str, str]:
    inv = take_snapshot(src, PROJECT)
    for s in sorted(inv.subjects.values(), key=lambda x: x.label):
        for e in sorted(s.experiments.values(), key=lambda x: x.label):
            for sc in sorted(e.scans.values(), key=lambda x: x.id):
                if "DICOM" in sc.resources and not e.shared_from and not s.shared_from:
                    return s.label, e.label, sc.id
    raise AssertionError("no scan with DICOM in the seeded source")


def _dicom_digests(client_: Any, subject: str, session: str, scan: str) -> dict[str, str]:
    inv = take_snapshot(client_, PROJECT)
    res = inv.subjects[subject].experiments[session].scans[scan].resources["DICOM"]
    return {f.path: f.digest for f in res.files}


def test_a_destination_that_rewrites_headers_is_in_sync(rewritten, cli) -> None:
    pair, src, dst = rewritten
    subject, session, scan = _one_scan(src)
    ours, theirs = (_dicom_digests(c, subject, session, scan) for c in (src, dst))
    assert ours.keys() == theirs.keys() and all(ours[k] != theirs[k] for k in ours)

    drift = cli("project", "drift", *pair.pair_args())
    assert drift.code == 0, drift.out
    again = cli("project", "transfer", *pair.pair_args(), "--yes")
    assert again.code == 0, again.err
    assert "No changes" in again.out, again.out


def _compare_all(tmp_path: Path) -> str:
    """A config that compares subjects an earlier run completed (``sync_new_only`` skips
    them, by design, and only notes their new data)."""
    path = tmp_path / "transfer.yaml"
    path.write_text(f"source_project: {PROJECT}\ndest_project: {PROJECT}\nsync_new_only: false\n")
    return str(path)


def test_a_source_file_resent_with_other_content_is_a_difference(rewritten, cli, tmp_path) -> None:
    pair, src, _dst = rewritten
    subject, session, scan = _one_scan(src)
    owner = _scan_owner(subject, session, scan)
    name, uri = sorted(_files(pair.src.url, owner).items())[0]
    ds = pydicom.dcmread(io.BytesIO(requests.get(uri, auth=ADMIN, timeout=30).content))
    pixels = bytearray(ds.PixelData)
    pixels[0] ^= 0xFF  # other pixel data, same name, same size
    ds.PixelData = bytes(pixels)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    _put_file(pair.src.url, owner, name, out.getvalue())

    drift = cli("project", "drift", *pair.pair_args())
    assert drift.code == 2, drift.out
    assert "source files changed since they were last found equal" in drift.out
    fixed = cli(
        "project", "transfer", *pair.pair_args(), "--yes", "--config", _compare_all(tmp_path)
    )
    assert fixed.code == 0, fixed.err + fixed.out
    after = cli("project", "drift", *pair.pair_args())
    assert after.code == 0, after.out + fixed.out
    # The repaired destination file carries the new pixels (its header is the destination's).
    repaired = _files(pair.dst.url, owner)[name]
    got = pydicom.dcmread(io.BytesIO(requests.get(repaired, auth=ADMIN, timeout=30).content))
    assert got.PixelData == ds.PixelData


def test_a_destination_file_replaced_later_is_a_difference(rewritten, cli) -> None:
    pair, src, _dst = rewritten
    subject, session, scan = _one_scan(src)
    owner = _scan_owner(subject, session, scan)
    first = sorted(_files(pair.dst.url, owner))[0]
    replace_header(pair.dst.url, owner, first)
    drift = cli("project", "drift", *pair.pair_args())
    assert drift.code == 2, drift.out
    assert "destination files changed since they were last found equal" in drift.out


def test_a_removed_or_added_instance_is_a_difference(rewritten, cli, tmp_path) -> None:
    pair, src, _dst = rewritten
    subject, session, scan = _one_scan(src)
    owner = _scan_owner(subject, session, scan)
    name = sorted(_files(pair.dst.url, owner))[0]
    gone = requests.delete(f"{pair.dst.url}{owner}/resources/DICOM/files/{name}", auth=ADMIN)
    assert gone.status_code == 200, gone.text
    drift = cli("project", "drift", *pair.pair_args())
    assert drift.code == 2 and f"{name} missing on the destination" in drift.out, drift.out

    fixed = cli(
        "project", "transfer", *pair.pair_args(), "--yes", "--config", _compare_all(tmp_path)
    )
    assert fixed.code == 0, fixed.err + fixed.out
    assert cli("project", "drift", *pair.pair_args()).code == 0

    extra = _instance(pair.src.url, owner, number=99)
    drift = cli("project", "drift", *pair.pair_args())
    assert drift.code == 2 and f"{extra} missing on the destination" in drift.out, drift.out


def _instance(url: str, owner: str, *, number: int) -> str:
    """Add one more instance, copied from the scan's first file with a new SOPInstanceUID."""
    uri = sorted(_files(url, owner).items())[0][1]
    ds = pydicom.dcmread(io.BytesIO(requests.get(uri, auth=ADMIN, timeout=30).content))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.InstanceNumber = number
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    new = f"added-{number}.dcm"
    _put_file(url, owner, new, out.getvalue())
    return new


def test_a_scan_renumbered_by_the_import_verifies_and_stays_in_sync(seeded, cli) -> None:
    # Source scan 7 holds a series whose SeriesNumber is 3 (a scan re-labelled on the source);
    # the destination's import makes it scan 3. Plan, verification and drift pair them by
    # series UID (planner.walk), so the transfer verifies and a second one has nothing to do.
    url = seeded.src.url
    series = add_renumbered_scan(url, PROJECT, instances=2)

    src = client(url)
    try:
        scan = take_snapshot(src, PROJECT).subjects["RENUM"].experiments["RENUM_MR1"].scans["7"]
        assert scan.uid == series and len(scan.resources["DICOM"].files) == 2
    finally:
        src.close()

    first = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert first.code == 0, first.err + first.out
    dst = client(seeded.dst.url)
    try:
        scans = take_snapshot(dst, PROJECT).subjects["RENUM"].experiments["RENUM_MR1"].scans
    finally:
        dst.close()
    assert set(scans) == {"3"} and scans["3"].uid == series  # numbered by SeriesNumber
    drift = cli("project", "drift", *seeded.pair_args())
    assert drift.code == 0, drift.out
    again = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert again.code == 0 and "No changes" in again.out, again.out
