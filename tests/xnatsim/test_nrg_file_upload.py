"""NRG's TestFileUpload (xnat-rest-tests) against xnatsim.

The suite disables the site anonymization script first (`disableSiteAnonScript`); resource
uploads through `.../files` never run it anyway, so bytes must come back unchanged.

Not ported: `testReconstructionUpload` and `testReconUpload` upload into
`.../experiments/{E}/reconstructions/{R}`; xnatsim does not model reconstructed images (an
XNAT 1.4-era data type that xnatctl neither reads nor copies), so those URLs give 404.
"""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from tests.xnatsim.nrg_files_data import DUMMY_TEXT, mr_1

MR1 = mr_1()


@pytest.fixture
def urls(srv, admin):
    """Project P1, subject 1 (male), MR session MR1 dated 2000-01-01, as setupFileUploadProject."""
    project = f"{srv.url}/data/projects/P1"
    subject = f"{project}/subjects/1"
    assert admin.put(subject, params={"gender": "male"}).status_code == 201
    session = f"{subject}/experiments/MR1"
    r = admin.put(session, params={"xsiType": "xnat:mrSessionData", "date": "2000-01-01"})
    assert r.status_code == 201
    return {"project": project, "subject": subject, "session": session}


def multipart(name: str, data: bytes) -> dict:
    return {"file": (name, io.BytesIO(data), "application/octet-stream")}


def rows(admin, url: str, **params) -> list[dict]:
    r = admin.get(url, params={"format": "json", **params})
    assert r.status_code == 200, r.text
    return r.json()["ResultSet"]["Result"]


def validate_upload(admin, url: str, data: bytes) -> None:
    """restDriver.validateUpload: the file reads back byte for byte."""
    r = admin.get(url)
    assert r.status_code == 200, (url, r.text)
    assert r.content == data


def validate_resource(admin, resource_url: str, files: dict[str, bytes]) -> None:
    """restDriver.validateResource: the resource lists exactly these files, with their sizes
    and digests, and each reads back."""
    listed = rows(admin, f"{resource_url}/files")
    assert {r["Name"]: (r["Size"], r["digest"]) for r in listed} == {
        name: (str(len(data)), hashlib.md5(data).hexdigest()) for name, data in files.items()
    }
    for name, data in files.items():
        validate_upload(admin, f"{resource_url}/files/{name}", data)


def create_scans(admin, session: str) -> None:
    for scan_id, desc, quality in (
        ("1", "LOCALIZER", "usable"),
        ("2", "localizer", "questionable"),
    ):
        r = admin.put(
            f"{session}/scans/{scan_id}",
            params={
                "xsiType": "xnat:mrScanData",
                "series_description": desc,
                "quality": quality,
            },
        )
        assert r.status_code == 200


@pytest.mark.parametrize(
    ("name", "data"), [("1.dcm", MR1.files["1.dcm"]), ("dummy.txt", DUMMY_TEXT)]
)
def test_upload_with_resource_precreate(admin, urls, name, data):
    # TestFileUpload.testImageUploadWResourcePrecreate / testTextUploadWResourcePrecreate
    create_scans(admin, urls["session"])
    resource = f"{urls['session']}/scans/1/resources/DICOM"
    assert admin.put(resource, params={"format": "DICOM"}).status_code == 200
    r = admin.put(f"{resource}/files/{name}", files=multipart(name, data))
    assert r.status_code == 200
    validate_resource(admin, resource, {name: data})
    listed = rows(admin, f"{urls['session']}/scans/1/resources")
    assert [(r["label"], r["file_count"], r["format"]) for r in listed] == [("DICOM", "1", "DICOM")]
    assert rows(admin, f"{urls['session']}/scans/2/resources") == []


def test_resources_upload(srv, admin, urls):
    # TestFileUpload.testResourcesUpload
    session_res = f"{urls['session']}/resources/TEST"
    subject_res = f"{urls['subject']}/resources/TEST"
    project_res = f"{urls['project']}/resources/TEST"
    for res, name in ((session_res, "1.dcm"), (subject_res, "2.dcm"), (project_res, "3.dcm")):
        r = admin.put(f"{res}/files/{name}", files=multipart(name, MR1.files[name]))
        assert r.status_code == 200
    validate_resource(admin, session_res, {"1.dcm": MR1.files["1.dcm"]})
    validate_resource(admin, subject_res, {"2.dcm": MR1.files["2.dcm"]})
    validate_resource(admin, project_res, {"3.dcm": MR1.files["3.dcm"]})

    r = admin.get(f"{session_res}/files", params={"format": "zip", "compression": "0"})
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert zf.read("MR1/resources/TEST/files/1.dcm") == MR1.files["1.dcm"]
    # Uploading files leaves the session's own fields alone.
    doc = admin.get(urls["session"], params={"format": "json"}).json()
    assert doc["items"][0]["data_fields"]["date"] == "2000-01-01"

    # sub directory access
    files = f"{urls['project']}/resources/TEST2/files"
    for path in ("1.dcm", "sub/2.dcm", "sub/folder/3.dcm"):
        r = admin.put(f"{files}/{path}", files=multipart("3.dcm", MR1.files["3.dcm"]))
        assert r.status_code == 200
    assert len(rows(admin, f"{files}/sub/")) == 2
    # XNAT's recursive=false filter (FileList.getFolderFilter) keeps one of the two.
    assert len(rows(admin, f"{files}/sub/", recursive="false")) == 1

    r = admin.get(f"{files}/sub/", params={"format": "zip"})
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        assert len(zf.infolist()) == 2
        assert sorted(zf.namelist()) == ["sub/2.dcm", "sub/folder/3.dcm"]

    assert admin.delete(f"{files}/sub/folder").status_code == 200
    assert [r["Name"] for r in rows(admin, f"{files}/sub/")] == ["2.dcm"]
    # The file went from disk too (removeFiles defaults to true for file deletes).
    assert not (srv.data_dir / "archive/P1/resources/TEST2/sub/folder/3.dcm").exists()
    assert (srv.data_dir / "archive/P1/resources/TEST2/sub/2.dcm").is_file()


