"""The state DB: what earlier runs did, so a run resumes and a plan knows what is done.

One SQLite file (``transfer.db`` in the config directory), private to its user (mode 0600),
in WAL mode so a ``transfer-status`` can read while a transfer writes. Everything is keyed
by the *pair*: source URL and project, destination URL and project. Roles:

- ``runs``: one row per transfer run: who, where, when, how it ended, its counts;
- ``steps``: every step of every run as it started and ended (the history), and
  ``step_status``: the latest status of each step per pair, so "is this step already done
  for this pair with these facts" is one primary-key lookup;
- ``mappings``: source accession IDs to the IDs the destination gave;
- ``subjects_done``: subjects completed per pair, with a fingerprint of the source subtree
  they were completed from, so a plan can tell "done" from "has new data on the source";
- ``scan_memory``: per scan pair (source scan address, destination scan ID), digests of
  both sides' DICOM files when the pair was last made (an import verified) or found equal
  (a walk): DICOM is compared by names because the destination rewrites headers, and these
  digests still show a later change on either side (see ``planner.sameness``);
- ``locks``: one per destination project, naming who holds it (user, host, pid, operation);
- ``pairs.serial``: bumped by every write that changes what is recorded as done; a plan
  records it and apply refuses a plan made before a later change.

The schema is versioned (``schema_version``); ``MIGRATIONS[n]`` takes a DB from version
``n - 1`` to ``n``, and a DB written by a newer tool is refused with a clear error rather than
misread. All methods are thread-safe: one connection, shared under a lock, because apply
records steps from worker threads; other processes wait up to ``busy_timeout`` for a write.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from planner import address as A
from planner.address import Address
from planner.plan import Level
from planner.sameness import ScanMemory, SideState

__all__ = [
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "STEP_STATUSES",
    "Lock",
    "LockHeld",
    "LockInfo",
    "PairKey",
    "StateDB",
    "StateError",
]

# "stopped": ended by an error no later step could avoid (a session that cannot be renewed).
RUN_STATUSES = ("running", "completed", "failed", "interrupted", "aborted", "stopped")
STEP_STATUSES = ("pending", "running", "done", "failed", "skipped")
BUSY_TIMEOUT_MS = 30_000


class StateError(Exception):
    """The state DB cannot be used (newer schema, not a database, unreadable)."""


@dataclass(frozen=True)
class PairKey:
    source_url: str
    source_project: str
    dest_url: str
    dest_project: str


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) a destination project's lock."""

    owner: str
    host: str
    pid: int
    operation: str
    acquired_at: str

    def describe(self) -> str:
        return (
            f"{self.owner}@{self.host} (pid {self.pid}) running {self.operation} "
            f"since {self.acquired_at}"
        )


@dataclass(frozen=True)
class Lock:
    """A held lock. ``took_over`` names the previous holder when its process was gone."""

    dest_url: str
    dest_project: str
    token: str
    info: LockInfo
    took_over: LockInfo | None = None


