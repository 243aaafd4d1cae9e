"""The DICOM-zip import service and the prearchive."""

import io
import time
import zipfile

import pytest
import requests

from xnatsim.testing import admin_session

IMPORT = "/data/services/import"


def _post_zip(admin, srv, path, **params):
    params.setdefault("import-handler", "DICOM-zip")
    # These tests follow files byte for byte through the archive and prearchive; the site
    # anonymization script (on by default, GradualDicomImporter.call) is skipped as real upload
    # clients skip it. tests/xnatsim/test_nrg_anonymization.py covers the script itself.
    params.setdefault("prevent_anon", "true")
    with open(path, "rb") as fh:
        return admin.post(
            f"{srv.url}{IMPORT}",
            params=params,
            data=fh,
            headers={"Content-Type": "application/zip"},
        )


def _archive_params(**extra):
    return {"PROJECT_ID": "P1", "SUBJECT_ID": "S1", "EXPT_LABEL": "E1", "dest": "/archive", **extra}


def _digests(admin, srv, exp="E1"):
    r = admin.get(f"{srv.url}/data/projects/P1/experiments/{exp}/scans/ALL/files")
    assert r.status_code == 200, r.text
    return {row["Name"]: row["digest"] for row in r.json()["ResultSet"]["Result"]}


def test_import_archives_byte_identical_files(srv, admin, make_zip, series_cls):
    path, md5s = make_zip([series_cls(1, "T1 MPRAGE"), series_cls(2, "REST", instances=3)])
    with open(path, "rb") as fh:
        r = admin.post(
            f"{srv.url}{IMPORT}",
            params={"import-handler": "DICOM-zip", "prevent_anon": "true", **_archive_params()},
            files={"file": ("up.zip", fh, "application/zip")},
        )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/uri-list")
    assert r.text == "/data/archive/projects/P1/subjects/S1/experiments/E1\r\n"
    assert _digests(admin, srv) == md5s
    scans = admin.get(f"{srv.url}/data/projects/P1/experiments/E1/scans").json()["ResultSet"][
        "Result"
    ]
    assert [(s["ID"], s["type"], s["xsiType"]) for s in scans] == [
        ("1", "T1 MPRAGE", "xnat:mrScanData"),
        ("2", "REST", "xnat:mrScanData"),
    ]
    doc = admin.get(f"{srv.url}/data/projects/P1/experiments/E1?format=json").json()
    fields = doc["items"][0]["data_fields"]
    assert fields["modality"] == "MR" and fields["date"] == "2024-01-02" and fields["UID"]
    res = admin.get(f"{srv.url}/data/projects/P1/experiments/E1/scans/1/resources").json()
    assert res["ResultSet"]["Result"][0]["format"] == "DICOM"
    on_disk = srv.data_dir / "archive/P1/arc001/E1/SCANS/2/DICOM/MR.2.3.dcm"
    assert on_disk.is_file()


def _manual(admin, srv, project="P1"):
    assert admin.put(f"{srv.url}/data/projects/{project}/prearchive_code/0").ok


def _prearc_status(admin, srv, project="P1"):
    rows = admin.get(f"{srv.url}/data/prearchive/projects/{project}").json()["ResultSet"]["Result"]
    return [r["status"] for r in rows]


def test_overwrite_modes(srv, admin, make_zip, series_cls):
    # XNAT 1.8.10+ DICOM-zip (DicomZipImporter.xmlBuild): every archive failure is the bare
    # ClientException "unable to archive for the Prearchive session" (400); `overwrite` is
    # read only as Importer.parseOverrideValue's allowSessionMerge/overrideExceptions.
    _manual(admin, srv)
    first, _ = make_zip([series_cls(1, "T1")])
    assert _post_zip(admin, srv, first, **_archive_params()).status_code == 200
    again = _post_zip(admin, srv, first, **_archive_params())
    assert again.status_code == 400
    assert "<h3>unable to archive for the Prearchive session</h3>" in again.text
    # PrearcDatabase.LockAndSync: a 409 from the archiver leaves the session in CONFLICT
    assert _prearc_status(admin, srv) == ["CONFLICT"]
    same_scan = _post_zip(admin, srv, first, **_archive_params(overwrite="append"))
    assert same_scan.status_code == 400  # the same files again, without overwrite_files
    # the session importer (SI) answers the same conflict with 409
    si = _post_zip(
        admin, srv, first, **{**_archive_params(overwrite="append"), "import-handler": "SI"}
    )
    assert si.status_code == 409
    # The failed session of the same study and label takes the next upload
    # (eitherGetOrCreateSession: every status is interruptable), so scan 5 arrives together
    # with scan 1's files again and fails on them.
    second, _ = make_zip([series_cls(5, "DWI", instances=1)])
    assert _post_zip(admin, srv, second, **_archive_params(overwrite="append")).status_code == 400
    assert _prearc_status(admin, srv) == ["CONFLICT"]
    assert set(_digests(admin, srv)) == {"MR.1.1.dcm", "MR.1.2.dcm"}
    assert _post_zip(
        admin, srv, second, **_archive_params(overwrite="append", overwrite_files="true")
    ).ok
    assert set(_digests(admin, srv)) == {"MR.1.1.dcm", "MR.1.2.dcm", "MR.5.1.dcm"}
    assert _prearc_status(admin, srv) == []
    # overwrite=delete only overrides (merge + overwrite files); nothing is deleted
    assert _post_zip(admin, srv, second, **_archive_params(overwrite="delete")).ok
    assert set(_digests(admin, srv)) == {"MR.1.1.dcm", "MR.1.2.dcm", "MR.5.1.dcm"}


