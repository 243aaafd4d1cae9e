"""NRG's TestDeletionAccuracy (xnat-rest-tests) against xnatsim: deleting one object never
takes data of its neighbours (XNAT-6852). SAMPLE_1 is replaced by a small generated study;
the suite's count of 176 files per scan becomes that study's count. The site anonymization
script is left on here: validation reads only StudyInstanceUID, which it does not change.
"""

from __future__ import annotations

import io
import zipfile

import pydicom
import pytest

from tests.xnatsim.nrg_files_data import session_zip

FILES_PER_SCAN = 3


@pytest.fixture
def sample(srv, admin, tmp_path):
    """Import the sample study as P1/SUBJ/MAIN and return a checker for it."""
    zip_path = session_zip(tmp_path / "sample1.zip", "SAMPLE1", instances=FILES_PER_SCAN)
    with zipfile.ZipFile(zip_path) as zf:
        study_uid = pydicom.dcmread(io.BytesIO(zf.read(zf.namelist()[0]))).StudyInstanceUID
    r = admin.post(
        f"{srv.url}/data/services/import",
        params={
            "import-handler": "DICOM-zip",
            "dest": "/archive/projects/P1/subjects/SUBJ/experiments/MAIN",
        },
        data=zip_path.read_bytes(),
        headers={"Content-Type": "application/zip"},
    )
    assert r.status_code == 200, r.text
    session = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/MAIN"

    def validate() -> None:
        """validateSample1: the first scan's DICOM resource still counts and lists every
        file, and each file is a DICOM instance of the sample study."""
        scans = admin.get(f"{session}/scans", params={"format": "json"}).json()
        first = scans["ResultSet"]["Result"][0]["ID"]
        resources = admin.get(f"{session}/scans/{first}/resources", params={"format": "json"})
        (dicom,) = [r for r in resources.json()["ResultSet"]["Result"] if r["label"] == "DICOM"]
        assert int(dicom["file_count"]) == FILES_PER_SCAN
        files = admin.get(
            f"{session}/scans/{first}/resources/DICOM/files", params={"format": "json"}
        ).json()["ResultSet"]["Result"]
        assert len(files) == FILES_PER_SCAN
        for f in files:
            body = admin.get(f"{srv.url}{f['URI']}")
            assert body.status_code == 200
            assert pydicom.dcmread(io.BytesIO(body.content)).StudyInstanceUID == study_uid

    validate()
    return validate


@pytest.mark.parametrize("with_scan", [False, True])
@pytest.mark.parametrize("remove_files", [False, True])
def test_delete_resourceless_session(srv, admin, sample, with_scan, remove_files):
    # TestDeletionAccuracy.testDeleteResourcelessSessionNoScans / ...WithScans
    empty = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/EMPTY"
    assert admin.put(empty, params={"xsiType": "xnat:mrSessionData"}).status_code == 201
    if with_scan:
        r = admin.put(
            f"{empty}/scans/1",
            params={"xsiType": "xnat:mrScanData", "series_description": "LOCALIZER"},
        )
        assert r.status_code == 200
    params = {"removeFiles": "true"} if remove_files else {}
    assert admin.delete(empty, params=params).status_code == 200
    assert admin.get(empty, params={"format": "json"}).status_code == 404
    sample()


def test_delete_empty_session_assessor(srv, admin, sample):
    # TestDeletionAccuracy.testDeleteEmptySessionAssessor
    qc = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/MAIN/assessors/MAIN_QC"
    assert admin.put(qc, params={"xsiType": "xnat:qcAssessmentData"}).status_code == 201
    assert admin.delete(qc, params={"removeFiles": "true"}).status_code == 200
    assert admin.get(qc, params={"format": "json"}).status_code == 404
    sample()


