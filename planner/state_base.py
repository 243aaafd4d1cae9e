"""The state DB's connection: opening the file, transactions, the schema check, pair ids.

One SQLite file, private to its user (mode 0600), in WAL mode so a ``transfer-status`` can
read while a transfer writes. One connection, shared under a lock, because apply records
steps from worker threads; other processes wait up to ``busy_timeout`` for a write. The
roles that read and write the tables (``planner.state_runs``, ``state_steps``,
``state_memory``, ``state_locks``) build on this class.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from planner import state_schema as schema
from planner.processes import pid_alive

__all__ = ["BUSY_TIMEOUT_MS", "PairKey", "StateConnection", "StateError", "pid_alive"]

BUSY_TIMEOUT_MS = 30_000


class StateError(Exception):
    """The state DB cannot be used (newer schema, not a database, unreadable)."""


@dataclass(frozen=True)
class PairKey:
    source_url: str
    source_project: str
    dest_url: str
    dest_project: str


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return str(os.getuid()) if hasattr(os, "getuid") else "unknown"


def _create_private(path: Path) -> None:
    """Create the DB file 0600 before SQLite touches it: it names servers, users and hosts."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)


class StateConnection:
    """The shared connection and the plumbing every role uses; ``readonly`` opens an
    existing DB for reports, which never write."""

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
            cur = self._conn.execute(sql, params)
            keys = [d[0] for d in cur.description]
            return [dict(zip(keys, row, strict=True)) for row in cur]

    def _migrate(self) -> None:
        target = schema.SCHEMA_VERSION
        with self._tx() as c:
            c.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = c.execute("SELECT version FROM schema_version").fetchone()
            current = row[0] if row else 0
            self._refuse_newer(current, ", or point it at another state DB")
            for version in range(current + 1, target + 1):
                schema.MIGRATIONS[version](c)
            if row is None:
                c.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
            elif current != target:
                c.execute("UPDATE schema_version SET version = ?", (target,))

    def _check_version(self) -> None:
        """For a read-only DB: refuse one written by a newer tool, as ``_migrate`` does."""
        self._refuse_newer(self.schema_version(), "")

    def _refuse_newer(self, current: int, hint: str) -> None:
        if current > schema.SCHEMA_VERSION:
            raise StateError(
                f"the state DB {self.path} was written by a newer xnatctl (schema version "
                f"{current}; this one knows up to {schema.SCHEMA_VERSION}); upgrade xnatctl" + hint
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

    def _pair_rows(self, pair: PairKey, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        """Rows of a per-pair query whose first parameter is the pair's id; none for a pair
        never recorded (reads never create one)."""
        pair_id = self._find_pair(pair)
        if pair_id is None:
            return []
        return self._rows(sql, (pair_id, *params))

    @staticmethod
    def _bump(c: sqlite3.Connection, pair_id: int) -> None:
        c.execute("UPDATE pairs SET serial = serial + 1 WHERE id = ?", (pair_id,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
