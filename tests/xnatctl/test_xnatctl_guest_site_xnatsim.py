"""xnatctl on sites that do not require a login, whose expired sessions become guest.

XNAT lets a request whose session has ended through as guest when `requireLogin` is off
(`XnatSecureGuard.authenticate`), so it answers 403, 404 or an empty listing where our data
is, never 401; the reply sets the new session's JSESSIONID (`XnatExpiredPasswordFilter`).
Here both servers run that way, and the sessions xnatctl cached are ended part-way through a
command, as an idle timeout on the server would end them.
"""

from __future__ import annotations

import json
import threading

import pytest
import requests

from planner.snapshot import take_snapshot
from xnatctl.client import XnatClient
from xnatctl.errors import ExitCode
from xnatsim.auth import GUEST
from xnatsim.seed import SeedSpec, seed_project

PROJECT = "STUDY"
ADMIN = ("admin", "admin")
USER, PASSWORD = "olga", "pw"
GUEST_SITE = {"require_login": False}


def end_sessions_after(monkeypatch, srv, lookups: int) -> list[int]:
    """End every user session once, at the `lookups`-th session lookup; returns a counter."""
    auth = srv.app.auth
    original = auth.session_user
    seen = [0]
    lock = threading.Lock()

    def session_user(sid: str) -> str | None:
        with lock:
            seen[0] += 1
            if seen[0] == lookups:
                with auth.store.write() as c:
                    c.execute("DELETE FROM sessions WHERE username != ?", (GUEST,))
        return original(sid)

    monkeypatch.setattr(auth, "session_user", session_user)
    return seen


@pytest.fixture
def sites(xnatsim_factory, cli, monkeypatch):
    users = [{"username": USER, "password": PASSWORD, "roles": {PROJECT: "Owners"}}]
    src = xnatsim_factory(site_id="SRC", users=users, settings=GUEST_SITE)
    dst = xnatsim_factory(site_id="DST", users=users, settings=GUEST_SITE)
    spec = SeedSpec(
        project=PROJECT,
        subjects=2,
        sessions_per_subject=2,
        scans_per_session=2,
        instances_per_scan=2,
        rows=16,
        cols=16,
    )
    seed_project(src.url, spec, auth=ADMIN)
    # protected: guest finds the project but its listings come back empty (200), the most
    # silent way to lose data
    requests.put(
        f"{src.url}/data/projects/{PROJECT}/accessibility/protected", auth=ADMIN, timeout=30
    ).raise_for_status()
    requests.put(f"{dst.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30).raise_for_status()
    for site in (src, dst):
        requests.put(
            f"{site.url}/data/projects/{PROJECT}/users/Owners/{USER}", auth=ADMIN, timeout=30
        ).raise_for_status()
    for name, site in (("src", src), ("dst", dst)):
        assert cli("config", "add-profile", name, "--url", site.url, "--user", USER).code == 0
        result = cli("auth", "login", "-p", name, "--password-stdin", input=PASSWORD + "\n")
        assert result.code == 0, result.stderr
    monkeypatch.setenv("XNATCTL_PASSWORD", PASSWORD)
    return src, dst


def pair_args() -> list[str]:
    return ["-p", "src", "-P", PROJECT, "--dest-profile", "dst", "--dest-project", PROJECT]


def files_of(site) -> list[tuple[str, str, str]]:
    """(session label, scan ID, file name) of every scan file, read as the admin."""
    out = []
    rows = requests.get(
        f"{site.url}/data/projects/{PROJECT}/experiments",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    for row in rows:
        listing = requests.get(
            f"{site.url}/data/experiments/{row['ID']}/scans/ALL/files",
            params={"format": "json"},
            auth=ADMIN,
            timeout=30,
        )
        if listing.status_code == 404:
            continue
        for f in listing.json()["ResultSet"]["Result"]:
            scan = f["URI"].split("/scans/")[1].split("/")[0]
            out.append((row["label"], scan, f["Name"]))
    return sorted(out)


def logins(site) -> int:
    return sum(
        1
        for e in site.request_log.entries()
        if e["path"] == "/data/JSESSION" and e["method"] == "GET"
    )


def test_transfer_whose_sessions_end_part_way_copies_everything(
    sites, cli, monkeypatch, config_dir
):
    src, dst = sites
    cached = json.loads((config_dir / "sessions" / "src.json").read_text())["token"]
    src.request_log.clear()
    dst.request_log.clear()
    src_seen = end_sessions_after(monkeypatch, src, 6)
    dst_seen = end_sessions_after(monkeypatch, dst, 6)

    result = cli("project", "transfer", *pair_args(), "--yes")
    assert result.code == 0, result.stderr
    assert src_seen[0] > 6 and dst_seen[0] > 6  # the sessions did end part-way
    expected = files_of(src)
    assert len(expected) >= 2 * 2 * 2 * 2  # two DICOM files per scan, and more
    assert files_of(dst) == expected
    # each side logged in again once, and the renewed session replaced the cached one
    assert logins(src) == 1 and logins(dst) == 1
    assert json.loads((config_dir / "sessions" / "src.json").read_text())["token"] != cached


def test_drift_whose_sessions_end_part_way_sees_no_drift(sites, cli, monkeypatch):
    src, dst = sites
    assert cli("project", "transfer", *pair_args(), "--yes").code == 0
    end_sessions_after(monkeypatch, src, 4)
    end_sessions_after(monkeypatch, dst, 9)
    result = cli("project", "drift", *pair_args(), "-o", "json")
    assert result.code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["in_sync"] is True and report["entries"] == []
    assert report["counts"]["in_sync"] > 0


def test_without_a_password_a_session_ended_part_way_exits_3(sites, cli, monkeypatch):
    src, _ = sites
    monkeypatch.delenv("XNATCTL_PASSWORD")
    seen = end_sessions_after(monkeypatch, src, 5)
    result = cli("project", "transfer", *pair_args(), "--dry-run")
    assert seen[0] > 5
    assert result.code == ExitCode.AUTH
    # the words a 401 gives on a site that requires a login
    assert result.stderr.splitlines()[-1] == (
        f"error: source {src.url}: Session for profile 'src' expired or invalid; run "
        '"xnatctl auth login -p src"'
    )


def test_a_snapshot_in_a_live_session_asks_nothing_extra(sites, monkeypatch):
    # The check costs a request only when a reply sets a new session: a snapshot on a guest
    # site makes exactly the requests it makes on a site that requires a login.
    src, _ = sites
    token = requests.get(f"{src.url}/data/JSESSION", auth=(USER, PASSWORD), timeout=30).text
    with XnatClient(src.url, user=USER, token=token) as client:
        src.request_log.clear()
        first = take_snapshot(client, PROJECT, workers=4)
        paths = [e["path"] for e in src.request_log.entries()]
        assert "/xapi/users/username" not in paths and "/data/JSESSION" not in paths
        # the same snapshot after the session ended: one check, one login, the same data
        end_sessions_after(monkeypatch, src, 3)
        renewing = XnatClient(src.url, user=USER, password=PASSWORD, token=token)
        src.request_log.clear()
        again = take_snapshot(renewing, PROJECT, workers=4)
        paths_again = [e["path"] for e in src.request_log.entries()]
    # the same data: everything but the moment each snapshot was taken
    assert {**again.to_dict(), "taken_at": ""} == {**first.to_dict(), "taken_at": ""}
    assert paths_again.count("/data/JSESSION") == 1
    checks = paths_again.count("/xapi/users/username")
    assert 1 <= checks <= 4  # one per worker at most, that saw the lost session first