def test_conflicting_study_is_refused(srv, admin, make_zip, series_cls):
    a, _ = make_zip([series_cls(1, "T1")], study="studyA")
    b, _ = make_zip([series_cls(2, "T2")], study="studyB")
    assert _post_zip(admin, srv, a, **_archive_params()).ok
    r = _post_zip(admin, srv, b, **_archive_params(overwrite="append"))
    # PrearcSessionArchiver.checkForConflicts: UID_MOD (409), reported as DICOM-zip's 400
    assert r.status_code == 400 and "unable to archive" in r.text
    assert _prearc_status(admin, srv) == ["CONFLICT"]


def test_header_routing_and_label_sanitising(srv, admin, make_zip, series_cls):
    path, _ = make_zip(
        [series_cls(3, "CT head", modality="CT")],
        patient_name="Doe^Jane",
        patient_id="ID 42",
        comments="Project: P1 Subject: SUBJ-9 Session: SES_9",
    )
    r = _post_zip(admin, srv, path, dest="/archive")
    assert r.text.strip() == "/data/archive/projects/P1/subjects/SUBJ-9/experiments/SES_9"
    path, _ = make_zip(
        [series_cls(1, "T1")],
        study="s2",
        patient_name="Doe^John",
        patient_id="ID 43",
        study_description="P1",
    )
    r = _post_zip(admin, srv, path, dest="/archive")
    assert r.text.strip() == "/data/archive/projects/P1/subjects/Doe_John/experiments/ID_43"
    rows = admin.get(f"{srv.url}/data/projects/P1/experiments").json()["ResultSet"]["Result"]
    assert {r["label"]: r["xsiType"] for r in rows} == {
        "SES_9": "xnat:ctSessionData",
        "ID_43": "xnat:mrSessionData",
    }


def _evil_zip(tmp_path, make_zip, series_cls, extra):
    path, _ = make_zip([series_cls(1, "T1")], extra=extra)
    return path


@pytest.mark.parametrize(
    "extra, reason",
    [
        ({"../../evil.dcm": b"x"}, "outside"),
        ({"notes.txt": b"not dicom"}, "DICOM"),
    ],
)
def test_bad_entries_leave_nothing(srv, admin, make_zip, series_cls, tmp_path, extra, reason):
    path = _evil_zip(tmp_path, make_zip, series_cls, extra)
    r = _post_zip(admin, srv, path, **_archive_params())
    assert r.status_code == 400 and reason in r.text
    assert (
        admin.get(f"{srv.url}/data/projects/P1/experiments").json()["ResultSet"]["totalRecords"]
        == "0"
    )
    assert not any(p.is_file() for p in (srv.data_dir / "archive").rglob("*"))
    assert not any((srv.data_dir / "tmp").iterdir())


def test_ignore_unparsable(srv, admin, make_zip, series_cls):
    path, md5s = make_zip([series_cls(1, "T1")], extra={"README.txt": b"hi"})
    r = _post_zip(admin, srv, path, **_archive_params(**{"Ignore-Unparsable": "true"}))
    assert r.status_code == 200
    assert _digests(admin, srv) == md5s


