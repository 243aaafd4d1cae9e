"""State DB on a real SQLite file: runs, steps, subjects, mappings, serial, locks, versions."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import threading

import pytest

from planner import state_schema as state_mod
from planner.state import LockHeld, PairKey, StateDB, StateError

PAIR = PairKey("https://src.example", "P1", "https://dst.example", "P1_COPY")
OTHER = PairKey("https://src.example", "P1", "https://other.example", "P1")


@pytest.fixture
def db(tmp_path):
    s = StateDB(tmp_path / "cfg" / "transfer.db")
    yield s
    s.close()


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid  # reaped: no such process now (reuse within the test is vanishingly rare)


def test_file_is_private_and_wal(tmp_path):
    path = tmp_path / "cfg" / "transfer.db"
    s = StateDB(path)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        assert s.schema_version() == state_mod.SCHEMA_VERSION
        s.start_run(PAIR, config_hash="x")
        side_files = list(path.parent.iterdir())
        assert {p.name for p in side_files} >= {"transfer.db", "transfer.db-wal"}
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in side_files)
    finally:
        s.close()
    # reopening an existing DB works and keeps the mode
    StateDB(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_runs_lifecycle(db):
    r1 = db.start_run(PAIR, config_hash="abc", plan_file="/tmp/plan.json")
    r2 = db.start_run(OTHER, config_hash="def")
    assert r2 > r1
    db.end_run(r1, "completed", {"subjects": {"synced": 2}}, {"tier": 3, "ok": True})
    runs = db.runs(source_project="P1")
    assert [r["id"] for r in runs] == [r2, r1]  # newest first
    first = db.run(r1)
    assert first["status"] == "completed" and first["ended_at"]
    assert first["counts"] == {"subjects": {"synced": 2}}
    assert first["verification"] == {"tier": 3, "ok": True}
    assert first["plan_file"] == "/tmp/plan.json" and first["config_hash"] == "abc"
    assert first["pid"] == os.getpid() and first["host"] and first["user"]
    assert db.run(r2)["status"] == "running"  # our own pid is alive
    assert [r["id"] for r in db.runs(dest_project="P1_COPY")] == [r1]
    assert [r["id"] for r in db.runs(project="P1_COPY")] == [r1]
    assert [r["id"] for r in db.runs(project="P1")] == [r2, r1]
    assert db.runs(source_project="nope") == []
    assert len(db.runs(limit=1)) == 1
    with pytest.raises(ValueError):
        db.end_run(r2, "finished", {})
    with pytest.raises(StateError):
        db.end_run(9999, "completed", {})


def test_run_left_running_by_a_dead_process_reads_as_interrupted(db):
    r = db.start_run(PAIR, config_hash="x")
    with db._tx() as c:
        c.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead_pid(), r))
    assert db.runs()[0]["status"] == "interrupted"


def test_steps_done_and_facts(db):
    run = db.start_run(PAIR, config_hash="x")
    sid = "import_scan:S1/E1/scans/1"
    db.record_step(run, PAIR, sid, "import_scan", "S1/E1/scans/1", "running")
    assert db.started_steps(PAIR) == {sid: ""}
    assert db.done_steps(PAIR) == {}
    db.record_step(
        run, PAIR, sid, "import_scan", "S1/E1/scans/1", "done",
        attempts=2, bytes=1234, facts_digest="f1",
    )  # fmt: skip
    assert db.done_steps(PAIR) == {sid: "f1"}
    assert db.started_steps(PAIR) == {}
    assert db.done_steps(OTHER) == {}  # another destination knows nothing of it
    rows = db.run_steps(run)
    assert len(rows) == 1
    assert rows[0]["subject"] == "S1" and rows[0]["attempts"] == 2 and rows[0]["bytes"] == 1234
    assert rows[0]["started_at"] and rows[0]["ended_at"]
    # a later run whose attempt fails: the step is no longer done
    run2 = db.start_run(PAIR, config_hash="x")
    db.record_step(
        run2, PAIR, sid, "import_scan", "S1/E1/scans/1", "failed", attempts=4, error="HTTP 500"
    )
    assert db.done_steps(PAIR) == {}
    failed = db.failed_steps(run2)
    assert [(f["step_id"], f["error"], f["attempts"]) for f in failed] == [(sid, "HTTP 500", 4)]
    assert db.failed_steps(run) == []  # history of the first run kept
    assert db.step_statuses(PAIR) == {sid: "failed"}
    with pytest.raises(ValueError):
        db.record_step(run2, PAIR, sid, "import_scan", "S1/E1/scans/1", "ok")


def test_serial_moves_only_with_what_is_done(db):
    assert db.serial(PAIR) == 0
    run = db.start_run(PAIR, config_hash="x")
    sid = "create_subject:S1"
    db.record_step(run, PAIR, sid, "create_subject", "S1", "running")
    assert db.serial(PAIR) == 0
    db.record_step(run, PAIR, sid, "create_subject", "S1", "done", facts_digest="a")
    assert db.serial(PAIR) == 1
    db.record_step(run, PAIR, sid, "create_subject", "S1", "done", facts_digest="a")
    assert db.serial(PAIR) == 1  # nothing new
    db.record_step(run, PAIR, sid, "create_subject", "S1", "done", facts_digest="b")
    assert db.serial(PAIR) == 2
    db.record_mapping(PAIR, "subject", "S1", "XNAT_S001", "XNAT_S900")
    assert db.serial(PAIR) == 2
    db.mark_subject_done(PAIR, "S1", run, "fp1")
    assert db.serial(PAIR) == 3
    db.mark_subject_done(PAIR, "S1", run, "fp1")
    assert db.serial(PAIR) == 3
    db.record_step(run, PAIR, sid, "create_subject", "S1", "failed")
    assert db.serial(PAIR) == 4
    assert db.serial(OTHER) == 0


def test_subjects_and_mappings(db):
    run = db.start_run(PAIR, config_hash="x")
    db.mark_subject_done(PAIR, "S1", run, "fp1")
    db.mark_subject_done(PAIR, "S2", run, "fp2")
    db.mark_subject_done(PAIR, "S1", run, "fp1b")
    assert db.completed_subjects(PAIR) == {"S1": "fp1b", "S2": "fp2"}
    assert db.completed_subjects(OTHER) == {}
    db.record_mapping(PAIR, "experiment", "S1/E1", "XNAT_E1", "XNAT_E77")
    db.record_mapping(PAIR, "experiment", "S1/E1", "XNAT_E1", "XNAT_E78")
    assert db.mappings(PAIR) == {("experiment", "S1/E1"): ("XNAT_E1", "XNAT_E78")}


def test_state_survives_reopen(tmp_path):
    path = tmp_path / "transfer.db"
    with StateDB(path) as s:
        run = s.start_run(PAIR, config_hash="x")
        s.record_step(run, PAIR, "a:b", "a", "b", "done", facts_digest="f")
        s.end_run(run, "completed", {"scans": 1})
    with StateDB(path) as s:
        assert s.done_steps(PAIR) == {"a:b": "f"}
        assert s.serial(PAIR) == 1
        assert s.runs()[0]["counts"] == {"scans": 1}


def test_concurrent_record_step_from_8_threads(db):
    run = db.start_run(PAIR, config_hash="x")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(50):
                addr = f"S{t}/E/scans/{i}"
                db.record_step(run, PAIR, f"import_scan:{addr}", "import_scan", addr, "running")
                db.record_step(
                    run, PAIR, f"import_scan:{addr}", "import_scan", addr, "done",
                    facts_digest=f"{t}-{i}",
                )  # fmt: skip
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    done = db.done_steps(PAIR)
    assert len(done) == 400
    assert done["import_scan:S7/E/scans/49"] == "7-49"
    assert db.serial(PAIR) == 400
    assert len(db.run_steps(run, "done")) == 400


def test_two_connections_to_one_file(tmp_path):
    path = tmp_path / "transfer.db"
    with StateDB(path) as a, StateDB(path) as b:
        run = a.start_run(PAIR, config_hash="x")
        a.record_step(run, PAIR, "a:b", "a", "b", "done", facts_digest="f")
        assert b.done_steps(PAIR) == {"a:b": "f"}
        assert b.serial(PAIR) == 1


# -- locks ------------------------------------------------------------------------------------


def test_lock_acquire_release(db):
    lock = db.acquire_lock("https://dst", "P", operation="transfer", owner="alice")
    assert lock.took_over is None
    assert db.lock_holder("https://dst", "P").owner == "alice"
    with pytest.raises(LockHeld) as info:
        db.acquire_lock("https://dst", "P", operation="transfer", owner="bob")
    e = info.value
    assert (e.owner, e.pid, e.operation) == ("alice", os.getpid(), "transfer")
    assert "alice@" in str(e) and "P on https://dst" in str(e)
    # another project on the same server is independent
    other = db.acquire_lock("https://dst", "Q", operation="transfer")
    db.release_lock(lock)
    assert db.lock_holder("https://dst", "P") is None
    again = db.acquire_lock("https://dst", "P", operation="drift", owner="bob")
    db.release_lock(again)
    db.release_lock(other)


def _plant_lock(db: StateDB, pid: int, host: str | None = None) -> None:
    with db._tx() as c:
        c.execute(
            "INSERT OR REPLACE INTO locks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("https://dst", "P", "t0", "carol", host or db._host, pid, "transfer",
             "2024-01-01T00:00:00Z"),
        )  # fmt: skip


def test_lock_held_by_a_live_other_process(db):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        _plant_lock(db, proc.pid)
        with pytest.raises(LockHeld) as info:
            db.acquire_lock("https://dst", "P", operation="transfer")
        assert info.value.pid == proc.pid and info.value.owner == "carol"
        assert info.value.acquired_at == "2024-01-01T00:00:00Z"
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_is_taken_over(db):
    gone = dead_pid()
    _plant_lock(db, gone)
    lock = db.acquire_lock("https://dst", "P", operation="transfer", owner="dave")
    assert lock.took_over is not None
    assert (lock.took_over.owner, lock.took_over.pid) == ("carol", gone)
    assert db.lock_holder("https://dst", "P").owner == "dave"


def test_lock_from_another_host_is_respected_and_can_be_broken(db):
    _plant_lock(db, dead_pid(), host="elsewhere.example")
    with pytest.raises(LockHeld, match="xnatctl project unlock -P P"):
        db.acquire_lock("https://dst", "P", operation="transfer")
    assert db.break_lock("https://dst", "P").host == "elsewhere.example"
    db.acquire_lock("https://dst", "P", operation="transfer")


def test_release_does_not_drop_a_lock_taken_over_by_someone_else(db):
    lock = db.acquire_lock("https://dst", "P", operation="transfer")
    _plant_lock(db, os.getpid())  # someone replaced it
    db.release_lock(lock)
    assert db.lock_holder("https://dst", "P").owner == "carol"


# -- versions ---------------------------------------------------------------------------------


def test_db_from_a_newer_tool_is_refused(tmp_path):
    path = tmp_path / "transfer.db"
    StateDB(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = ?", (state_mod.SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer xnatctl"):
        StateDB(path)


def test_forward_migration_runs_once(tmp_path, monkeypatch):
    path = tmp_path / "transfer.db"
    with StateDB(path) as s:
        run = s.start_run(PAIR, config_hash="x")
        s.record_step(run, PAIR, "a:b", "a", "b", "done", facts_digest="f")
    calls = []

    def v_next(db) -> None:
        calls.append(1)
        db.execute("ALTER TABLE runs ADD COLUMN note TEXT NOT NULL DEFAULT ''")

    nxt = state_mod.SCHEMA_VERSION + 1
    monkeypatch.setitem(state_mod.MIGRATIONS, nxt, v_next)
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", nxt)
    with StateDB(path) as s:
        assert s.schema_version() == nxt
        assert s.done_steps(PAIR) == {"a:b": "f"}  # data kept
        assert s.runs()[0]["note"] == ""
    with StateDB(path) as s:
        assert s.schema_version() == nxt
    assert calls == [1]


def test_not_a_database(tmp_path):
    path = tmp_path / "transfer.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError, match="not a usable state DB"):
        StateDB(path)


def test_steps_are_looked_up_a_few_at_a_time(db):
    # Apply asks for one experiment's steps (in chunks under SQLite's parameter limit), and
    # the staleness check for one step: never every step the pair has.
    run = db.start_run(PAIR, config_hash="x")
    ids = [f"import_scan:S1/E1/scans/{i}" for i in range(1200)]
    for sid in ids[:3]:
        db.record_step(run, PAIR, sid, "import_scan", sid.split(":")[1], "done", facts_digest="f")
    db.record_step(run, PAIR, ids[1100], "import_scan", "S1/E1/scans/1100", "running")
    got = db.step_records(PAIR, ids)
    assert got == {
        ids[0]: ("done", "f"), ids[1]: ("done", "f"), ids[2]: ("done", "f"),
        ids[1100]: ("running", ""),
    }  # fmt: skip
    assert db.step_records(OTHER, ids) == {}
    assert db.has_step(PAIR, ids[1100]) and not db.has_step(PAIR, ids[5])