def test_delete_neighboring_session(srv, admin, sample, tmp_path):
    # TestDeletionAccuracy.testDeleteNeighboringSession: the same study imported again as
    # another session of the same subject, then deleted with its files.
    zip_path = session_zip(tmp_path / "other.zip", "SAMPLE1", instances=FILES_PER_SCAN)
    r = admin.post(
        f"{srv.url}/data/services/import",
        params={
            "import-handler": "DICOM-zip",
            "dest": "/archive/projects/P1/subjects/SUBJ/experiments/OTHER",
        },
        data=zip_path.read_bytes(),
        headers={"Content-Type": "application/zip"},
    )
    assert r.status_code == 200, r.text
    other = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/OTHER"
    assert admin.delete(other, params={"removeFiles": "true"}).status_code == 200
    assert not (srv.data_dir / "archive/P1/arc001/OTHER").exists()
    sample()


def test_delete_neighboring_subject(srv, admin, sample):
    # TestDeletionAccuracy.testDeleteNeighboringSubject
    empty = f"{srv.url}/data/projects/P1/subjects/EMPTY"
    assert admin.put(empty).status_code == 201
    assert admin.delete(empty, params={"removeFiles": "true"}).status_code == 200
    assert admin.get(empty, params={"format": "json"}).status_code == 404
    sample()


def test_delete_neighboring_project(srv, admin, sample):
    # TestDeletionAccuracy.testDeleteNeighboringProject
    assert admin.put(f"{srv.url}/data/projects/EMPTY").ok
    r = admin.delete(f"{srv.url}/data/projects/EMPTY", params={"removeFiles": "true"})
    assert r.status_code == 200
    assert admin.get(f"{srv.url}/data/projects/EMPTY", params={"format": "json"}).status_code == 404
    sample()


# What stays on disk after a delete, per XNAT 1.8.11's delete handlers.


@pytest.mark.parametrize("remove_files", [None, "true", "false"])
def test_file_delete_leaves_disk_per_remove_files(srv, admin, sample, remove_files):
    # FileList.handleDelete: files leave the disk unless removeFiles=false.
    url = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/MAIN/resources/R/files"
    assert admin.put(f"{url}/a.txt", data=b"a", params={"inbody": "true"}).ok
    params = {} if remove_files is None else {"removeFiles": remove_files}
    assert admin.delete(f"{url}/a.txt", params=params).status_code == 200
    assert admin.get(url, params={"format": "json"}).json()["ResultSet"]["Result"] == []
    on_disk = srv.data_dir / "archive/P1/arc001/MAIN/RESOURCES/R/a.txt"
    assert on_disk.exists() == (remove_files == "false")
    assert admin.delete(f"{url}/a.txt").status_code == 404
    sample()


@pytest.mark.parametrize("remove_files", [None, "false"])
def test_resource_delete_always_leaves_disk(srv, admin, sample, remove_files):
    # CatalogResource.handleDelete: deleteWithBackup moves the folder out either way.
    url = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/MAIN/resources/R"
    assert admin.put(f"{url}/files/a.txt", data=b"a", params={"inbody": "true"}).ok
    params = {} if remove_files is None else {"removeFiles": remove_files}
    assert admin.delete(url, params=params).status_code == 200
    assert not (srv.data_dir / "archive/P1/arc001/MAIN/RESOURCES/R").exists()
    listed = admin.get(f"{url.rsplit('/', 1)[0]}", params={"format": "json"}).json()
    assert listed["ResultSet"]["Result"] == []
    sample()


@pytest.mark.parametrize("remove_files", [False, True])
def test_session_delete_keeps_files_unless_remove_files(srv, admin, sample, remove_files):
    # SecureResource delete of an image session: XnatImagesessiondata.delete(..., removeFiles)
    # removes the archive folder only with removeFiles=true.
    exp = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/GONE"
    assert admin.put(exp, params={"xsiType": "xnat:mrSessionData"}).status_code == 201
    assert admin.put(f"{exp}/resources/R/files/a.txt", data=b"a", params={"inbody": "true"}).ok
    params = {"removeFiles": "true"} if remove_files else {}
    assert admin.delete(exp, params=params).status_code == 200
    folder = srv.data_dir / "archive/P1/arc001/GONE/RESOURCES/R/a.txt"
    assert folder.exists() == (not remove_files)
    assert admin.get(exp, params={"format": "json"}).status_code == 404
    sample()