@pytest.mark.parametrize(
    ("where", "resource"),
    [
        # TestFileUpload.testScanUpload
        ("scan", "DICOM"),
        # TestFileUpload.testTextIMGUploadWOPrecreate
        ("scan", "TEST"),
        # TestFileUpload.testMRResourceUpload
        ("session", "DICOM"),
        # TestFileUpload.testSubjectResourceUpload
        ("subject", "TEST1"),
        # TestFileUpload.testProjectResourceUpload
        ("project", "TEST1"),
    ],
)
def test_upload_without_precreate(admin, urls, where, resource):
    if where == "scan":
        create_scans(admin, urls["session"])
        base = f"{urls['session']}/scans/1"
    else:
        base = urls[where]
    data = MR1.files["2.dcm"]
    r = admin.put(f"{base}/resources/{resource}/files/3.dcm", files=multipart("2.dcm", data))
    assert r.status_code == 200
    validate_upload(admin, f"{base}/resources/{resource}/files/3.dcm", data)
    validate_upload(admin, f"{base}/files/3.dcm", data)


def test_manual_qc_upload(admin, urls):
    # TestFileUpload.testManQCUpload
    assessor = f"{urls['session']}/assessors/MR1_ManualQC"
    r = admin.put(
        assessor,
        params={"xsiType": "xnat:qcManualAssessorData", "xnat:qcManualAssessorData/pass": "true"},
    )
    assert r.status_code == 201
    data = MR1.files["1.dcm"]
    r = admin.put(f"{assessor}/out/resources/DICOM/files/1.dcm", files=multipart("1.dcm", data))
    assert r.status_code == 200
    validate_upload(admin, f"{assessor}/out/resources/DICOM/files/1.dcm", data)
    validate_upload(admin, f"{assessor}/out/files/1.dcm", data)


@pytest.mark.parametrize("kind", ["zip", "tar", "tar.gz", "tgz"])
@pytest.mark.parametrize("where", ["session", "scan", "subject", "project"])
def test_upload_and_extract(admin, urls, where, kind):
    # TestFileUpload.testMRResourceUpload{Zip,Tar,TarGz,Tgz} (session),
    # testScanResourceUpload* (scan), testSubjectResourceUpload* (subject),
    # testProjectResourceUpload* (project): uploadAndExtract
    if where == "scan":
        r = admin.put(f"{urls['session']}/scans/MR1_scan1", params={"xsiType": "xnat:mrScanData"})
        assert r.status_code == 200
        base = f"{urls['session']}/scans/MR1_scan1"
    else:
        base = urls[where]
    name, blob = MR1.archive(kind)
    r = admin.post(
        f"{base}/resources/TEST/files", files=multipart(name, blob), params={"extract": "true"}
    )
    assert r.status_code == 200, r.text
    for n in range(1, 7):
        validate_upload(admin, f"{base}/resources/TEST/files/mr_1/{n}.dcm", MR1.files[f"{n}.dcm"])
    assert len(rows(admin, f"{base}/resources/TEST/files")) == 6


def test_mr_resources_total_records_count(admin, urls):
    # TestFileUpload.testMRResourcesTotalRecordsCount
    url = f"{urls['session']}/resources"

    def total(**params) -> int:
        r = admin.get(url, params={"format": "json", **params})
        assert r.status_code == 200
        return int(r.json()["ResultSet"]["totalRecords"])

    for stats in ({"file_stats": "true"}, {}, {"file_stats": "false"}):
        assert total(**stats) == 0
    for n in ("1", "2", "3"):
        data = MR1.files[f"{n}.dcm"]
        r = admin.put(f"{url}/TEST{n}/files/{n}.dcm", files=multipart(f"{n}.dcm", data))
        assert r.status_code == 200
    for stats in ({"file_stats": "true"}, {}, {"file_stats": "false"}):
        assert total(**stats) == 3
