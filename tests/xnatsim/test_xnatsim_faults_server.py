"""Faults and the request log inside a real xnatsim server: admin endpoints, imports, downloads."""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path

import pytest
import requests

from xnatsim.dicomgen import SeriesSpec, StudySpec, write_study_zip

BROKEN = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
STUDY = StudySpec(
    "SUBJ001",
    "SUBJ001_MR1",
    "20240101",
    (SeriesSpec(1, "T1w_MPRAGE", instances=3, rows=64, cols=64),),
)
IMPORT = {
    "import-handler": "DICOM-zip",
    "PROJECT_ID": "P1",
    "SUBJECT_ID": "SUBJ001",
    "EXPT_LABEL": "SUBJ001_MR1",
    "dest": "/archive",
    "overwrite": "append",
}


def _session() -> requests.Session:
    s = requests.Session()
    s.auth = ("admin", "admin")
    return s


def _import(s: requests.Session, url: str, zip_path: Path) -> requests.Response:
    with zip_path.open("rb") as body:
        return s.post(
            f"{url}/data/services/import",
            params=IMPORT,
            data=body,
            headers={"Content-Type": "application/zip"},
        )


def test_faults_file_at_start_and_import_retry_is_logged(xnatsim_factory, tmp_path: Path):
    rules = tmp_path / "faults.yaml"
    rules.write_text("- method: POST\n  path: /data/services/import*\n  status: 503\n  first: 1\n")
    srv = xnatsim_factory(faults=rules)
    s = _session()
    assert s.put(f"{srv.url}/data/projects/P1").ok
    zip_path = tmp_path / "study.zip"
    write_study_zip(STUDY, zip_path)
    srv.request_log.clear()

    first = _import(s, zip_path=zip_path, url=srv.url)
    assert first.status_code == 503 and "<h3>" in first.text
    assert (
        s.get(f"{srv.url}/data/projects/P1/experiments", params={"format": "json"}).json()[
            "ResultSet"
        ]["Result"]
        == []
    )  # the failed import left nothing behind
    second = _import(s, zip_path=zip_path, url=srv.url)
    assert second.status_code == 200, second.text
    assert "/experiments/" in second.text

    log = s.get(f"{srv.url}/xnatsim/requests").json()
    posts = [e for e in log if e["method"] == "POST"]
    assert [(e["path"], e["status"], e["user"]) for e in posts] == [
        ("/data/services/import", 503, "admin"),
        ("/data/services/import", 200, "admin"),
    ]
    assert all(not e["path"].startswith("/xnatsim/") for e in log)
    (rule,) = s.get(f"{srv.url}/xnatsim/faults").json()
    assert (rule["matches"], rule["fired"]) == (2, 1)


@pytest.fixture
def imported(xnatsim_factory, tmp_path: Path):
    srv = xnatsim_factory()
    s = _session()
    assert s.put(f"{srv.url}/data/projects/P1").ok
    zip_path = tmp_path / "study.zip"
    write_study_zip(STUDY, zip_path)
    assert _import(s, srv.url, zip_path).status_code == 200
    exp = s.get(f"{srv.url}/data/projects/P1/experiments", params={"format": "json"}).json()
    eid = exp["ResultSet"]["Result"][0]["ID"]
    return srv, s, eid


def test_drop_after_breaks_zip_download_and_single_file(imported):
    srv, s, eid = imported
    zip_url = f"{srv.url}/data/experiments/{eid}/scans/ALL/files"
    files = s.get(zip_url, params={"format": "json"}).json()["ResultSet"]["Result"]
    file_url = srv.url + files[0]["URI"]
    rule = {"method": "GET", "path": f"/data/experiments/{eid}/scans/*", "drop_after": 5000}
    assert s.post(f"{srv.url}/xnatsim/faults", json={**rule, "first": 2}).status_code == 200
    with pytest.raises(BROKEN):
        s.get(zip_url, params={"format": "zip"}).content  # noqa: B018
    with pytest.raises(BROKEN):
        s.get(file_url).content  # noqa: B018
    whole = s.get(zip_url, params={"format": "zip"})  # the rule only fired twice
    assert whole.status_code == 200
    assert len(zipfile.ZipFile(io.BytesIO(whole.content)).namelist()) == 3


def test_truncate_and_latency_via_admin_endpoint(imported):
    srv, s, eid = imported
    files = s.get(
        f"{srv.url}/data/experiments/{eid}/scans/1/resources/DICOM/files",
        params={"format": "json"},
    ).json()["ResultSet"]["Result"]
    file_url = srv.url + files[0]["URI"]
    full = s.get(file_url).content
    assert len(full) == int(files[0]["Size"])
    rules = [{"path": "/data/experiments/*/files/*", "truncate": 100, "every": 2}]
    assert s.put(f"{srv.url}/xnatsim/faults", json=rules).status_code == 200
    assert s.get(file_url).content == full  # match 1: passes
    with pytest.raises(BROKEN):  # match 2: 100 bytes under a full Content-Length
        s.get(file_url).content  # noqa: B018
    assert s.delete(f"{srv.url}/xnatsim/faults").json() == []
    assert s.get(file_url).content == full


def test_invalid_rule_is_refused_by_the_admin_endpoint(imported):
    srv, s, _ = imported
    r = s.post(f"{srv.url}/xnatsim/faults", json={"path": "/x", "status": 503, "every": 0})
    assert r.status_code == 400
    assert "'every' must be an integer >= 1" in html.unescape(r.text)
    assert s.get(f"{srv.url}/xnatsim/faults").json() == []