class LockHeld(Exception):
    """Another live process is working on the same destination project."""

    def __init__(self, dest_url: str, dest_project: str, holder: LockInfo) -> None:
        self.dest_url = dest_url
        self.dest_project = dest_project
        self.holder = holder
        self.owner = holder.owner
        self.host = holder.host
        self.pid = holder.pid
        self.operation = holder.operation
        self.acquired_at = holder.acquired_at
        hint = (
            "wait for it to finish"
            if holder.host == socket.gethostname()
            else "wait for it to finish; if that process is gone, release the lock with "
            f"'xnatctl project unlock -P {dest_project}'"
        )
        super().__init__(
            f"project {dest_project} on {dest_url} is locked by {holder.describe()}; {hint}"
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pid_alive(pid: int) -> bool:
    """True when a process with this pid runs on this host (or may: no permission).

    A zombie (exited, not yet reaped by its parent) still answers ``kill(pid, 0)`` but will
    never release a lock: it counts as gone.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return not _zombie(pid)
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie, by its state in ``/proc`` (False where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return bool(fields) and fields[0] in ("Z", "X")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


# ---------------------------------------------------------------------------------------------
# Schema


def _v1(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            source_url TEXT NOT NULL, source_project TEXT NOT NULL,
            dest_url TEXT NOT NULL, dest_project TEXT NOT NULL,
            serial INTEGER NOT NULL DEFAULT 0,
            UNIQUE (source_url, source_project, dest_url, dest_project))"""
    )
    db.execute(
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            source_url TEXT NOT NULL, source_project TEXT NOT NULL,
            dest_url TEXT NOT NULL, dest_project TEXT NOT NULL,
            plan_file TEXT NOT NULL DEFAULT '', config_hash TEXT NOT NULL DEFAULT '',
            started_at TEXT NOT NULL, ended_at TEXT,
            status TEXT NOT NULL,
            counts TEXT NOT NULL DEFAULT '{}', verification TEXT,
            host TEXT NOT NULL, pid INTEGER NOT NULL, user TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX runs_source_project ON runs (source_project, id)")
    db.execute("CREATE INDEX runs_dest_project ON runs (dest_project, id)")
    db.execute(
        """CREATE TABLE steps (
            run_id INTEGER NOT NULL REFERENCES runs(id),
            step_id TEXT NOT NULL, kind TEXT NOT NULL, address TEXT NOT NULL,
            subject TEXT NOT NULL DEFAULT '', status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
            error TEXT NOT NULL DEFAULT '', started_at TEXT, ended_at TEXT,
            facts_digest TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (run_id, step_id))"""
    )
    db.execute("CREATE INDEX steps_status ON steps (run_id, status)")
    db.execute(
        """CREATE TABLE step_status (
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            step_id TEXT NOT NULL, run_id INTEGER NOT NULL,
            kind TEXT NOT NULL, address TEXT NOT NULL, subject TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT '',
            started_at TEXT, ended_at TEXT, facts_digest TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (pair_id, step_id)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE mappings (
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            level TEXT NOT NULL, address TEXT NOT NULL,
            source_id TEXT NOT NULL, dest_id TEXT NOT NULL, recorded_at TEXT NOT NULL,
            PRIMARY KEY (pair_id, level, address)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE subjects_done (
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            subject TEXT NOT NULL, run_id INTEGER NOT NULL,
            completed_at TEXT NOT NULL, fingerprint TEXT NOT NULL,
            PRIMARY KEY (pair_id, subject)) WITHOUT ROWID"""
    )
    db.execute(
        """CREATE TABLE locks (
            dest_url TEXT NOT NULL, dest_project TEXT NOT NULL,
            token TEXT NOT NULL, owner TEXT NOT NULL, host TEXT NOT NULL,
            pid INTEGER NOT NULL, operation TEXT NOT NULL, acquired_at TEXT NOT NULL,
            PRIMARY KEY (dest_url, dest_project)) WITHOUT ROWID"""
    )


def _v2(db: sqlite_utils.Database) -> None:
    """Remembered DICOM of scan pairs: two digests per side (names and sizes; and with MD5,
    empty when the server gave none)."""
    db.execute(
        """CREATE TABLE scan_memory (
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            address TEXT NOT NULL, dest_scan TEXT NOT NULL,
            source_shape TEXT NOT NULL, source_content TEXT NOT NULL,
            dest_shape TEXT NOT NULL, dest_content TEXT NOT NULL,
            recorded_at TEXT NOT NULL,
            PRIMARY KEY (pair_id, address)) WITHOUT ROWID"""
    )


# MIGRATIONS[n] takes the schema from version n - 1 to n. Append; never edit a released one.
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _v1, 2: _v2}
SCHEMA_VERSION = max(MIGRATIONS)


