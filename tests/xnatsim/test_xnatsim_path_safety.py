"""No request may reach outside the archive folder it names: dot segments, plain or
percent-encoded in any spelling, are refused before any route runs (XNAT's servlet firewall
does the same before its REST resources; see `xnatsim/paths.py`)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import zipfile
from urllib.parse import urlsplit

import pytest

VICTIM = b"victim DICOM bytes"
EXP = "/data/projects/P1/subjects/S1/experiments/E1"
DOTS = ["..", "%2e%2e", "%2E%2E", "%2E.", ".%2e", "%2e.", "."]


def raw(srv, method: str, path: str, body: bytes = b"", ctype: str = "") -> tuple[int, bytes]:
    """Send `path` byte for byte: HTTP clients such as requests fold dot segments away."""
    host = urlsplit(srv.url)
    conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
    headers = {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()}
    if ctype:
        headers["Content-Type"] = ctype
    try:
        conn.request(method, path, body=body or None, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.fixture
def victim(srv, admin):
    """Session E1 of P1 with one DICOM file; the file every attack below aims at."""
    exp = f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1"
    assert admin.put(exp, params={"xsiType": "xnat:mrSessionData"}).status_code == 201
    assert admin.put(f"{exp}/scans/1", params={"xsiType": "xnat:mrScanData"}).ok
    url = f"{exp}/scans/1/resources/DICOM/files/1.dcm"
    assert admin.put(url, data=VICTIM, params={"inbody": "true"}).ok
    return url


def _victim_intact(srv, admin, victim) -> None:
    assert admin.get(victim).content == VICTIM
    rows = admin.get(victim.rsplit("/", 1)[0], params={"format": "json"}).json()
    (row,) = rows["ResultSet"]["Result"]
    assert row["Size"] == str(len(VICTIM))
    assert row["digest"] == hashlib.md5(VICTIM).hexdigest()
    on_disk = srv.data_dir / "archive/P1/arc001/E1/SCANS/1/DICOM/1.dcm"
    assert on_disk.read_bytes() == VICTIM


@pytest.mark.parametrize("dots", DOTS)
def test_put_with_dot_resource_label_is_refused(srv, admin, victim, dots):
    # The reported attack: a project resource labelled `..` is the project folder itself,
    # so `files/arc001/...` named another session's DICOM.
    path = f"/data/projects/P1/resources/{dots}/files/arc001/E1/SCANS/1/DICOM/1.dcm?inbody=true"
    status, body = raw(srv, "PUT", path, b"overwritten")
    assert status == 400, body
    assert b"<h3>" in body
    _victim_intact(srv, admin, victim)
    assert [
        r["label"]
        for r in admin.get(f"{srv.url}/data/projects/P1/resources").json()["ResultSet"]["Result"]
    ] == []


@pytest.mark.parametrize("dots", DOTS)
def test_put_with_dot_file_path_is_refused(srv, admin, victim, dots):
    path = f"{EXP}/resources/R/files/{dots}/{dots}/SCANS/1/DICOM/1.dcm?inbody=true"
    status, _ = raw(srv, "PUT", path, b"overwritten")
    assert status == 400
    _victim_intact(srv, admin, victim)


@pytest.mark.parametrize("dots", ["%2e%2e", "%2E.", ".."])
def test_put_with_dot_object_labels_is_refused(srv, admin, victim, dots):
    for path in (
        f"/data/projects/P1/subjects/{dots}",
        f"/data/projects/P1/subjects/S1/experiments/{dots}?xsiType=xnat:mrSessionData",
        f"/data/projects/P1/subjects/S1/experiments/E1/scans/{dots}?xsiType=xnat:mrScanData",
        f"/data/projects/P1/subjects/S1/experiments/E1/scans/{dots}/resources/DICOM/files/x",
    ):
        status, _ = raw(srv, "PUT", path, b"x")
        assert status == 400, path
    _victim_intact(srv, admin, victim)


@pytest.mark.parametrize("dots", ["%2e%2e", "%2E.", ".%2E", "."])
def test_get_with_dot_segments_is_refused(srv, admin, victim, dots):
    # A project file named like the victim's relative path must not be served from E1.
    proj = f"{srv.url}/data/projects/P1/resources/R/files/arc001/E1/SCANS/1/DICOM/1.dcm"
    assert admin.put(proj, data=b"project copy", params={"inbody": "true"}).ok
    for path in (
        f"/data/projects/P1/resources/R/files/{dots}/{dots}/arc001/E1/SCANS/1/DICOM/1.dcm",
        f"/data/projects/P1/subjects/S1/experiments/E1/scans/1/resources/DICOM/files/{dots}/1.dcm",
        f"/data/projects/P1/subjects/S1/experiments/E1/scans/ALL/resources/{dots}/files?format=zip",
        f"/data/projects/P1/resources/{dots}/files",
    ):
        status, body = raw(srv, "GET", path)
        assert status == 400, (path, body)
    _victim_intact(srv, admin, victim)


@pytest.mark.parametrize("dots", ["%2e%2e", "%2E.", ".."])
def test_delete_with_dot_segments_is_refused(srv, admin, victim, dots):
    for path in (
        f"/data/projects/P1/resources/{dots}/files/arc001/E1/SCANS/1/DICOM/1.dcm",
        f"/data/projects/P1/subjects/S1/experiments/E1/scans/1/resources/DICOM/files/{dots}/DICOM/1.dcm",
        f"/data/projects/P1/subjects/{dots}?removeFiles=true",
        f"/data/projects/P1/subjects/S1/experiments/E1/scans/1/resources/{dots}?removeFiles=true",
    ):
        status, _ = raw(srv, "DELETE", path)
        assert status == 400, path
    _victim_intact(srv, admin, victim)


def test_encoded_slash_cannot_smuggle_dot_segments(srv, admin, victim):
    path = "/data/projects/P1/resources/R%2F..%2F..%2Farc001/files/E1/SCANS/1/DICOM/1.dcm"
    status, _ = raw(srv, "PUT", path + "?inbody=true", b"overwritten")
    assert status == 400
    _victim_intact(srv, admin, victim)


@pytest.mark.parametrize(
    "entry",
    [
        "../../arc001/E1/SCANS/1/DICOM/1.dcm",
        "sub/../../../SCANS/1/DICOM/1.dcm",
        "/abs/1.dcm",
        "..\\..\\SCANS\\1\\DICOM\\1.dcm",
    ],
)
def test_extract_refuses_escaping_entry_names(srv, admin, victim, entry):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("fine.txt", b"ok")
        zf.writestr(entry, b"overwritten")
    url = f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1/resources/UP/files"
    r = admin.post(
        url,
        data=buf.getvalue(),
        params={"extract": "true", "overwrite": "true"},
        headers={"Content-Type": "application/zip"},
    )
    assert r.status_code == 400
    assert "outside" in r.text
    # Nothing of the refused archive was kept, not even its good entry.
    assert admin.get(url, params={"format": "json"}).json()["ResultSet"]["Result"] == []
    _victim_intact(srv, admin, victim)


def test_plain_dotted_names_still_work(srv, admin, victim):
    # Only whole `.`/`..` segments are refused: names holding dots are ordinary names.
    url = f"{srv.url}{EXP}/resources/R.v1/files/..hidden/a..b.txt"
    assert admin.put(url, data=b"x", params={"inbody": "true"}).status_code == 200
    assert admin.get(url).content == b"x"
    _victim_intact(srv, admin, victim)
