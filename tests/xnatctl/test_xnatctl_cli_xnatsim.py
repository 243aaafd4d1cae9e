"""The command line against a live xnatsim server: profiles, login, errors, retries."""

from __future__ import annotations

import json
import stat
import time

import pytest

from planner.errors import NotFound
from xnatctl.connect import client_for_profile
from xnatctl.context import AppContext
from xnatctl.errors import ExitCode, describe, exit_code_for
from xnatsim.testing import admin_session


@pytest.fixture
def srv(xnatsim_factory):
    return xnatsim_factory()


def add_profile(cli, name, url, user="admin"):
    result = cli("config", "add-profile", name, "--url", url, "--user", user)
    assert result.code == 0, result.stderr
    return result


def login(cli, name, password="admin", *extra):
    return cli("auth", "login", "-p", name, "--password-stdin", *extra, input=password + "\n")


def requests_to(srv, path, method="GET"):
    return [e for e in srv.request_log.entries() if e["path"] == path and e["method"] == method]


def test_add_profile_login_and_test_round_trip(cli, srv, config_dir):
    add_profile(cli, "sim", srv.url + "/")
    result = login(cli, "sim")
    assert result.code == 0, result.stderr
    assert f"Logged in to {srv.url} as admin" in result.stderr
    assert result.stdout == ""

    result = cli("auth", "test", "-p", "sim")
    assert result.code == 0, result.stderr
    assert "admin" in result.stdout and "1.8.11" in result.stdout

    result = cli("auth", "test", "-p", "sim", "-o", "json")
    assert result.code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["user"] == "admin" and data["server_version"] == "1.8.11"
    assert data["url"] == srv.url and data["session_age_seconds"] >= 0
    # after the login only the cached session was used: one session opened in all
    assert len(requests_to(srv, "/data/JSESSION", "GET")) == 1


def test_root_level_options_work_too(cli, srv):
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0
    result = cli("-p", "sim", "-o", "json", "auth", "test")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["profile"] == "sim"


def test_session_cache_is_private_and_holds_no_password(cli, srv, config_dir):
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim", "admin").code == 0
    cache = config_dir / "sessions" / "sim.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    raw = cache.read_text()
    data = json.loads(raw)
    assert data["url"] == srv.url and data["user"] == "admin" and data["token"]
    assert "admin" not in raw.replace('"user": "admin"', "")  # the password appears nowhere


def test_logout_ends_the_session_and_removes_the_cache(cli, srv, config_dir):
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0
    token = json.loads((config_dir / "sessions" / "sim.json").read_text())["token"]
    result = cli("auth", "logout", "-p", "sim")
    assert result.code == 0, result.stderr
    assert not (config_dir / "sessions" / "sim.json").exists()
    assert requests_to(srv, "/data/JSESSION", "DELETE")
    import requests

    reply = requests.get(srv.url + "/xapi/users/username", cookies={"JSESSIONID": token})
    assert reply.status_code == 401


def test_wrong_password_exits_3_with_one_line(cli, srv):
    add_profile(cli, "sim", srv.url)
    result = login(cli, "sim", "wrong-pw")
    assert result.code == ExitCode.AUTH
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert lines[0] == (
        f"error: login to {srv.url} as 'admin' was refused (wrong user name or password). "
        "Check the user name and password (an alias token counts as both)"
    )
    assert "Traceback" not in result.stderr and "wrong-pw" not in result.stderr


def test_no_terminal_and_no_password_is_a_usage_error(cli, srv):
    add_profile(cli, "sim", srv.url)
    result = cli("auth", "login", "-p", "sim")
    assert result.code == ExitCode.USAGE
    assert "--password-stdin" in result.stderr