def _create_private(path: Path) -> None:
    """Create the DB file 0600 before SQLite touches it: it names servers, users and hosts."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)


class StateDB:
    """The state DB; ``readonly`` opens an existing one for reports, which never write (a
    run left 'running' by a dead process is shown as interrupted, not recorded so)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._host = socket.gethostname()
        self._pair_ids: dict[PairKey, int] = {}
        try:
            if readonly:
                target, uri = f"{self.path.resolve().as_uri()}?mode=ro", True
            else:
                _create_private(self.path)
                target, uri = str(self.path), False
            conn = sqlite3.connect(
                target,
                timeout=BUSY_TIMEOUT_MS / 1000,
                check_same_thread=False,
                isolation_level=None,
                uri=uri,
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the state DB {self.path}: {exc}") from None
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if readonly:
                self._check_version()
                return
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateError(
                f"{self.path} is not a usable state DB ({exc}); move it aside to start afresh"
            ) from None
        except StateError:
            conn.close()
            raise

    # -- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE so read-then-write is atomic across processes."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                self._pair_ids.clear()  # ids cached inside the rolled-back transaction
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.db.query(sql, params))

    def _migrate(self) -> None:
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise StateError(
                    f"the state DB {self.path} was written by a newer xnatctl (schema version "
                    f"{current}; this one knows up to {SCHEMA_VERSION}); upgrade xnatctl, or "
                    "point it at another state DB"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](self.db)
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif current != SCHEMA_VERSION:
                c.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    def _check_version(self) -> None:
        """For a read-only DB: refuse one written by a newer tool, as ``_migrate`` does."""
        current = self.schema_version()
        if current > SCHEMA_VERSION:
            raise StateError(
                f"the state DB {self.path} was written by a newer xnatctl (schema version "
                f"{current}; this one knows up to {SCHEMA_VERSION}); upgrade xnatctl"
            )

    def schema_version(self) -> int:
        return int(self._rows("SELECT version FROM schema_version")[0]["version"])

    def _pair_id(self, c: sqlite3.Connection, pair: PairKey) -> int:
        pid = self._pair_ids.get(pair)
        if pid is not None:
            return pid
        key = (pair.source_url, pair.source_project, pair.dest_url, pair.dest_project)
        c.execute(
            "INSERT OR IGNORE INTO pairs (source_url, source_project, dest_url, dest_project)"
            " VALUES (?, ?, ?, ?)",
            key,
        )
        pid = c.execute(
            "SELECT id FROM pairs WHERE source_url = ? AND source_project = ?"
            " AND dest_url = ? AND dest_project = ?",
            key,
        ).fetchone()[0]
        self._pair_ids[pair] = pid
        return pid

    def _find_pair(self, pair: PairKey) -> int | None:
        pid = self._pair_ids.get(pair)
        if pid is not None:
            return pid
        rows = self._rows(
            "SELECT id FROM pairs WHERE source_url = ? AND source_project = ?"
            " AND dest_url = ? AND dest_project = ?",
            (pair.source_url, pair.source_project, pair.dest_url, pair.dest_project),
        )
        return rows[0]["id"] if rows else None

    @staticmethod
    def _bump(c: sqlite3.Connection, pair_id: int) -> None:
        c.execute("UPDATE pairs SET serial = serial + 1 WHERE id = ?", (pair_id,))

    # -- runs ---------------------------------------------------------------------------------

    def start_run(self, pair: PairKey, *, config_hash: str, plan_file: str = "") -> int:
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            cur = c.execute(
                "INSERT INTO runs (pair_id, source_url, source_project, dest_url, dest_project,"
                " plan_file, config_hash, started_at, status, counts, host, pid, user)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', '{}', ?, ?, ?)",
                (
                    pair_id,
                    pair.source_url,
                    pair.source_project,
                    pair.dest_url,
                    pair.dest_project,
                    plan_file,
                    config_hash,
                    _now(),
                    self._host,
                    os.getpid(),
                    _user(),
                ),
            )
            return int(cur.lastrowid)

    def end_run(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any],
        verification: dict[str, Any] | None = None,
    ) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        with self._tx() as c:
            cur = c.execute(
                "UPDATE runs SET status = ?, ended_at = ?, counts = ?, verification = ?"
                " WHERE id = ?",
                (
                    status,
                    _now(),
                    json.dumps(counts, sort_keys=True, default=str),
                    None
                    if verification is None
                    else json.dumps(verification, sort_keys=True, default=str),
                    run_id,
                ),
            )
            if cur.rowcount != 1:
                raise StateError(f"no run {run_id} in the state DB {self.path}")

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._as_shown(_decode_run(rows[0])) if rows else None

    def _as_shown(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run as reports show it, computed without writing: one left 'running' by a
        process gone from this host is interrupted; a run that ended without its counts
        (killed) gets them from what it recorded step by step (``run_progress``)."""
        local = run.get("host") == self._host
        if run.get("status") == "running" and local and not pid_alive(int(run.get("pid") or 0)):
            run["status"] = "interrupted"
        if run.get("status") != "running" and not run.get("counts"):
            run["counts"] = self.run_progress(int(run["id"]))
        return run

    def run_progress(self, run_id: int) -> dict[str, Any]:
        """What a run did, from its recorded steps and completed subjects: subjects it
        completed are synced, subjects and experiments with a failed step failed, and those
        with steps left unfinished pending."""
        steps = self._rows("SELECT address, status FROM steps WHERE run_id = ?", (run_id,))
        done = {
            r["subject"]
            for r in self._rows("SELECT subject FROM subjects_done WHERE run_id = ?", (run_id,))
        }
        subjects: dict[str, set[str]] = {}
        experiments: dict[str, set[str]] = {}
        for row in steps:
            at = Address.parse(str(row["address"]))
            status = str(row["status"])
            subjects.setdefault(at.subject or A.PROJECT, set()).add(status)
            experiment = at.up_to(Level.EXPERIMENT)
            if experiment is not None:
                experiments.setdefault(str(experiment), set()).add(status)

        def tally(groups: dict[str, set[str]], complete: set[str] | None) -> dict[str, int]:
            counts = {"synced": 0, "failed": 0, "skipped": 0, "pending": 0}
            for key, statuses in groups.items():
                if key == A.PROJECT:
                    continue
                if "failed" in statuses:
                    counts["failed"] += 1
                elif (key in complete) if complete is not None else statuses == {"done"}:
                    counts["synced"] += 1
                else:
                    counts["pending"] += 1
            return counts

        return {
            "subjects": tally(subjects, done),
            "experiments": tally(experiments, None),
            "recovered": True,
        }

    def runs(
        self,
        source_project: str | None = None,
        dest_project: str | None = None,
        limit: int = 50,
        *,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first. ``project`` matches either side; the others match one side.

        A run still marked running whose process is gone from this host is reported as
        interrupted (without writing: ``_as_shown``), so status never shows a dead transfer
        as in progress.
        """
        where, params = [], []
        if source_project is not None:
            where.append("source_project = ?")
            params.append(source_project)
        if dest_project is not None:
            where.append("dest_project = ?")
            params.append(dest_project)
        if project is not None:
            where.append("(source_project = ? OR dest_project = ?)")
            params += [project, project]
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        return [self._as_shown(_decode_run(r)) for r in self._rows(sql, tuple(params))]

    def reap_dead_runs(self) -> int:
        """Mark runs left 'running' by a process that no longer exists here as interrupted."""
        rows = self._rows(
            "SELECT id, pid FROM runs WHERE status = 'running' AND host = ?", (self._host,)
        )
        dead = [r["id"] for r in rows if not pid_alive(r["pid"])]
        if dead:
            with self._tx() as c:
                c.executemany(
                    "UPDATE runs SET status = 'interrupted', ended_at = COALESCE(ended_at, ?)"
                    " WHERE id = ? AND status = 'running'",
                    [(_now(), i) for i in dead],
                )
        return len(dead)

    # -- steps --------------------------------------------------------------------------------

    def record_step(
        self,
        run_id: int,
        pair: PairKey,
        step_id: str,
        kind: str,
        address: str,
        status: str,
        *,
        attempts: int = 0,
        bytes: int = 0,
        error: str = "",
        facts_digest: str = "",
    ) -> None:
        """Record a step's new status, in the run's history and as the pair's latest."""
        if status not in STEP_STATUSES:
            raise ValueError(f"step status {status!r} is not one of {', '.join(STEP_STATUSES)}")
        now = _now()
        subject = Address.parse(address).subject or ""
        started = now if status == "running" else None
        ended = now if status in ("done", "failed", "skipped") else None
        row = (
            step_id,
            kind,
            address,
            subject,
            status,
            attempts,
            bytes,
            error,
            started,
            ended,
            facts_digest,
        )
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            previous = c.execute(
                "SELECT status, facts_digest FROM step_status WHERE pair_id = ? AND step_id = ?",
                (pair_id, step_id),
            ).fetchone()
            c.execute(
                "INSERT INTO steps (run_id, step_id, kind, address, subject, status, attempts,"
                " bytes, error, started_at, ended_at, facts_digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind,"
                " address = excluded.address, subject = excluded.subject,"
                " status = excluded.status, attempts = excluded.attempts,"
                " bytes = excluded.bytes, error = excluded.error,"
                " started_at = COALESCE(excluded.started_at, steps.started_at),"
                " ended_at = excluded.ended_at, facts_digest = excluded.facts_digest",
                (run_id, *row),
            )
            c.execute(
                "INSERT INTO step_status (pair_id, run_id, step_id, kind, address, subject,"
                " status, attempts, bytes, error, started_at, ended_at, facts_digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (pair_id, step_id) DO UPDATE SET run_id = excluded.run_id,"
                " kind = excluded.kind, address = excluded.address,"
                " subject = excluded.subject, status = excluded.status,"
                " attempts = excluded.attempts, bytes = excluded.bytes,"
                " error = excluded.error,"
                " started_at = CASE WHEN excluded.run_id = step_status.run_id"
                "   THEN COALESCE(excluded.started_at, step_status.started_at)"
                "   ELSE excluded.started_at END,"
                " ended_at = excluded.ended_at, facts_digest = excluded.facts_digest",
                (pair_id, run_id, *row),
            )
            was_done = previous is not None and previous[0] == "done"
            if (status == "done") != was_done or (
                status == "done" and previous is not None and previous[1] != facts_digest
            ):
                self._bump(c, pair_id)

    def done_steps(self, pair: PairKey) -> dict[str, str]:
        """step_id -> facts_digest of the steps whose latest status for this pair is done."""
        return self._latest(pair, ("done",))

    def started_steps(self, pair: PairKey) -> dict[str, str]:
        """Steps left 'running' (a run stopped inside them): partial data may be on the dest."""
        return self._latest(pair, ("running",))

    def step_statuses(self, pair: PairKey) -> dict[str, str]:
        """step_id -> latest status, for every step ever recorded for this pair."""
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return {}
        rows = self._rows("SELECT step_id, status FROM step_status WHERE pair_id = ?", (pair_id,))
        return {r["step_id"]: r["status"] for r in rows}

    def _latest(self, pair: PairKey, statuses: tuple[str, ...]) -> dict[str, str]:
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return {}
        marks = ", ".join("?" for _ in statuses)
        rows = self._rows(
            "SELECT step_id, facts_digest FROM step_status"
            f" WHERE pair_id = ? AND status IN ({marks})",
            (pair_id, *statuses),
        )
        return {r["step_id"]: r["facts_digest"] for r in rows}

    def run_steps(self, run_id: int, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM steps WHERE run_id = ?"
        params: tuple = (run_id,)
        if status is not None:
            sql += " AND status = ?"
            params = (run_id, status)
        return self._rows(sql + " ORDER BY rowid", params)

    def failed_steps(self, run_id: int) -> list[dict[str, Any]]:
        return self.run_steps(run_id, "failed")

    # -- subjects and mappings ----------------------------------------------------------------

    def mark_subject_done(self, pair: PairKey, subject: str, run_id: int, fingerprint: str) -> None:
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            previous = c.execute(
                "SELECT fingerprint FROM subjects_done WHERE pair_id = ? AND subject = ?",
                (pair_id, subject),
            ).fetchone()
            c.execute(
                "INSERT INTO subjects_done (pair_id, subject, run_id, completed_at, fingerprint)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pair_id, subject) DO UPDATE SET"
                " run_id = excluded.run_id, completed_at = excluded.completed_at,"
                " fingerprint = excluded.fingerprint",
                (pair_id, subject, run_id, _now(), fingerprint),
            )
            if previous is None or previous[0] != fingerprint:
                self._bump(c, pair_id)

    def completed_subjects(self, pair: PairKey) -> dict[str, str]:
        """Subject label -> fingerprint of the source subtree it was completed from."""
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return {}
        rows = self._rows(
            "SELECT subject, fingerprint FROM subjects_done WHERE pair_id = ?", (pair_id,)
        )
        return {r["subject"]: r["fingerprint"] for r in rows}

    def record_mapping(
        self, pair: PairKey, level: str, address: str, source_id: str, dest_id: str
    ) -> None:
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            c.execute(
                "INSERT INTO mappings (pair_id, level, address, source_id, dest_id, recorded_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pair_id, level, address) DO UPDATE SET"
                " source_id = excluded.source_id, dest_id = excluded.dest_id,"
                " recorded_at = excluded.recorded_at",
                (pair_id, str(level), address, source_id, dest_id, _now()),
            )

    def mappings(self, pair: PairKey) -> dict[tuple[str, str], tuple[str, str]]:
        """(level, address) -> (source_id, dest_id)."""
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return {}
        rows = self._rows(
            "SELECT level, address, source_id, dest_id FROM mappings WHERE pair_id = ?",
            (pair_id,),
        )
        return {(r["level"], r["address"]): (r["source_id"], r["dest_id"]) for r in rows}

    # -- remembered scan pairs ----------------------------------------------------------------

    def remember_scans(self, pair: PairKey, scans: Iterable[ScanMemory]) -> int:
        """Record scan pairs made or found equal; returns how many rows changed.

        Rows already holding the same digests are left alone, so a plan that finds the same
        scans equal again writes nothing. This does not bump ``serial``: what is remembered
        refines comparisons, it never marks a step done.
        """
        rows = [
            (
                m.address,
                m.dest_scan,
                m.source.shape,
                m.source.content,
                m.dest.shape,
                m.dest.content,
            )
            for m in scans
        ]
        if not rows:
            return 0
        now = _now()
        changed = 0
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            for row in rows:
                cur = c.execute(
                    "INSERT INTO scan_memory (pair_id, address, dest_scan, source_shape,"
                    " source_content, dest_shape, dest_content, recorded_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pair_id, address) DO UPDATE"
                    " SET dest_scan = excluded.dest_scan, source_shape = excluded.source_shape,"
                    " source_content = excluded.source_content,"
                    " dest_shape = excluded.dest_shape, dest_content = excluded.dest_content,"
                    " recorded_at = excluded.recorded_at"
                    " WHERE (dest_scan, source_shape, source_content, dest_shape, dest_content)"
                    " IS NOT (excluded.dest_scan, excluded.source_shape,"
                    " excluded.source_content, excluded.dest_shape, excluded.dest_content)",
                    (pair_id, *row, now),
                )
                changed += cur.rowcount
        return changed

    def remembered_scans(self, pair: PairKey) -> dict[str, ScanMemory]:
        """Source scan address -> the remembered pair (see ``planner.sameness``)."""
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return {}
        rows = self._rows("SELECT * FROM scan_memory WHERE pair_id = ?", (pair_id,))
        return {
            r["address"]: ScanMemory(
                r["address"],
                r["dest_scan"],
                SideState(r["source_shape"], r["source_content"]),
                SideState(r["dest_shape"], r["dest_content"]),
            )
            for r in rows
        }

    def serial(self, pair: PairKey) -> int:
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return 0
        return int(self._rows("SELECT serial FROM pairs WHERE id = ?", (pair_id,))[0]["serial"])

    # -- locks --------------------------------------------------------------------------------

    def acquire_lock(
        self, dest_url: str, dest_project: str, *, operation: str, owner: str = ""
    ) -> Lock:
        """Take the destination project's lock, or raise ``LockHeld``.

        A lock left by a process that no longer exists on this host is taken over, and the
        returned lock names the previous holder in ``took_over`` so the caller can warn. A
        lock from another host cannot be checked and is always respected.
        """
        info = LockInfo(
            owner=owner or _user(),
            host=self._host,
            pid=os.getpid(),
            operation=operation,
            acquired_at=_now(),
        )
        token = uuid.uuid4().hex
        with self._tx() as c:
            row = c.execute(
                "SELECT owner, host, pid, operation, acquired_at FROM locks"
                " WHERE dest_url = ? AND dest_project = ?",
                (dest_url, dest_project),
            ).fetchone()
            previous = None
            if row is not None:
                previous = LockInfo(row[0], row[1], int(row[2]), row[3], row[4])
                if previous.host != self._host or pid_alive(previous.pid):
                    raise LockHeld(dest_url, dest_project, previous)
            c.execute(
                "INSERT OR REPLACE INTO locks (dest_url, dest_project, token, owner, host, pid,"
                " operation, acquired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dest_url,
                    dest_project,
                    token,
                    info.owner,
                    info.host,
                    info.pid,
                    info.operation,
                    info.acquired_at,
                ),
            )
        return Lock(dest_url, dest_project, token, info, previous)

    def release_lock(self, lock: Lock) -> None:
        """Release a lock we hold; a lock since taken over by someone else is left alone."""
        with self._tx() as c:
            c.execute(
                "DELETE FROM locks WHERE dest_url = ? AND dest_project = ? AND token = ?",
                (lock.dest_url, lock.dest_project, lock.token),
            )

    def lock_holder(self, dest_url: str, dest_project: str) -> LockInfo | None:
        rows = self._rows(
            "SELECT owner, host, pid, operation, acquired_at FROM locks"
            " WHERE dest_url = ? AND dest_project = ?",
            (dest_url, dest_project),
        )
        if not rows:
            return None
        r = rows[0]
        return LockInfo(r["owner"], r["host"], int(r["pid"]), r["operation"], r["acquired_at"])

    def locks(self, dest_project: str) -> list[tuple[str, LockInfo]]:
        """(destination URL, holder) of every lock on a project of this ID, on any server."""
        rows = self._rows(
            "SELECT dest_url, owner, host, pid, operation, acquired_at FROM locks"
            " WHERE dest_project = ? ORDER BY dest_url",
            (dest_project,),
        )
        return [
            (
                r["dest_url"],
                LockInfo(r["owner"], r["host"], int(r["pid"]), r["operation"], r["acquired_at"]),
            )
            for r in rows
        ]

    def held_by_live_local_process(self, info: LockInfo) -> bool:
        """Whether a lock's holder is a process running on this host (never to be broken)."""
        return info.host == self._host and pid_alive(info.pid)

    def break_lock(self, dest_url: str, dest_project: str) -> LockInfo | None:
        """Remove a lock whoever holds it (for a holder on another host known to be gone)."""
        with self._tx() as c:
            holder = self.lock_holder(dest_url, dest_project)
            c.execute(
                "DELETE FROM locks WHERE dest_url = ? AND dest_project = ?",
                (dest_url, dest_project),
            )
        return holder

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    run = dict(row)
    run["counts"] = json.loads(run.get("counts") or "{}")
    v = run.get("verification")
    run["verification"] = json.loads(v) if v else None
    run.pop("pair_id", None)
    return run


def lock_info_dict(info: LockInfo) -> dict[str, Any]:
    return asdict(info)