def test_corrupt_zip_and_wrong_content_type(srv, admin, tmp_path, make_zip, series_cls):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    assert _post_zip(admin, srv, bad, **_archive_params()).status_code == 400
    good, _ = make_zip([series_cls(1, "T1")])
    r = admin.post(
        f"{srv.url}{IMPORT}",
        params=_archive_params(),
        data=good.read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 400 and "Unsupported format" in r.text


def test_import_needs_write_access(xnatsim_factory, make_zip, series_cls):
    srv = xnatsim_factory(
        users=[{"username": "c", "password": "c", "roles": {"P1": "collaborator"}}]
    )
    requests.put(f"{srv.url}/data/projects/P1", auth=("admin", "admin"))
    path, _ = make_zip([series_cls(1, "T1")])
    s = requests.Session()
    s.auth = ("c", "c")
    assert _post_zip(s, srv, path, **_archive_params()).status_code == 403


def test_prearchive_then_manual_archive(srv, admin, make_zip, series_cls):
    _manual(admin, srv)  # Archiver.finishSingleSessionArchive answers 303 on auto-archive
    path, md5s = make_zip([series_cls(1, "T1")])
    r = _post_zip(admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL="E1")
    url = r.text.strip()
    assert url.startswith("/data/prearchive/projects/P1/")
    second, more = make_zip([series_cls(2, "T2")])
    assert (
        _post_zip(
            admin, srv, second, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL="E1"
        ).text.strip()
        == url
    )
    rows = admin.get(f"{srv.url}/data/prearchive/projects/P1").json()["ResultSet"]["Result"]
    assert len(rows) == 1 and rows[0]["status"] == "RECEIVING"
    assert "/data" + rows[0]["url"] == url
    assert (
        admin.get(f"{srv.url}/data/projects/P1/experiments").json()["ResultSet"]["totalRecords"]
        == "0"
    )
    r = admin.post(f"{srv.url}/data/services/archive", data={"src": url})
    assert r.status_code == 200
    assert r.text.strip() == "/data/archive/projects/P1/subjects/S1/experiments/E1"
    assert _digests(admin, srv) == {**md5s, **more}
    assert admin.get(f"{srv.url}/data/prearchive/projects").json()["ResultSet"]["Result"] == []


def test_prearchive_commit_action(srv, admin, make_zip, series_cls):
    # PrearcSessionResource.postActionCommit: a new project is auto-archive (site default
    # code 4), so commit archives and answers 301 with the archive URI.
    path, md5s = make_zip([series_cls(1, "T1")])
    url = _post_zip(admin, srv, path, PROJECT_ID="P1").text.strip()
    r = admin.post(f"{srv.url}{url}", params={"action": "commit"}, allow_redirects=False)
    assert r.status_code == 301
    assert r.text == "/data/archive/projects/P1/subjects/SUBJ1/experiments/SESS1"
    assert _digests(admin, srv, "SESS1") == md5s


def test_prearchive_commit_on_manual_project_only_builds(srv, admin, make_zip, series_cls):
    # PrearcSessionResource.postActionCommit: not auto-archive, so the session is built
    # (READY) and the prearchive URI comes back with 200.
    _manual(admin, srv)
    path, _ = make_zip([series_cls(1, "T1")])
    url = _post_zip(admin, srv, path, PROJECT_ID="P1").text.strip()
    r = admin.post(f"{srv.url}{url}", params={"action": "commit"}, allow_redirects=False)
    assert r.status_code == 200 and r.text.strip() == url
    assert _prearc_status(admin, srv) == ["READY"]


def test_prearchive_rebuild_and_auto_archive(xnatsim_factory, make_zip, series_cls):
    srv = xnatsim_factory(
        settings={"prearchive_idle_seconds": 0.2, "prearchive_interval_seconds": 0.1}
    )
    admin = admin_session(srv)
    admin.put(f"{srv.url}/data/projects/P1")
    admin.put(f"{srv.url}/data/projects/P2")
    assert admin.get(f"{srv.url}/data/projects/P2/prearchive_code").text == "4"  # site default
    _manual(admin, srv, "P1")
    manual, _ = make_zip([series_cls(1, "T1")], study="m")
    auto, md5s = make_zip([series_cls(1, "T1")], study="a", patient_id="AUTO")
    _post_zip(admin, srv, manual, PROJECT_ID="P1")
    _post_zip(admin, srv, auto, PROJECT_ID="P2")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = admin.get(f"{srv.url}/data/prearchive/projects").json()["ResultSet"]["Result"]
        if [r["status"] for r in rows] == ["READY"]:
            break
        time.sleep(0.05)
    assert [(r["project"], r["status"]) for r in rows] == [("P1", "READY")]
    files = admin.get(f"{srv.url}/data/projects/P2/experiments/AUTO/scans/ALL/files").json()
    assert {f["Name"]: f["digest"] for f in files["ResultSet"]["Result"]} == md5s


def test_archive_zip_from_download_reimports(srv, admin, make_zip, series_cls, tmp_path):
    """A scan zip downloaded from one session imports as another, files unchanged."""
    path, md5s = make_zip([series_cls(1, "T1")])
    assert _post_zip(admin, srv, path, **_archive_params()).ok
    data = admin.get(
        f"{srv.url}/data/projects/P1/experiments/E1/scans/1/files", params={"format": "zip"}
    ).content
    assert len(zipfile.ZipFile(io.BytesIO(data)).namelist()) == 2
    (tmp_path / "dl.zip").write_bytes(data)
    r = _post_zip(
        admin,
        srv,
        tmp_path / "dl.zip",
        PROJECT_ID="P1",
        SUBJECT_ID="S2",
        EXPT_LABEL="E2",
        dest="/archive",
    )
    assert r.ok, r.text
    assert _digests(admin, srv, "E2") == md5s


def test_before_1_8_10_dicom_zip_ignores_dest(xnatsim_factory, make_zip, series_cls):
    old = xnatsim_factory(settings={"version": "1.8.9"})
    session = requests.Session()
    session.auth = ("admin", "admin")
    assert session.put(f"{old.url}/data/projects/P1").status_code in (200, 201)
    assert session.get(f"{old.url}/xapi/siteConfig/buildInfo/version").text == "1.8.9"
    path, _ = make_zip([series_cls(1, "T1")])
    reply = _post_zip(session, old, path, **_archive_params())
    assert reply.status_code == 200
    assert "/prearchive/" in reply.text  # the session waits in the prearchive
    si = _post_zip(session, old, path, **{**_archive_params(), "import-handler": "SI"})
    assert si.status_code == 200 and "/prearchive/" not in si.text
