"""Server lifecycle: restart keeps data, concurrent writers, CLI, admin endpoints."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from xnatsim.server import start_server
from xnatsim.testing import admin_session


def test_restart_keeps_everything(tmp_path):
    data = tmp_path / "data"
    with start_server(data, users=[{"username": "u", "password": "p"}]) as srv:
        s = admin_session(srv)
        s.put(f"{srv.url}/data/projects/P1")
        s.put(
            f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1",
            params={"xsiType": "xnat:mrSessionData"},
        )
        s.put(
            f"{srv.url}/data/projects/P1/subjects/S1/experiments/E1/resources/R/files/f",
            data=b"persist",
            params={"inbody": "true"},
        )
        token = s.get(f"{srv.url}/data/services/tokens/issue").json()
    with start_server(data) as srv:
        s = requests.Session()
        s.auth = (token["alias"], token["secret"])
        r = s.get(f"{srv.url}/data/projects/P1/experiments/E1/resources/R/files/f")
        assert r.content == b"persist"
        assert requests.get(f"{srv.url}/data/auth", auth=("u", "p")).status_code == 200
        new = admin_session(srv).put(f"{srv.url}/data/projects/P1/subjects/S2")
        assert new.text == "XNATSIM_S00002"


def test_concurrent_uploads_do_not_corrupt(xnatsim_factory):
    srv = xnatsim_factory()
    s = admin_session(srv)
    s.put(f"{srv.url}/data/projects/P1")
    errors: list[str] = []
    expected: dict[str, str] = {}
    lock = threading.Lock()

    def worker(n: int) -> None:
        sess = admin_session(srv)
        base = f"{srv.url}/data/projects/P1/subjects/S{n % 3}/experiments/E{n}"
        r = sess.put(base, params={"xsiType": "xnat:mrSessionData"})
        if r.status_code not in (200, 201):
            errors.append(r.text)
        for i in range(5):
            data = os.urandom(2048 + n * 10 + i)
            r = sess.put(f"{base}/resources/R/files/f{i}.bin", data=data, params={"inbody": "true"})
            if r.status_code != 200:
                errors.append(r.text)
            with lock:
                expected[f"E{n}/f{i}.bin"] = hashlib.md5(data).hexdigest()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    exps = s.get(f"{srv.url}/data/projects/P1/experiments").json()["ResultSet"]["Result"]
    assert len({e["ID"] for e in exps}) == 8
    subjects = s.get(f"{srv.url}/data/projects/P1/subjects").json()["ResultSet"]["Result"]
    assert sorted(x["label"] for x in subjects) == ["S0", "S1", "S2"]
    seen = {}
    for e in exps:
        rows = s.get(f"{srv.url}/data/experiments/{e['ID']}/files").json()["ResultSet"]["Result"]
        for row in rows:
            seen[f"{e['label']}/{row['Name']}"] = row["digest"]
            body = s.get(f"{srv.url}{row['URI']}").content
            assert hashlib.md5(body).hexdigest() == row["digest"]
    assert seen == expected


def test_admin_endpoints_are_admin_only(xnatsim_factory):
    srv = xnatsim_factory(users=[{"username": "u", "password": "p"}])
    assert requests.get(f"{srv.url}/xnatsim/requests", auth=("u", "p")).status_code == 403
    admin = admin_session(srv)
    assert admin.get(f"{srv.url}/xnatsim/faults").json() == srv.faults.rules()
    assert admin.delete(f"{srv.url}/xnatsim/requests").status_code == 200
    assert isinstance(admin.get(f"{srv.url}/xnatsim/requests").json(), list)
    assert admin.put(f"{srv.url}/xnatsim/faults", data="not json").status_code == 400


def test_internal_errors_are_short_pages(xnatsim_factory, monkeypatch):
    srv = xnatsim_factory()

    def boom(*args, **kwargs):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(srv.app.data, "list_projects", boom)
    r = admin_session(srv).get(f"{srv.url}/data/projects")
    assert r.status_code == 500
    assert "Traceback" not in r.text and "secret detail" not in r.text and "<h3>" in r.text


def test_sim_pair_fixture(sim_pair):
    assert sim_pair.src.url != sim_pair.dst.url
    for srv in sim_pair:
        r = admin_session(srv).get(f"{srv.url}/data/projects")
        assert r.json()["ResultSet"]["totalRecords"] == "0"


def test_cli_serve_prints_url_and_stops_on_sigterm(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xnatsim.cli",
            "serve",
            "--data",
            str(tmp_path / "d"),
            "--port",
            "0",
            "--site-id",
            "CLI",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("xnatsim listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        s = requests.Session()
        s.auth = ("admin", "admin")
        s.put(f"{url}/data/projects/P")
        assert s.put(f"{url}/data/projects/P/subjects/S").text == "CLI_S00001"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_fault_rules_through_admin_endpoint(xnatsim_factory):
    srv = xnatsim_factory()
    admin = admin_session(srv)
    rule = {"method": "GET", "path": "/data/projects", "status": 503, "first": 1}
    assert admin.post(f"{srv.url}/xnatsim/faults", json=rule).status_code == 200
    assert len(admin.get(f"{srv.url}/xnatsim/faults").json()) == 1
    assert admin.get(f"{srv.url}/data/projects").status_code == 503
    assert admin.get(f"{srv.url}/data/projects").status_code == 200
    assert admin.delete(f"{srv.url}/xnatsim/faults").status_code == 200
    assert srv.faults.rules() == []


def test_users_file_yaml(tmp_path, xnatsim_factory):
    users = tmp_path / "users.yaml"
    users.write_text(
        "- username: pia\n  password: secret\n  roles:\n    P1: member\n"
        "- username: root2\n  password: r\n  admin: true\n"
    )
    srv = xnatsim_factory(users=users)
    assert requests.put(f"{srv.url}/data/projects/P1", auth=("root2", "r")).ok
    r = requests.put(f"{srv.url}/data/projects/P1/subjects/S1", auth=("pia", "secret"))
    assert r.status_code == 201


def test_unknown_setting_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown xnatsim settings"):
        start_server(tmp_path / "d", settings={"sesion_timeout_seconds": 1})


def test_request_log_records_statuses_and_users(xnatsim_factory):
    srv = xnatsim_factory()
    admin = admin_session(srv)
    admin.delete(f"{srv.url}/xnatsim/requests")
    admin.post(f"{srv.url}/xnatsim/faults", json={"path": "/data/projects/P9", "status": 502})
    admin.get(f"{srv.url}/data/projects")
    admin.get(f"{srv.url}/data/projects/P9")
    entries = admin.get(f"{srv.url}/xnatsim/requests").json()
    assert [(e["method"], e["path"], e["status"], e["user"]) for e in entries] == [
        ("GET", "/data/projects", 200, "admin"),
        ("GET", "/data/projects/P9", 502, "admin"),
    ]
    assert entries == srv.request_log.entries()
