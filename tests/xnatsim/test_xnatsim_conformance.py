"""Known XNAT clients work against xnatsim unchanged: xnatpy, and pyxnat-style requests."""

import csv
import io
import zipfile

import pytest
import requests

from xnatsim.testing import admin_session

xnat = pytest.importorskip("xnat")


@pytest.fixture
def populated(srv, admin):
    base = f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1"
    assert admin.put(base, params={"xsiType": "xnat:mrSessionData", "date": "2024-01-02"}).ok
    assert admin.put(f"{base}/scans/1", params={"xsiType": "xnat:mrScanData", "type": "T1"}).ok
    for name, data in (("a.dcm", b"A" * 100), ("b.dcm", b"B" * 50)):
        r = admin.put(
            f"{base}/scans/1/resources/DICOM/files/{name}", data=data, params={"inbody": "true"}
        )
        assert r.status_code == 200
    return srv


def test_xnatpy_browse_download_and_create(populated, tmp_path):
    with xnat.connect(populated.url, user="admin", password="admin") as conn:
        assert list(conn.projects.keys()) == ["P1"]
        project = conn.projects["P1"]
        subject = project.subjects["S1"]
        assert subject.label == "S1"
        experiment = subject.experiments["E1"]
        assert experiment.date.isoformat() == "2024-01-02"
        scan = experiment.scans["1"]
        assert scan.type == "T1"
        resource = scan.resources["DICOM"]
        assert sorted(resource.files.keys()) == ["a.dcm", "b.dcm"]

        scan.download(str(tmp_path / "scan.zip"))
        with zipfile.ZipFile(tmp_path / "scan.zip") as zf:
            names = sorted(zf.namelist())
        assert names == [
            "E1/scans/1-T1/resources/DICOM/files/a.dcm",
            "E1/scans/1-T1/resources/DICOM/files/b.dcm",
        ]
        resource.files["a.dcm"].download(str(tmp_path / "a.dcm"))
        assert (tmp_path / "a.dcm").read_bytes() == b"A" * 100

        new_subject = conn.classes.SubjectData(parent=project, label="S2")
        new_exp = conn.classes.MrSessionData(parent=new_subject, label="E2")
        assert new_subject.id.startswith("XNATSIM_S")
        assert new_exp.id.startswith("XNATSIM_E")
    listing = requests.get(
        f"{populated.url}/data/projects/P1/experiments",
        auth=("admin", "admin"),
        params={"format": "json"},
    ).json()
    assert sorted(r["label"] for r in listing["ResultSet"]["Result"]) == ["E1", "E2"]


def test_pyxnat_style_csv_listing(populated):
    s = requests.Session()
    r = s.get(f"{populated.url}/data/JSESSION", auth=("admin", "admin"))
    assert r.status_code == 200 and len(r.text) == 32 and r.text == r.text.upper()
    assert s.cookies.get("JSESSIONID") == r.text
    r = s.get(
        f"{populated.url}/data/archive/projects/P1/subjects",
        params={"format": "csv", "columns": "ID,label"},
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert r.headers["Content-Type"].startswith("text/csv")
    assert [row["label"] for row in rows] == ["S1"]
    assert set(rows[0]) == {"ID", "label", "URI"}


def test_connect_time_endpoints(srv, admin):
    assert admin.get(f"{srv.url}/data/version").status_code == 404
    info = requests.get(f"{srv.url}/xapi/siteConfig/buildInfo").json()
    assert info["version"].startswith("1.8")
    assert requests.get(f"{srv.url}/xapi/siteConfig/buildInfo/version").text == info["version"]
    assert "xnat" in admin.get(f"{srv.url}/xapi/schemas").json()
    assert "mrSessionData" in admin.get(f"{srv.url}/xapi/schemas/xnat").text
    rows = admin.get(f"{srv.url}/data/search/elements?format=json").json()["ResultSet"]["Result"]
    assert any(r["ELEMENT_NAME"] == "xnat:mrSessionData" for r in rows)
    fields = admin.get(
        f"{srv.url}/data/search/elements/xnat:mrSessionData", params={"format": "json"}
    ).json()["ResultSet"]["Result"]
    assert fields and "FIELD_ID" in fields[0]
    assert admin.get(f"{srv.url}/xapi/users/username").text == "admin"
    assert admin.get(f"{srv.url}/data/auth").text == "User 'admin' is logged in"
    access = admin.get(f"{srv.url}/xapi/access/projects").json()
    assert access[0]["ID"] == "P1" and access[0]["role"] == "Owners"
    assert admin.get(f"{srv.url}/data/projects/P1/accessibility").text == "private"


def test_xnatpy_import_resource_upload_and_prearchive(srv, make_zip, series_cls, tmp_path):
    # A manual project: on an auto-archive one (XNAT's default code 4) the archive service
    # answers 303 (services.Archiver.finishSingleSessionArchive), which xnatpy cannot read.
    assert admin_session(srv).put(f"{srv.url}/data/projects/P1/prearchive_code/0").ok
    path, md5s = make_zip([series_cls(1, "T1")])
    with xnat.connect(srv.url, user="admin", password="admin") as conn:
        exp = conn.services.import_(
            str(path), project="P1", subject="S1", experiment="E1", destination="/archive"
        )
        assert exp.label == "E1"
        assert sorted(exp.scans["1"].files.keys()) == sorted(md5s)
        res = exp.create_resource("NOTES")
        (tmp_path / "n.txt").write_text("note")
        res.upload(str(tmp_path / "n.txt"), "n.txt")
        assert list(res.files.keys()) == ["n.txt"]
        pending = conn.services.import_(str(path), project="P1", subject="S2", experiment="E2")
        sessions = conn.prearchive.sessions(allow_receiving=True)
        assert [s.status for s in sessions] == ["RECEIVING"]
        archived = pending.archive()
        assert archived.label == "E2"
