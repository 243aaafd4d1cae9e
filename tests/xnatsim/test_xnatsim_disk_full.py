"""A body larger than the disk allows is refused with a reason, and leaves nothing behind."""

from __future__ import annotations

import errno
import io
import zipfile

import requests

from xnatsim import uploads

ADMIN = ("admin", "admin")


def _tmp_is_empty(srv) -> bool:
    return not any((srv.data_dir / "tmp").iterdir())


def test_upload_bigger_than_free_space_is_refused_up_front(xnatsim_factory, monkeypatch):
    srv = xnatsim_factory()
    requests.put(f"{srv.url}/data/projects/P", auth=ADMIN, timeout=30).raise_for_status()
    monkeypatch.setattr(uploads, "free_bytes", lambda _path: uploads.DISK_RESERVE + 1000)
    reply = requests.put(
        f"{srv.url}/data/projects/P/resources/DOCS/files/big.bin",
        params={"inbody": "true"},
        data=b"x" * 5000,
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code == 507
    assert "disk space" in reply.text
    listing = requests.get(
        f"{srv.url}/data/projects/P/files", params={"format": "json"}, auth=ADMIN, timeout=30
    )
    assert listing.json()["ResultSet"]["Result"] == []
    assert _tmp_is_empty(srv)


def test_disk_filling_up_mid_import_is_507_and_nothing_is_archived(
    xnatsim_factory, monkeypatch, tmp_path
):
    srv = xnatsim_factory()
    requests.put(f"{srv.url}/data/projects/P", auth=ADMIN, timeout=30).raise_for_status()

    def full_disk(_chunks, _dest):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads, "write_stream", full_disk)
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as zf:
        zf.writestr("a.dcm", b"not really dicom")
    reply = requests.post(
        f"{srv.url}/data/services/import",
        params={"import-handler": "DICOM-zip", "PROJECT_ID": "P", "dest": "/archive"},
        data=body.getvalue(),
        headers={"Content-Type": "application/zip"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code == 507
    assert "disk space" in reply.text
    rows = requests.get(
        f"{srv.url}/data/projects/P/experiments", params={"format": "json"}, auth=ADMIN
    ).json()["ResultSet"]["Result"]
    assert rows == []
    assert _tmp_is_empty(srv)