def test_password_from_environment(cli, srv, monkeypatch):
    add_profile(cli, "sim", srv.url, user="nobody")
    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    result = cli("auth", "test", "-p", "sim", "-o", "json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["user"] == "admin"


def test_stopped_server_exits_4(cli, xnatsim_factory):
    srv = xnatsim_factory()
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0
    srv.stop()
    result = cli("auth", "test", "-p", "sim")
    assert result.code == ExitCode.UNREACHABLE
    assert result.stderr.strip() == (
        f"error: cannot reach {srv.url} (connection refused); check the URL and that the "
        "server is up"
    )


def test_unknown_profile_and_bad_flags_exit_64(cli, srv):
    add_profile(cli, "sim", srv.url)
    result = cli("auth", "test", "-p", "nope")
    assert result.code == ExitCode.USAGE
    assert "known profiles: sim" in result.stderr
    assert cli("auth", "test", "--bogus").code == ExitCode.USAGE
    assert cli("config", "add-profile", "x").code == ExitCode.USAGE  # --url missing


def test_expired_session_is_renewed_with_a_password(cli, xnatsim_factory, config_dir, monkeypatch):
    srv = xnatsim_factory(settings={"session_timeout_seconds": 0.5})
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0
    cache = config_dir / "sessions" / "sim.json"
    old_token = json.loads(cache.read_text())["token"]
    time.sleep(0.8)

    result = cli("auth", "test", "-p", "sim")
    assert result.code == ExitCode.AUTH
    assert result.stderr.strip() == (
        "error: Session for profile 'sim' expired or invalid; run \"xnatctl auth login -p sim\""
    )

    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    result = cli("auth", "test", "-p", "sim", "-o", "json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["user"] == "admin"
    new_token = json.loads(cache.read_text())["token"]
    assert new_token != old_token
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_injected_503s_are_retried_then_succeed(cli, srv):
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0
    srv.faults.set_rules(
        [{"method": "GET", "path": "/xapi/users/username", "status": 503, "first": 2}]
    )
    srv.request_log.clear()
    result = cli("auth", "test", "-p", "sim")
    assert result.code == 0, result.stderr
    assert [e["status"] for e in requests_to(srv, "/xapi/users/username")] == [503, 503, 200]


def test_a_400_is_not_retried(cli, srv):
    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0
    srv.faults.set_rules(
        [{"method": "GET", "path": "/xapi/users/username", "status": 400, "reason": "Bad things"}]
    )
    srv.request_log.clear()
    result = cli("auth", "test", "-p", "sim")
    assert result.code == ExitCode.FAILED
    assert "GET /xapi/users/username: HTTP 400" in result.stderr
    assert len(requests_to(srv, "/xapi/users/username")) == 1


def test_a_project_the_user_may_not_see_is_not_found(cli, srv, monkeypatch):
    # XNAT answers 404, not 403, for a private project the user has no role in
    # (TestAliasTokenService, TestSharing), so the hint must name both causes.
    admin = admin_session(srv)
    assert admin.post(srv.url + "/xapi/users", json={"username": "bob", "password": "pw"}).ok
    assert admin.put(srv.url + "/data/projects/SECRET").ok
    add_profile(cli, "bob", srv.url, user="bob")
    assert login(cli, "bob", "pw").code == 0
    ctx = AppContext.create(retry_base_delay=0.001)
    with client_for_profile(ctx, "bob") as client, pytest.raises(NotFound) as info:
        client.get_json("/data/projects/SECRET")
    assert exit_code_for(info.value) == ExitCode.NOT_FOUND == 5
    assert "GET /data/projects/SECRET: HTTP 404" in describe(info.value)
    assert "may not see" in describe(info.value)


def test_a_comment_in_config_survives_config_use(cli, srv, config_dir):
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text(
        "# keep me\n"
        "default_profile: a\n"
        "profiles:\n"
        "  a:\n"
        f"    url: {srv.url}   # primary\n"
        "  b:\n"
        f"    url: {srv.url}\n"
    )
    result = cli("config", "use", "b")
    assert result.code == 0, result.stderr
    text = (config_dir / "config.yaml").read_text()
    assert "# keep me" in text and "# primary" in text and "default_profile: b" in text
    listed = json.loads(cli("config", "list", "-o", "json").stdout)
    assert [(p["name"], p["default"]) for p in listed] == [("a", False), ("b", True)]


def test_malformed_config_exits_64_naming_the_line(cli, config_dir):
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "config.yaml").write_text("profiles:\n  a: {url: [\n")
    result = cli("config", "list")
    assert result.code == ExitCode.USAGE
    assert str(config_dir / "config.yaml") in result.stderr and "line " in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_verbose_logs_requests_without_secrets(cli, srv):
    add_profile(cli, "sim", srv.url)
    result = login(cli, "sim", "admin", "-o", "json")
    token = json.loads((AppContext.create().sessions.path_for("sim")).read_text())["token"]
    result = cli("-v", "auth", "test", "-p", "sim")
    assert result.code == 0, result.stderr
    assert "GET /xapi/users/username -> 200" in result.stderr
    assert token not in result.stderr and "Authorization" not in result.stderr


def test_no_credentials_at_all_exits_3_pointing_at_login(cli, srv):
    add_profile(cli, "sim", srv.url)
    result = cli("auth", "test", "-p", "sim", "-o", "json")
    assert result.code == ExitCode.AUTH
    assert result.stdout == ""
    assert 'run "xnatctl auth login -p sim"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ctrl_c_exits_130(cli, srv, monkeypatch):
    from xnatctl.client import XnatClient

    add_profile(cli, "sim", srv.url)
    assert login(cli, "sim").code == 0

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(XnatClient, "whoami", interrupted)
    result = cli("auth", "test", "-p", "sim")
    assert result.code == ExitCode.INTERRUPTED == 130
    assert "Traceback" not in result.stderr


def test_login_without_a_user_and_no_terminal_is_a_usage_error(cli, srv):
    assert cli("config", "add-profile", "anon", "--url", srv.url).code == 0
    result = cli("auth", "login", "-p", "anon", "--password-stdin", input="admin\n")
    assert result.code == ExitCode.USAGE
    assert "no user name given" in result.stderr
    result = cli("auth", "login", "-p", "anon", "-u", "admin", "--password-stdin", input="admin\n")
    assert result.code == 0, result.stderr
