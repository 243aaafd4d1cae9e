"""Runs that stop cleanly, and the commands around them: SIGTERM, unlock, status and history
of dead runs, and one exit code for a plan that cannot be used."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from planner.state import PairKey, StateDB

from .conftest import PROJECT
from .planjson import read_plan

ROOT = Path(__file__).resolve().parents[2]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def state_db() -> StateDB:
    return StateDB(Path(os.environ["XNATCTL_CONFIG_DIR"]) / "transfer.db")


def plant_killed_run(pid: int) -> int:
    """A run recorded up to the moment its process was killed: one subject completed, one
    with a step still running; no counts, status 'running'."""
    pair = PairKey("http://src", PROJECT, "http://dst", PROJECT)
    with state_db() as db:
        run_id = db.start_run(pair, config_hash="h")
        for step, status in (
            ("create_subject:S1", "done"),
            ("create_experiment:S1/E1", "done"),
            ("import_scan:S1/E1/scans/1", "done"),
            ("create_subject:S2", "done"),
            ("create_experiment:S2/E2", "done"),
            ("import_scan:S2/E2/scans/1", "running"),
        ):
            kind, address = step.split(":", 1)
            db.record_step(run_id, pair, step, kind, address, status)
        db.mark_subject_done(pair, "S1", run_id, "fp")
        with db._tx() as c:
            c.execute("UPDATE runs SET pid = ? WHERE id = ?", (pid, run_id))
    return run_id


def raw_status(run_id: int) -> str:
    path = Path(os.environ["XNATCTL_CONFIG_DIR"]) / "transfer.db"
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]


def test_transfer_status_shows_a_dead_run_interrupted_without_writing(cli):
    run_id = plant_killed_run(dead_pid())
    status = cli("project", "transfer-status", "-P", PROJECT, "-o", "json")
    assert status.code == 0, status.err
    assert json.loads(status.out)["status"] == "interrupted"
    history = cli("project", "transfer-history", "-P", PROJECT, "-o", "json")
    assert json.loads(history.out)["runs"][0]["status"] == "interrupted"
    assert raw_status(run_id) == "running", "a report never writes to the state DB"


def test_a_killed_runs_history_shows_what_it_did(cli):
    plant_killed_run(dead_pid())
    history = cli("project", "transfer-history", "-P", PROJECT, "-o", "json")
    counts = json.loads(history.out)["runs"][0]["counts"]
    assert counts["subjects"]["synced"] == 1
    assert counts["subjects"]["pending"] == 1
    assert counts["experiments"]["synced"] == 1
    table = cli("project", "transfer-history", "-P", PROJECT)
    assert "1/0/0" in table.out


def _plant_lock(host: str, pid: int) -> None:
    with state_db() as db, db._tx() as c:
        c.execute(
            "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("http://dst", PROJECT, "t0", "carol", host, pid, "apply", "2024-01-01T00:00:00Z"),
        )


def _holder():
    with state_db() as db:
        return db.lock_holder("http://dst", PROJECT)


def test_unlock_releases_a_lock_from_another_host_after_showing_it(cli):
    _plant_lock("elsewhere.example", 4242)
    refused = cli("project", "unlock", "-P", PROJECT)  # no terminal to confirm on
    assert refused.code == 64
    shown = " ".join(refused.err.split())
    assert "carol@elsewhere.example (pid 4242) running apply since 2024-01-01" in shown
    assert _holder() is not None
    released = cli("project", "unlock", "-P", PROJECT, "--yes")
    assert released.code == 0, released.err
    assert "carol@elsewhere.example" in released.err
    assert _holder() is None
    assert cli("project", "unlock", "-P", PROJECT, "--yes").out.startswith("No lock")


def test_unlock_refuses_while_a_local_holder_runs(cli):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with state_db() as db:
            host = db._host
        _plant_lock(host, proc.pid)
        refused = cli("project", "unlock", "-P", PROJECT, "--yes")
        assert refused.code == 1
        assert f"process {proc.pid} running on this host" in " ".join(refused.err.split())
        assert _holder() is not None
    finally:
        proc.kill()
        proc.wait()
    assert cli("project", "unlock", "-P", PROJECT, "--yes").code == 0
    assert _holder() is None


def test_a_plan_that_cannot_be_used_exits_1_for_any_reason(seeded, cli, tmp_path):
    plan_file = tmp_path / "p.json"
    made = cli(
        "project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(plan_file)
    )
    assert made.code == 0, made.err
    # Made for other servers: the destination given now is another one.
    assert cli("config", "add-profile", "other", "--url", seeded.src.url).code == 0
    elsewhere = cli("project", "apply", str(plan_file), "--dest-profile", "other", "--yes")
    assert elsewhere.code == 1, elsewhere.err
    assert "the plan's destination is" in elsewhere.err
    # Damaged.
    plan_file.write_text(plan_file.read_text()[:100])
    damaged = cli("project", "apply", str(plan_file), "--yes")
    assert damaged.code == 1, damaged.err


def test_a_plan_of_format_1_is_refused_with_one_line(seeded, cli, tmp_path):
    plan_file = tmp_path / "p.json"
    made = cli(
        "project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(plan_file)
    )
    assert made.code == 0, made.err
    # What an older xnatctl wrote: one indented JSON document of format 1.
    old = read_plan(plan_file)
    del old["_order"]
    plan_file.write_text(json.dumps(old | {"format_version": 1}, indent=1))
    for command in (
        ("project", "apply", str(plan_file), "--yes"),
        ("project", "show-plan", str(plan_file)),
    ):
        refused = cli(*command)
        assert refused.code == 1, refused.err
        assert refused.err.strip().splitlines() == [
            f"error: cannot use the plan file {plan_file}: it is plan format 1, from an older "
            "xnatctl; make a new plan with this version"
        ]


def test_sigterm_stops_a_transfer_like_ctrl_c(seeded, tmp_path):
    seeded.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import*", "latency": 0.4}]
    )
    child = subprocess.Popen(
        [sys.executable, "-m", "xnatctl", "project", "transfer", *seeded.pair_args(), "--yes",
         "--workers", "1"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        done = [
            e
            for e in seeded.dst.request_log.entries()
            if e.get("method") == "POST" and "/data/services/import" in e.get("path", "")
        ]
        if done:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err.decode()
    with state_db() as db:
        assert db.lock_holder(seeded.dst.url, PROJECT) is None
        run = db.runs(project=PROJECT)[0]
    assert raw_status(int(run["id"])) == "interrupted"


def test_an_unusable_state_db_is_reported_before_the_snapshot_in_one_line(seeded, cli):
    db = Path(os.environ["XNATCTL_CONFIG_DIR"]) / "transfer.db"
    db.write_bytes(b"this is not a database" * 100)
    seeded.src.request_log.clear()
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert "is not a usable state DB" in result.err
    assert seeded.src.request_log.entries() == [], "refused before the snapshot"


def test_an_unusable_work_directory_is_reported_before_the_snapshot(seeded, cli):
    state_dir = Path(os.environ["XDG_STATE_HOME"]) / "xnatctl"
    state_dir.mkdir(parents=True)
    (state_dir / "work").write_text("a file where the work directory belongs")
    seeded.src.request_log.clear()
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 1
    assert len(result.err.strip().splitlines()) == 1, result.err
    assert f"the work directory {state_dir / 'work'} cannot be used" in result.err
    assert seeded.src.request_log.entries() == []
