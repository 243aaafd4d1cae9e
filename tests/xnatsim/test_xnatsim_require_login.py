"""The require_login site setting (XNAT's `requireLogin`, default true) and what guest sees.

With login required, a request without credentials is 401 (`XnatSecureGuard.authenticate`).
Without it, such a request, or one whose session has expired, runs as guest: guest reads
public projects, sees protected ones as projects only, never sees private ones, and changes
nothing. Bad credentials stay 401 either way (`XnatBasicAuthenticationFilter`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from xnatsim.cli import app, is_loopback


@pytest.fixture
def open_site(xnatsim_factory):
    srv = xnatsim_factory(
        users=[{"username": "olga", "password": "pw"}],
        settings={"require_login": False, "session_timeout_seconds": 0.5},
    )
    admin = requests.Session()
    admin.auth = ("admin", "admin")
    for pid in ("PUB", "PROT", "PRIV"):
        access = {"PUB": "public", "PROT": "protected", "PRIV": "private"}[pid]
        assert admin.put(f"{srv.url}/data/projects/{pid}", params={"accessibility": access}).ok
        assert admin.put(f"{srv.url}/data/projects/{pid}/subjects/S1").status_code == 201
    return srv


def test_login_is_required_by_default(xnatsim_factory):
    srv = xnatsim_factory()
    r = requests.get(f"{srv.url}/data/projects")
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers


def test_guest_reads_public_data_only(open_site):
    url = open_site.url
    rows = requests.get(f"{url}/data/projects").json()["ResultSet"]["Result"]
    assert sorted(r["ID"] for r in rows) == ["PROT", "PUB"]
    assert requests.get(f"{url}/data/auth").text == "User 'guest' is logged in"
    assert requests.get(f"{url}/xapi/users/username").text == "guest"
    # public: data readable, nothing writable
    assert requests.get(f"{url}/data/projects/PUB/subjects/S1?format=json").status_code == 200
    assert requests.put(f"{url}/data/projects/PUB/subjects/S2").status_code == 403
    assert requests.delete(f"{url}/data/projects/PUB/subjects/S1").status_code == 403
    # protected: the project is there, its data is not found
    assert requests.get(f"{url}/data/projects/PROT/accessibility").text == "protected"
    r = requests.get(f"{url}/data/projects/PROT/subjects")
    assert (r.status_code, r.json()["ResultSet"]["Result"]) == (200, [])
    assert requests.get(f"{url}/data/projects/PROT/subjects/S1").status_code == 404
    assert requests.put(f"{url}/data/projects/PROT/subjects/S2").status_code == 403
    # private: not found at all
    assert requests.get(f"{url}/data/projects/PRIV?format=json").status_code == 404
    assert requests.get(f"{url}/data/projects/PRIV/subjects").status_code == 404
    # guest creates no projects and holds no tokens
    assert requests.put(f"{url}/data/projects/NEW").status_code == 403
    assert requests.get(f"{url}/data/services/tokens/issue").status_code == 403
    # nor is anyone an admin for want of a login
    assert requests.get(f"{url}/xnatsim/requests").status_code == 403


def test_bad_credentials_are_still_401(open_site):
    r = requests.get(f"{open_site.url}/data/projects", auth=("olga", "wrong"))
    assert r.status_code == 401
    r = requests.get(f"{open_site.url}/data/projects", auth=("guest", ""))
    assert r.status_code == 401


def test_expired_session_silently_becomes_guest(open_site):
    url = open_site.url
    requests.put(
        f"{url}/data/projects/PRIV/users/Owners/olga", auth=("admin", "admin")
    ).raise_for_status()
    sid = requests.get(f"{url}/data/JSESSION", auth=("olga", "pw")).text
    cookies = {"JSESSIONID": sid}
    assert requests.get(f"{url}/data/projects/PRIV/subjects/S1", cookies=cookies).status_code == 200
    time.sleep(0.8)
    # not 401: the request runs as guest, who does not see the private project
    r = requests.get(f"{url}/data/projects/PRIV/subjects/S1", cookies=cookies)
    assert r.status_code == 404
    assert requests.get(f"{url}/data/auth", cookies=cookies).text == "User 'guest' is logged in"
    assert requests.put(f"{url}/data/projects/PUB/subjects/S9", cookies=cookies).status_code == 403


def test_a_request_without_a_live_session_gets_a_new_session_cookie(open_site):
    # XnatExpiredPasswordFilter.doFilterInternal calls request.getSession() on every request:
    # a request whose session is gone gets a new one, and with it a new JSESSIONID cookie;
    # a request in a live session gets none. Clients tell a lost session by this cookie.
    url = open_site.url
    sid = requests.get(f"{url}/data/JSESSION", auth=("olga", "pw")).text
    live = requests.get(f"{url}/data/projects/PUB/subjects", cookies={"JSESSIONID": sid})
    assert live.status_code == 200 and "JSESSIONID" not in live.cookies
    assert "SESSION_EXPIRATION_TIME" in live.cookies
    time.sleep(0.8)
    r = requests.get(f"{url}/data/projects/PUB/subjects", cookies={"JSESSIONID": sid})
    assert r.status_code == 200
    new_sid = r.cookies.get("JSESSIONID")
    assert new_sid and new_sid != sid
    # the new session is guest's, and stays so without a further new cookie
    again = requests.get(f"{url}/xapi/users/username", cookies={"JSESSIONID": new_sid})
    assert again.text == "guest" and "JSESSIONID" not in again.cookies
    fresh = requests.get(f"{url}/data/projects")
    assert fresh.cookies.get("JSESSIONID") not in (None, sid, new_sid)


def test_expired_session_is_401_when_login_is_required(xnatsim_factory):
    srv = xnatsim_factory(
        users=[{"username": "olga", "password": "pw"}],
        settings={"session_timeout_seconds": 0.5},
    )
    sid = requests.get(f"{srv.url}/data/JSESSION", auth=("olga", "pw")).text
    time.sleep(0.8)
    assert requests.get(f"{srv.url}/data/auth", cookies={"JSESSIONID": sid}).status_code == 401


def test_serve_flag_turns_login_off(tmp_path):
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "xnatsim.cli", "serve", "--data", str(tmp_path / "d")]
    proc = subprocess.Popen(
        [*cmd, "--no-require-login"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        assert requests.get(f"{url}/data/auth").text == "User 'guest' is logged in"
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("::", False),
        ("xnat.example.org", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_remote_host_without_allow_remote(tmp_path):
    result = CliRunner().invoke(app, ["serve", "--data", str(tmp_path / "d"), "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "refusing to listen on 0.0.0.0" in result.output
    assert "--allow-remote" in result.output
    assert not (tmp_path / "d").exists()  # refused before anything started
