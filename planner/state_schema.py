"""The state DB's tables and how a DB of an older schema is brought up to date.

``MIGRATIONS[n]`` takes a DB from version ``n - 1`` to ``n``; a DB written by a newer tool is
refused rather than misread (``planner.state_base``). This is the only module that knows the
tables' layout; the roles in ``planner.state_*`` read and write them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]


class Executes(Protocol):
    """What a migration needs: a connection (plain ``sqlite3``; the state DB no longer
    loads sqlite-utils, whose import alone takes some 60 MB with numpy)."""

    def execute(self, sql: str, /, *args: Any) -> Any: ...


def _v1(db: Executes) -> None:
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


def _v2(db: Executes) -> None:
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
MIGRATIONS: dict[int, Callable[[Executes], None]] = {1: _v1, 2: _v2}
SCHEMA_VERSION = max(MIGRATIONS)
