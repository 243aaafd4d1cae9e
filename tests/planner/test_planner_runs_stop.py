"""Runs that stop cleanly and answer bad input clearly, over real HTTP to xnatsim.

A session that cannot be renewed stops the run at once; a file that is not DICOM in a
DICOM resource fails its step without retries; temporary zips are private; a zombie
lock holder counts as gone.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.plan import Plan, Step
from planner.snapshot import take_snapshot
from planner.state import StateDB
from tests.planner.plans import plan_between

ADMIN = ("admin", "admin")
PROJECT = "P"


def seed(url: str, *, subjects: int = 2, sessions: int = 2, scans: int = 2) -> None:
    from xnatsim.seed import SeedSpec, seed_project

    spec = SeedSpec(
        project=PROJECT,
        subjects=subjects,
        sessions_per_subject=sessions,
        scans_per_session=scans,
        instances_per_scan=2,
        rows=16,
        cols=16,
    )
    seed_project(url, spec, auth=ADMIN)


def create_project(url: str) -> None:
    r = requests.put(f"{url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30)
    assert r.status_code in (200, 201), r.text


def plan_now(src: Any, dst: Any) -> Plan:
    return plan_between(src, dst, TransferConfig(source_project=PROJECT, dest_project=PROJECT))


def options(tmp_path: Path, **kw: Any) -> ApplyOptions:
    base: dict[str, Any] = {
        "workers": 1,
        "retry_count": 3,
        "retry_delay": 0.01,
        "max_failures": 50,
        "verify": True,
        "work_dir": tmp_path / "work",
        "failed_dir": tmp_path / "failed",
    }
    base.update(kw)
    return ApplyOptions(**base)


def imports(server: Any) -> list[dict]:
    return [
        e
        for e in server.request_log.entries()
        if e.get("method") == "POST" and "/data/services/import" in e.get("path", "")
    ]


class Hooks:
    """A reporter calling back on step events."""

    def __init__(self, on_finish=None, on_progress=None) -> None:
        self.on_finish = on_finish
        self.on_progress = on_progress
        self.warnings: list[str] = []

    def run_started(self, total_steps: int, total_bytes: int) -> None:
        pass

    def step_started(self, step: Step) -> None:
        pass

    def step_progress(self, step: Step, nbytes: int) -> None:
        if self.on_progress is not None:
            self.on_progress(step, nbytes)

    def step_finished(self, step: Step, status: str, error: str = "") -> None:
        if self.on_finish is not None:
            self.on_finish(step, status)

    def warning(self, text: str) -> None:
        self.warnings.append(text)

    def info(self, text: str) -> None:
        pass


def test_an_expired_session_without_a_password_stops_the_run_at_once(
    sim_pair, tmp_path: Path
) -> None:
    from xnatctl.client import XnatClient
    from xnatctl.errors import SessionExpired

    seed(sim_pair.src.url, subjects=3)
    create_project(sim_pair.dst.url)
    src = XnatClient(sim_pair.src.url, user="admin", password="admin")
    token = requests.get(f"{sim_pair.dst.url}/data/JSESSION", auth=ADMIN, timeout=30).text
    # Only a cached session for the destination, as a profile logged in earlier has.
    dst = XnatClient(sim_pair.dst.url, user="admin", token=token, profile="dst")
    plan = plan_now(src, dst)
    state = StateDB(tmp_path / "s.db")
    ended = []

    def end_session_after_first_import(step: Step, status: str) -> None:
        if step.kind == "import_scan" and not ended:
            ended.append(step.id)
            r = requests.delete(
                f"{sim_pair.dst.url}/data/JSESSION", cookies={"JSESSIONID": token}, timeout=30
            )
            assert r.status_code == 200, r.text

    before = len(imports(sim_pair.dst))
    result = apply_plan(
        plan, src, dst, state, options(tmp_path), reporter=Hooks(end_session_after_first_import)
    )
    assert result.status == "stopped", result.failed_steps
    assert isinstance(result.stopped_by, SessionExpired)
    assert "xnatctl auth login -p dst" in str(result.stopped_by)
    # One request met the expired session; nothing after it was tried.
    assert len(imports(sim_pair.dst)) - before <= 2
    assert len(result.failed_steps) <= 1
    assert result.kept_zips == []
    assert not list((tmp_path / "failed").rglob("*.zip"))
    assert result.subjects.pending >= 2
    run = state.runs()[0]
    assert run["status"] == "stopped"
    assert state.lock_holder(plan.dest.url, PROJECT) is None
    state.close()


def test_a_file_that_is_not_dicom_in_a_dicom_resource_is_not_retried(
    sim_pair, tmp_path: Path
) -> None:
    from xnatctl.client import XnatClient

    seed(sim_pair.src.url, subjects=1, sessions=1, scans=1)
    create_project(sim_pair.dst.url)
    src = XnatClient(sim_pair.src.url, user="admin", password="admin")
    dst = XnatClient(sim_pair.dst.url, user="admin", password="admin")
    inv = take_snapshot(src, PROJECT)
    subject, exp = next(
        (s, e) for s in inv.subjects.values() for e in s.experiments.values() if e.scans
    )
    scan = next(iter(exp.scans.values()))
    url = (
        f"{sim_pair.src.url}/data/projects/{PROJECT}/subjects/{subject.label}/experiments/"
        f"{exp.label}/scans/{scan.id}/resources/DICOM/files/notes.txt"
    )
    r = requests.put(url, params={"inbody": "true"}, data=b"not an image\n", auth=ADMIN)
    assert r.status_code in (200, 201), r.text
    plan = plan_now(src, dst)
    state = StateDB(tmp_path / "s.db")
    sim_pair.src.request_log.clear()
    result = apply_plan(plan, src, dst, state, options(tmp_path, retry_count=3), reporter=Hooks())
    assert result.status == "failed"
    errors = dict(result.failed_steps)
    step_id = next(i for i in errors if i.startswith("import_scan:"))
    assert "not DICOM" in errors[step_id]
    downloads = [
        e
        for e in sim_pair.src.request_log.entries()
        if e.get("method") == "GET"
        and "/resources/DICOM/files" in e.get("path", "")
        and "format=zip" in e.get("query", "")
    ]
    assert len(downloads) == 1, "a deterministic failure is not downloaded again"
    recorded = next(s for s in state.run_steps(int(result.run_id)) if s["step_id"] == step_id)
    assert recorded["attempts"] == 1
    state.close()


def test_temporary_zips_are_private_while_they_exist(world_small, tmp_path: Path) -> None:
    _sims, src, dst = world_small
    modes: list[int] = []

    def look(step: Step, nbytes: int) -> None:
        for path in (tmp_path / "work").glob("*.zip"):
            modes.append(stat.S_IMODE(path.stat().st_mode))

    state = StateDB(tmp_path / "s.db")
    old = os.umask(0o022)
    try:
        result = apply_plan(
            plan_now(src, dst), src, dst, state, options(tmp_path), reporter=Hooks(None, look)
        )
    finally:
        os.umask(old)
    assert result.ok, result.failed_steps
    assert modes and set(modes) == {0o600}
    state.close()


def test_a_zombie_lock_holder_counts_as_gone(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "s.db")
    child = subprocess.Popen(["true"])  # never waited for below: it stays a zombie
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{child.pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        with db._tx() as c:
            c.execute(
                "INSERT INTO locks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("https://dst", "P", "t0", "carol", db._host, child.pid, "apply",
                 "2024-01-01T00:00:00Z"),
            )  # fmt: skip
        lock = db.acquire_lock("https://dst", "P", operation="apply")
        assert lock.took_over is not None and lock.took_over.pid == child.pid
    finally:
        child.wait()
        db.close()


@pytest.fixture
def world_small(sim_pair):
    from xnatctl.client import XnatClient

    seed(sim_pair.src.url, subjects=1, sessions=1, scans=2)
    create_project(sim_pair.dst.url)
    src = XnatClient(sim_pair.src.url, user="admin", password="admin")
    dst = XnatClient(sim_pair.dst.url, user="admin", password="admin")
    return sim_pair, src, dst
