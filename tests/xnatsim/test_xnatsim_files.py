"""File uploads and downloads: bodies, multipart, extract, overwrite, zip layouts, digests."""

import hashlib
import io
import tarfile
import zipfile

import pytest


@pytest.fixture
def exp(srv, admin):
    url = f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1"
    admin.put(url, params={"xsiType": "xnat:mrSessionData"})
    admin.put(f"{url}/scans/1", params={"xsiType": "xnat:mrScanData", "type": "T1 w/o"})
    admin.put(f"{url}/scans/2", params={"xsiType": "xnat:mrScanData", "type": "rest"})
    return url


def _files(admin, url, **params):
    r = admin.get(url, params=params)
    assert r.status_code == 200, r.text
    return r.json()["ResultSet"]["Result"]


def test_inbody_and_octet_stream_uploads(admin, exp):
    res = f"{exp}/scans/1/resources/DICOM/files"
    assert admin.put(f"{res}/a.dcm", data=b"aaa", params={"inbody": "true"}).status_code == 200
    r = admin.put(
        f"{res}/sub/b.dcm", data=b"bbbb", headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 200
    rows = _files(admin, res)
    assert {r["Name"]: r["digest"] for r in rows} == {
        "a.dcm": hashlib.md5(b"aaa").hexdigest(),
        "b.dcm": hashlib.md5(b"bbbb").hexdigest(),
    }
    assert all(r["URI"].startswith("/data/experiments/") for r in rows)
    uri = next(r["URI"] for r in rows if r["Name"] == "b.dcm")
    assert uri.endswith("/files/sub/b.dcm")


def test_multipart_upload_uses_part_name(admin, exp, srv):
    res = f"{exp}/resources/NOTES/files"
    r = admin.post(res, files={"file": ("report.txt", io.BytesIO(b"hello\r\n--x"), "text/plain")})
    assert r.status_code == 200
    rows = _files(admin, res)
    assert [r["Name"] for r in rows] == ["report.txt"]
    body = admin.get(f"{srv.url}{rows[0]['URI']}").content
    assert body == b"hello\r\n--x"


def test_duplicates_and_overwrite(admin, exp):
    url = f"{exp}/resources/R/files/x.txt"
    assert admin.put(url, data=b"one", params={"inbody": "true"}).status_code == 200
    r = admin.put(url, data=b"two", params={"inbody": "true"})
    assert r.status_code == 200 and r.json() == {"duplicates": ["x.txt"]}
    assert admin.get(url).content == b"one"
    assert admin.put(url, data=b"two", params={"inbody": "true", "overwrite": "true"}).ok
    assert admin.get(url).content == b"two"
    assert _files(admin, f"{exp}/resources/R/files")[0]["digest"] == hashlib.md5(b"two").hexdigest()


def test_extract_zip_and_refuse_escaping_entries(admin, exp, srv):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("dir/one.txt", b"1")
        zf.writestr("two.txt", b"22")
    res = f"{exp}/resources/UNZ/files"
    r = admin.put(
        f"{res}/bundle.zip",
        data=buf.getvalue(),
        params={"extract": "true"},
        headers={"Content-Type": "application/zip"},
    )
    assert r.status_code == 200
    assert sorted(r["URI"].split("/files/")[1] for r in _files(admin, res)) == [
        "dir/one.txt",
        "two.txt",
    ]
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr("../../escape.txt", b"bad")
    r = admin.put(
        f"{exp}/resources/EVIL/files/e.zip",
        data=evil.getvalue(),
        params={"extract": "true"},
        headers={"Content-Type": "application/zip"},
    )
    assert r.status_code == 400 and "outside" in r.text
    assert _files(admin, f"{exp}/resources/EVIL/files") == []
    assert not list(srv.data_dir.rglob("escape.txt"))
    assert not list(srv.data_dir.rglob("ok.txt"))


def test_extract_tgz(admin, exp):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    r = admin.post(
        f"{exp}/resources/TGZ/files",
        params={"extract": "true"},
        files={"file": ("x.tar.gz", buf.getvalue(), "application/gzip")},
    )
    assert r.status_code == 200
    assert [r["Name"] for r in _files(admin, f"{exp}/resources/TGZ/files")] == ["b.txt"]


@pytest.fixture
def loaded(admin, exp):
    for scan, name, data in (
        ("1", "a.dcm", b"A" * 10),
        ("1", "b.dcm", b"B" * 20),
        ("2", "c.dcm", b"C" * 30),
    ):
        admin.put(
            f"{exp}/scans/{scan}/resources/DICOM/files/{name}", data=data, params={"inbody": "true"}
        )
    admin.put(f"{exp}/scans/2/resources/NIFTI/files/c.nii", data=b"N", params={"inbody": "1"})
    admin.put(f"{exp}/resources/SESS/files/s.txt", data=b"S", params={"inbody": "true"})
    return exp


def _zip_names(resp):
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"] == "application/zip"
    assert "Content-Length" not in resp.headers
    assert resp.headers.get("Transfer-Encoding") == "chunked"
    zf = zipfile.ZipFile(io.BytesIO(resp.content))
    assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    assert zf.testzip() is None
    return sorted(zf.namelist())


def test_zip_layouts(admin, loaded):
    r = admin.get(f"{loaded}/scans/1/resources/DICOM/files", params={"format": "zip"})
    assert 'filename="E1.zip"' in r.headers["Content-Disposition"]
    assert _zip_names(r) == [
        "E1/scans/1-T1_w_o/resources/DICOM/files/a.dcm",
        "E1/scans/1-T1_w_o/resources/DICOM/files/b.dcm",
    ]
    r = admin.get(f"{loaded}/scans/ALL/files", params={"format": "zip", "structure": "simplified"})
    assert _zip_names(r) == [
        "E1/scans/1-T1_w_o/DICOM/a.dcm",
        "E1/scans/1-T1_w_o/DICOM/b.dcm",
        "E1/scans/2-rest/DICOM/c.dcm",
        "E1/scans/2-rest/NIFTI/c.nii",
    ]
    r = admin.get(f"{loaded}/scans/2/files", params={"format": "zip", "structure": "improved"})
    assert _zip_names(r) == ["E1/scans/2_rest/DICOM/c.dcm", "E1/scans/2_rest/NIFTI/c.nii"]
    r = admin.get(f"{loaded}/resources/SESS/files", params={"format": "zip"})
    assert _zip_names(r) == ["E1/resources/SESS/files/s.txt"]


def test_scan_selection_lists_and_session_files(admin, loaded):
    rows = _files(admin, f"{loaded}/scans/1,2/files")
    assert sorted(r["Name"] for r in rows) == ["a.dcm", "b.dcm", "c.dcm", "c.nii"]
    rows = _files(admin, f"{loaded}/scans/*/files", collection="DICOM")
    assert len(rows) == 3
    assert [r["Name"] for r in _files(admin, f"{loaded}/files")] == ["s.txt"]


def test_targz_and_raw_file(admin, loaded):
    r = admin.get(f"{loaded}/scans/ALL/files", params={"format": "tar.gz"})
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tf:
        names = sorted(tf.getnames())
        data = tf.extractfile("E1/scans/2-rest/resources/DICOM/files/c.dcm").read()
    assert len(names) == 4 and data == b"C" * 30
    raw = admin.get(f"{loaded}/scans/1/resources/DICOM/files/b.dcm")
    assert raw.content == b"B" * 20 and raw.headers["Content-Length"] == "20"


def test_no_files(admin, exp):
    url = f"{exp}/scans/2/files"
    assert admin.get(url, params={"format": "zip"}).status_code == 404
    r = admin.get(url, params={"format": "zip", "accept-not-found": "true"})
    assert r.status_code == 204
    assert admin.get(f"{exp}/scans/1/resources/NONE/files/x").status_code == 404


def test_project_and_subject_resources(admin, srv):
    p = f"{srv.url}/data/projects/P1"
    admin.put(f"{p}/subjects/S1")
    assert admin.put(f"{p}/resources/DOCS/files/p.txt", data=b"p", params={"inbody": "true"}).ok
    assert admin.put(
        f"{p}/subjects/S1/resources/FORMS/files/s.txt", data=b"s", params={"inbody": "true"}
    ).ok
    assert [r["Name"] for r in _files(admin, f"{p}/files")] == ["p.txt"]
    rows = _files(admin, f"{p}/subjects/S1/files")
    assert rows[0]["Name"] == "s.txt"
    assert admin.get(f"{srv.url}{rows[0]['URI']}").content == b"s"
    assert (srv.data_dir / "archive/P1/resources/DOCS/p.txt").read_bytes() == b"p"


def test_chunked_upload_and_head(admin, exp):
    def gen():
        for _ in range(4):
            yield b"z" * 100_000

    url = f"{exp}/resources/CH/files/big.bin"
    r = admin.put(url, data=gen(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    rows = _files(admin, f"{exp}/resources/CH/files")
    assert rows[0]["Size"] == "400000"
    assert rows[0]["digest"] == hashlib.md5(b"z" * 400_000).hexdigest()
    head = admin.head(url)
    assert head.status_code == 200 and head.headers["Content-Length"] == "400000"
    assert head.content == b""
