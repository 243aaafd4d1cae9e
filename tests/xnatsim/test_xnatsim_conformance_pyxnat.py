"""pyxnat, unchanged, against xnatsim: connect, browse every level, download files and zips.

pyxnat logs in with `GET /data/JSESSION`, lists everything as `format=csv` with `columns=`
(including xpaths such as `xnat:mrSessionData/date` for attributes), and downloads a
resource as `.../files?format=zip`.
"""

import zipfile
from pathlib import Path

import pytest
import pyxnat
import requests

FILES = {"a.dcm": b"A" * 100, "b.dcm": b"B" * 50}


@pytest.fixture
def populated(srv, admin):
    base = f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1"
    assert admin.put(base, params={"xsiType": "xnat:mrSessionData", "date": "2024-01-02"}).ok
    assert admin.put(f"{base}/scans/1", params={"xsiType": "xnat:mrScanData", "type": "T1"}).ok
    for name, data in FILES.items():
        r = admin.put(
            f"{base}/scans/1/resources/DICOM/files/{name}", data=data, params={"inbody": "true"}
        )
        assert r.status_code == 200
    r = admin.put(
        f"{base}/resources/NOTES/files/sub/n.txt", data=b"note", params={"inbody": "true"}
    )
    assert r.status_code == 200
    return srv


@pytest.fixture
def interface(populated):
    return pyxnat.Interface(server=populated.url, user="admin", password="admin")


def test_pyxnat_browses_every_level(interface, populated):
    assert interface.select.projects().get() == ["P1"]
    project = interface.select.project("P1")
    assert project.exists()
    subject_id = requests.get(
        f"{populated.url}/data/projects/P1/subjects/S1",
        params={"format": "json"},
        auth=("admin", "admin"),
    ).json()["items"][0]["data_fields"]["ID"]
    assert project.subjects().get() == [subject_id]
    subject = project.subject("S1")
    assert subject.exists() and subject.label() == "S1"
    assert [e.label() for e in subject.experiments()] == ["E1"]
    experiment = subject.experiment("E1")
    assert experiment.datatype() == "xnat:mrSessionData"
    # an xpath column: QueryOrganizerResource.populateQuery adds it as a field
    assert experiment.attrs.get("xnat:mrSessionData/date") == "2024-01-02"
    assert experiment.scans().get() == ["1"]
    scan = experiment.scan("1")
    assert scan.attrs.get("type") == "T1"
    assert [r.label() for r in scan.resources()] == ["DICOM"]
    assert sorted(scan.resource("DICOM").files().get()) == sorted(FILES)
    assert [r.label() for r in experiment.resources()] == ["NOTES"]
    # XNAT's file rows carry no `path` (CatalogUtils.FILE_HEADERS), so pyxnat shows `Name`,
    # the catalog entry's name: the file's base name
    assert experiment.resource("NOTES").files().get() == ["n.txt"]


def test_pyxnat_downloads_a_file_and_a_resource_zip(interface, tmp_path):
    scan = interface.select.project("P1").subject("S1").experiment("E1").scan("1")
    resource = scan.resource("DICOM")
    path = resource.file("a.dcm").get(str(tmp_path / "a.dcm"))
    assert Path(path).read_bytes() == FILES["a.dcm"]

    (tmp_path / "zip").mkdir()
    zip_path = resource.get(str(tmp_path / "zip"), extract=False)
    with zipfile.ZipFile(zip_path) as zf:
        # pyxnat strips the session/scans/... folders of XNAT's zip and zips the files again
        assert sorted(zf.namelist()) == sorted(FILES)
        assert zf.read("b.dcm") == FILES["b.dcm"]

    (tmp_path / "x").mkdir()
    extracted = resource.get(str(tmp_path / "x"), extract=True)
    assert sorted(p.rsplit("/", 1)[1] for p in extracted) == sorted(FILES)
    assert (tmp_path / "x" / "DICOM" / "b.dcm").read_bytes() == FILES["b.dcm"]


def test_pyxnat_downloads_all_scans_of_a_session(interface, tmp_path):
    experiment = interface.select.project("P1").subject("S1").experiment("E1")
    zip_path = experiment.scans().download(str(tmp_path), type="ALL", extract=False)
    with zipfile.ZipFile(zip_path) as zf:
        assert sorted(n.rsplit("/", 1)[1] for n in zf.namelist()) == sorted(FILES)
