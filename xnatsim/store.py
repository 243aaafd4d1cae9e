"""SQLite catalog plus an archive directory laid out like XNAT's.

One connection per thread (WAL mode) for reads; every write goes through one process-wide
lock so that accession numbering and check-then-insert sequences can never race.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id TEXT PRIMARY KEY, secondary_id TEXT, name TEXT, description TEXT,
    pi_firstname TEXT DEFAULT '', pi_lastname TEXT DEFAULT '',
    accessibility TEXT DEFAULT 'private', prearchive_code INTEGER DEFAULT 0,
    insert_date TEXT, insert_user TEXT);
CREATE TABLE IF NOT EXISTS subjects (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, label TEXT NOT NULL,
    insert_date TEXT, insert_user TEXT, gender TEXT DEFAULT '', dob TEXT DEFAULT '',
    yob TEXT DEFAULT '', handedness TEXT DEFAULT '', grp TEXT DEFAULT '', src TEXT DEFAULT '',
    fields TEXT DEFAULT '{}', props TEXT DEFAULT '{}', UNIQUE(project, label));
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, subject_id TEXT NOT NULL, label TEXT NOT NULL,
    xsi_type TEXT NOT NULL, date TEXT DEFAULT '', insert_date TEXT, insert_user TEXT,
    uid TEXT DEFAULT '', modality TEXT DEFAULT '', session_id TEXT DEFAULT '',
    fields TEXT DEFAULT '{}', props TEXT DEFAULT '{}', UNIQUE(project, label));
CREATE TABLE IF NOT EXISTS scans (
    pk INTEGER PRIMARY KEY AUTOINCREMENT, experiment_id TEXT NOT NULL, scan_id TEXT NOT NULL,
    xsi_type TEXT NOT NULL, type TEXT DEFAULT '', quality TEXT DEFAULT 'usable',
    note TEXT DEFAULT '', series_description TEXT DEFAULT '', uid TEXT DEFAULT '',
    frames TEXT DEFAULT '', fields TEXT DEFAULT '{}', props TEXT DEFAULT '{}',
    UNIQUE(experiment_id, scan_id));
CREATE TABLE IF NOT EXISTS resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT, owner_kind TEXT NOT NULL, owner_key TEXT NOT NULL,
    label TEXT NOT NULL, format TEXT DEFAULT '', content TEXT DEFAULT '', tags TEXT DEFAULT '',
    description TEXT DEFAULT '', root TEXT NOT NULL, UNIQUE(owner_kind, owner_key, label));
CREATE TABLE IF NOT EXISTS files (
    resource_id INTEGER NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, md5 TEXT,
    uid TEXT DEFAULT '', PRIMARY KEY(resource_id, path));
CREATE TABLE IF NOT EXISTS users (
    username TEXT PRIMARY KEY, password TEXT NOT NULL, admin INTEGER DEFAULT 0,
    email TEXT DEFAULT '', firstname TEXT DEFAULT '', lastname TEXT DEFAULT '',
    enabled INTEGER DEFAULT 1);
CREATE TABLE IF NOT EXISTS roles (
    project TEXT NOT NULL, username TEXT NOT NULL, role TEXT NOT NULL,
    PRIMARY KEY(project, username));
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, username TEXT NOT NULL, last_access REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    alias TEXT PRIMARY KEY, secret TEXT NOT NULL, username TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prearchive (
    project TEXT NOT NULL, timestamp TEXT NOT NULL, folder TEXT NOT NULL,
    status TEXT NOT NULL, subject TEXT DEFAULT '', label TEXT DEFAULT '', tag TEXT DEFAULT '',
    scan_date TEXT DEFAULT '', uploaded TEXT DEFAULT '', lastmod TEXT DEFAULT '',
    last_activity REAL NOT NULL, manifest TEXT NOT NULL, autoarchive INTEGER,
    PRIMARY KEY(project, timestamp, folder));
CREATE TABLE IF NOT EXISTS shares (
    kind TEXT NOT NULL, entity_id TEXT NOT NULL, project TEXT NOT NULL, label TEXT NOT NULL,
    PRIMARY KEY(kind, entity_id, project));
CREATE INDEX IF NOT EXISTS shares_project ON shares(kind, project);
CREATE INDEX IF NOT EXISTS subjects_project ON subjects(project);
CREATE INDEX IF NOT EXISTS experiments_project ON experiments(project);
CREATE INDEX IF NOT EXISTS experiments_subject ON experiments(subject_id);
CREATE INDEX IF NOT EXISTS scans_experiment ON scans(experiment_id);
CREATE INDEX IF NOT EXISTS resources_owner ON resources(owner_kind, owner_key);
"""

OWNER_CATEGORY = {
    "project": "resources",
    "subject": "resources",
    "experiment": "resources",
    "scan": "scans",
    "assessor": "assessors",
}


SUBJECT_COLUMNS = {
    "gender": "gender",
    "dob": "dob",
    "yob": "yob",
    "handedness": "handedness",
    "group": "grp",
    "src": "src",
}
EXPERIMENT_COLUMNS = {"date": "date", "UID": "uid", "uid": "uid", "modality": "modality"}
SCAN_COLUMNS = {
    "type": "type",
    "quality": "quality",
    "note": "note",
    "series_description": "series_description",
    "UID": "uid",
    "uid": "uid",
    "frames": "frames",
}


class Exists(Exception):
    """A create raced with another request that made the same object first."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def dicom_instance_uid(path: Path) -> str:
    """The SOPInstanceUID in a file's DICOM header, or "" when it is not readable DICOM."""
    import pydicom  # only the migration and old prearchive manifests need it

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        return str(ds.get("SOPInstanceUID", "") or "")
    except Exception:  # any unreadable file is simply not a DICOM entry
        return ""


def now_text() -> str:
    """XNAT's timestamp style, local time with milliseconds."""
    return datetime.now().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class Store:
    """The catalog and the archive; the only code that knows the on-disk layout."""

    def __init__(self, data_dir: Path, site_id: str) -> None:
        self.data_dir = Path(data_dir)
        self.site_id = site_id
        self.archive_dir = self.data_dir / "archive"
        self.prearchive_dir = self.data_dir / "prearchive"
        self.tmp_dir = self.data_dir / "tmp"
        for d in (self.archive_dir, self.prearchive_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._clean_tmp()
        self.db_path = self.data_dir / "xnatsim.db"
        self.write_lock = threading.RLock()
        # The prearchive code a new project gets (XNAT's site preference
        # defaultProjectAutoArchiveSetting, default 4: auto-archive).
        self.default_prearchive_code = 4
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        with self.write_lock:
            self.conn().executescript(SCHEMA)
            self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Catalogs made by older versions lack the `props` columns; add them in place."""
        conn = self.conn()
        for table in ("subjects", "experiments", "scans"):
            cols = {r["name"] for r in conn.execute(f"PRAGMA table_info({table})")}
            if "props" not in cols:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN props TEXT DEFAULT '{{}}'")
        cols = {r["name"] for r in conn.execute("PRAGMA table_info(prearchive)")}
        if "autoarchive" not in cols:
            conn.execute("ALTER TABLE prearchive ADD COLUMN autoarchive INTEGER")
        cols = {r["name"] for r in conn.execute("PRAGMA table_info(files)")}
        if "uid" not in cols:
            conn.execute("ALTER TABLE files ADD COLUMN uid TEXT DEFAULT ''")
            self._backfill_dicom_uids()

    def _backfill_dicom_uids(self) -> None:
        """Catalogs made before file entries carried a SOPInstanceUID: the importer's scan
        `DICOM` resources get each readable file's UID from its header, so their entries are
        DICOM entries (`cat:dcmEntry`) again; every other entry stays a plain `cat:entry`."""
        conn = self.conn()
        rows = conn.execute(
            "SELECT f.resource_id, f.path, r.root FROM files f JOIN resources r"
            " ON r.id = f.resource_id WHERE r.owner_kind = 'scan' AND r.label = 'DICOM'"
        ).fetchall()
        for row in rows:
            uid = dicom_instance_uid(self.data_dir / row["root"] / row["path"])
            if uid:
                conn.execute(
                    "UPDATE files SET uid = ? WHERE resource_id = ? AND path = ?",
                    (uid, row["resource_id"], row["path"]),
                )

    def _clean_tmp(self) -> None:
        """Leftovers of requests interrupted by a crash are never part of the archive."""
        for child in self.tmp_dir.iterdir():
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    child.unlink()

    # -- connections ---------------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.db_path, timeout=60, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        return conn

    def close(self) -> None:
        with self._conns_lock:
            for conn in self._all_conns:
                with contextlib.suppress(Exception):
                    conn.close()
            self._all_conns.clear()
        self._local = threading.local()

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One serialised transaction: commit on success, roll back on any error."""
        with self.write_lock:
            conn = self.conn()
            if conn.in_transaction:
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        return self.conn().execute(sql, params).fetchall()

    def one(self, sql: str, params: tuple | list = ()) -> sqlite3.Row | None:
        return self.conn().execute(sql, params).fetchone()

    def new_tmp_path(self, suffix: str = "") -> Path:
        return self.tmp_dir / f"{os.getpid()}-{threading.get_ident()}-{time.time_ns()}{suffix}"

    # -- projects ------------------------------------------------------------------------
    def project(self, pid: str) -> sqlite3.Row | None:
        return self.one("SELECT * FROM projects WHERE id = ?", (pid,))

    def create_project(self, pid: str, user: str, **fields: str) -> None:
        with self.write() as c:
            if c.execute("SELECT 1 FROM projects WHERE id = ?", (pid,)).fetchone():
                raise Exists(pid)
            c.execute(
                "INSERT INTO projects (id, secondary_id, name, description, pi_firstname,"
                " pi_lastname, accessibility, insert_date, insert_user, prearchive_code)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    pid,
                    fields.get("secondary_ID") or pid,
                    fields.get("name") or pid,
                    fields.get("description", ""),
                    fields.get("pi_firstname", ""),
                    fields.get("pi_lastname", ""),
                    fields.get("accessibility", "private"),
                    now_text(),
                    user,
                    int(fields.get("prearchive_code", self.default_prearchive_code)),
                ),
            )
            c.execute("INSERT OR REPLACE INTO roles VALUES (?,?,?)", (pid, user, "owner"))

    def update_project(self, pid: str, **fields: Any) -> None:
        if not fields:
            return
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self.write() as c:
            c.execute(f"UPDATE projects SET {cols} WHERE id = ?", (*fields.values(), pid))

    # -- accession numbers ---------------------------------------------------------------
    def _next_id(self, c: sqlite3.Connection, table: str, letter: str) -> str:
        prefix = f"{self.site_id}_{letter}"
        top = 0
        for r in c.execute(
            f"SELECT id FROM {table} WHERE substr(id, 1, ?) = ?", (len(prefix), prefix)
        ).fetchall():
            tail = r["id"][len(prefix) :]
            if tail.isdigit():
                top = max(top, int(tail))
        return f"{prefix}{top + 1:05d}"

    # -- subjects ------------------------------------------------------------------------
    def subject_by(self, project: str | None, key: str) -> sqlite3.Row | None:
        """A subject by accession ID, or by label within a project (its own label there, or
        the label it was shared into that project under)."""
        return self._entity_by("subjects", "subject", project, key)

    def _entity_by(
        self, table: str, kind: str, project: str | None, key: str
    ) -> sqlite3.Row | None:
        row = self.one(f"SELECT * FROM {table} WHERE id = ?", (key,))
        if row is not None and (
            project is None
            or row["project"] == project
            or self.shared_label(kind, row["id"], project) is not None
        ):
            return row
        if project is None:
            return None
        row = self.one(f"SELECT * FROM {table} WHERE project = ? AND label = ?", (project, key))
        if row is None:
            share = self.one(
                "SELECT entity_id FROM shares WHERE kind = ? AND project = ? AND label = ?",
                (kind, project, key),
            )
            if share is not None:
                row = self.one(f"SELECT * FROM {table} WHERE id = ?", (share["entity_id"],))
        if row is None:
            # Shared under another label, still addressed by its own label in the project it
            # is shared into (TestSharing.testImageAssessorCreation).
            row = self.one(
                f"SELECT t.* FROM {table} t JOIN shares sh ON sh.entity_id = t.id"
                " WHERE sh.kind = ? AND sh.project = ? AND t.label = ?",
                (kind, project, key),
            )
        return row

    # -- sharing -------------------------------------------------------------------------
    def shared_label(self, kind: str, entity_id: str, project: str) -> str | None:
        row = self.one(
            "SELECT label FROM shares WHERE kind = ? AND entity_id = ? AND project = ?",
            (kind, entity_id, project),
        )
        return None if row is None else row["label"]

    def shares_of(self, kind: str, entity_id: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT * FROM shares WHERE kind = ? AND entity_id = ? ORDER BY project",
            (kind, entity_id),
        )

    def shared_into(self, kind: str, project: str) -> dict[str, str]:
        """{entity id: label} of everything of `kind` shared into `project`."""
        return {
            r["entity_id"]: r["label"]
            for r in self.query(
                "SELECT entity_id, label FROM shares WHERE kind = ? AND project = ?",
                (kind, project),
            )
        }

    def share(self, kind: str, entity_id: str, project: str, label: str) -> bool:
        """Share an entity into `project` under `label`; True if the share is new.

        Raises Exists when another entity already answers to `label` in that project."""
        table = "subjects" if kind == "subject" else "experiments"
        with self.write() as c:
            owned = c.execute(
                f"SELECT id FROM {table} WHERE project = ? AND label = ?", (project, label)
            ).fetchone()
            shared = c.execute(
                "SELECT entity_id FROM shares WHERE kind = ? AND project = ? AND label = ?",
                (kind, project, label),
            ).fetchone()
            if (owned and owned["id"] != entity_id) or (
                shared and shared["entity_id"] != entity_id
            ):
                raise Exists(label)
            existed = c.execute(
                "SELECT 1 FROM shares WHERE kind = ? AND entity_id = ? AND project = ?",
                (kind, entity_id, project),
            ).fetchone()
            c.execute(
                "INSERT OR REPLACE INTO shares VALUES (?,?,?,?)", (kind, entity_id, project, label)
            )
            return existed is None

    def unshare(self, kind: str, entity_id: str, project: str) -> bool:
        with self.write() as c:
            cur = c.execute(
                "DELETE FROM shares WHERE kind = ? AND entity_id = ? AND project = ?",
                (kind, entity_id, project),
            )
            return cur.rowcount > 0

    def create_subject(self, project: str, label: str, user: str, fields: dict[str, str]) -> str:
        with self.write() as c:
            existing = c.execute(
                "SELECT id FROM subjects WHERE project = ? AND label = ?", (project, label)
            ).fetchone()
            if existing:
                return existing["id"]
            sid = self._next_id(c, "subjects", "S")
            c.execute(
                "INSERT INTO subjects (id, project, label, insert_date, insert_user)"
                " VALUES (?,?,?,?,?)",
                (sid, project, label, now_text(), user),
            )
            self._apply_subject_fields(c, sid, fields)
            return sid

    def _apply_subject_fields(self, c: sqlite3.Connection, sid: str, fields: dict) -> None:
        self._apply(c, "subjects", "id", sid, SUBJECT_COLUMNS, fields)

    def _apply(
        self,
        c: sqlite3.Connection,
        table: str,
        key_col: str,
        key: object,
        columns: dict[str, str],
        fields: dict,
    ) -> None:
        """Write canonical field keys: known ones to their columns, custom fields
        (`fields/NAME`) to the `fields` JSON, everything else to the `props` JSON.
        An empty value clears the field, as an empty element does in XNAT."""
        row = c.execute(f"SELECT fields, props FROM {table} WHERE {key_col} = ?", (key,)).fetchone()
        custom = json.loads(row["fields"] or "{}")
        props = json.loads(row["props"] or "{}")
        for name, value in fields.items():
            value = "" if value is None else str(value)
            if name in columns:
                c.execute(
                    f"UPDATE {table} SET {columns[name]} = ? WHERE {key_col} = ?", (value, key)
                )
                continue
            target, name = (
                (custom, name[len("fields/") :]) if name.startswith("fields/") else (props, name)
            )
            if value == "":
                target.pop(name, None)
            else:
                target[name] = value
        c.execute(
            f"UPDATE {table} SET fields = ?, props = ? WHERE {key_col} = ?",
            (json.dumps(custom), json.dumps(props), key),
        )

    def update_subject(self, sid: str, fields: dict[str, str]) -> None:
        with self.write() as c:
            self._apply_subject_fields(c, sid, fields)

    # -- experiments ---------------------------------------------------------------------
    def experiment_by(
        self, project: str | None, key: str, subject_id: str | None = None
    ) -> sqlite3.Row | None:
        return self._entity_by("experiments", "experiment", project, key)

    def create_experiment(
        self,
        project: str,
        subject_id: str,
        label: str,
        xsi_type: str,
        user: str,
        fields: dict[str, str],
        session_id: str = "",
    ) -> str:
        with self.write() as c:
            row = c.execute(
                "SELECT id FROM experiments WHERE project = ? AND label = ?", (project, label)
            ).fetchone()
            if row is not None:
                raise Exists(row["id"])
            eid = self._next_id(c, "experiments", "E")
            c.execute(
                "INSERT INTO experiments (id, project, subject_id, label, xsi_type, insert_date,"
                " insert_user, session_id) VALUES (?,?,?,?,?,?,?,?)",
                (eid, project, subject_id, label, xsi_type, now_text(), user, session_id),
            )
            self._apply_experiment_fields(c, eid, fields)
            return eid

    def _apply_experiment_fields(self, c: sqlite3.Connection, eid: str, fields: dict) -> None:
        self._apply(c, "experiments", "id", eid, EXPERIMENT_COLUMNS, fields)

    def update_experiment(self, eid: str, fields: dict[str, str]) -> None:
        with self.write() as c:
            self._apply_experiment_fields(c, eid, fields)

    # -- scans ---------------------------------------------------------------------------
    def scan(self, eid: str, scan_id: str) -> sqlite3.Row | None:
        return self.one(
            "SELECT * FROM scans WHERE experiment_id = ? AND scan_id = ?", (eid, scan_id)
        )

    def upsert_scan(self, eid: str, scan_id: str, xsi_type: str, fields: dict[str, str]) -> int:
        with self.write() as c:
            row = c.execute(
                "SELECT pk FROM scans WHERE experiment_id = ? AND scan_id = ?", (eid, scan_id)
            ).fetchone()
            if row is None:
                cur = c.execute(
                    "INSERT INTO scans (experiment_id, scan_id, xsi_type) VALUES (?,?,?)",
                    (eid, scan_id, xsi_type),
                )
                pk = int(cur.lastrowid)
            else:
                pk = int(row["pk"])
            self._apply(c, "scans", "pk", pk, SCAN_COLUMNS, fields)
            return pk

    # -- archive layout ------------------------------------------------------------------
    def session_dir(self, exp: sqlite3.Row) -> Path:
        return self.archive_dir / exp["project"] / "arc001" / exp["label"]

    def owner_dir(self, kind: str, key: str) -> Path:
        """Where the resources of one catalog object live on disk."""
        if kind == "project":
            return self.archive_dir / key / "resources"
        if kind == "subject":
            subj = self.one("SELECT * FROM subjects WHERE id = ?", (key,))
            return self.archive_dir / subj["project"] / "subjects" / subj["label"] / "RESOURCES"
        if kind == "experiment":
            exp = self.one("SELECT * FROM experiments WHERE id = ?", (key,))
            return self.session_dir(exp) / "RESOURCES"
        if kind == "assessor":
            ass = self.one("SELECT * FROM experiments WHERE id = ?", (key,))
            parent = self.one("SELECT * FROM experiments WHERE id = ?", (ass["session_id"],))
            return self.session_dir(parent) / "ASSESSORS" / ass["label"]
        if kind == "scan":
            scan = self.one("SELECT * FROM scans WHERE pk = ?", (int(key),))
            exp = self.one("SELECT * FROM experiments WHERE id = ?", (scan["experiment_id"],))
            return self.session_dir(exp) / "SCANS" / scan["scan_id"]
        raise ValueError(kind)

    # -- resources -----------------------------------------------------------------------
    def resources(self, kind: str, key: str) -> list[sqlite3.Row]:
        return self.query(
            "SELECT r.*, COUNT(f.path) AS file_count, COALESCE(SUM(f.size), 0) AS file_size"
            " FROM resources r LEFT JOIN files f ON f.resource_id = r.id"
            " WHERE r.owner_kind = ? AND r.owner_key = ? GROUP BY r.id ORDER BY r.id",
            (kind, key),
        )

    def resource(self, kind: str, key: str, ref: str) -> sqlite3.Row | None:
        row = self.one(
            "SELECT * FROM resources WHERE owner_kind = ? AND owner_key = ? AND label = ?",
            (kind, key, ref),
        )
        if row is None and ref.isdigit():
            row = self.one(
                "SELECT * FROM resources WHERE owner_kind = ? AND owner_key = ? AND id = ?",
                (kind, key, int(ref)),
            )
        return row

    def create_resource(
        self,
        kind: str,
        key: str,
        label: str,
        fmt: str = "",
        content: str = "",
        tags: str = "",
        description: str = "",
    ) -> int:
        owner = self.owner_dir(kind, key)
        root = self.inside_archive(owner / label)
        if root.resolve().parent != owner.resolve():
            raise ValueError(f"Resource label {label!r} is not a plain folder name")
        with self.write() as c:
            row = c.execute(
                "SELECT id FROM resources WHERE owner_kind = ? AND owner_key = ? AND label = ?",
                (kind, key, label),
            ).fetchone()
            if row is not None:
                return int(row["id"])
            cur = c.execute(
                "INSERT INTO resources (owner_kind, owner_key, label, format, content, tags,"
                " description, root) VALUES (?,?,?,?,?,?,?,?)",
                (
                    kind,
                    key,
                    label,
                    fmt,
                    content,
                    tags,
                    description,
                    str(root.relative_to(self.data_dir)),
                ),
            )
            return int(cur.lastrowid)

    def resource_root(self, res: sqlite3.Row) -> Path:
        return self.inside_archive(self.data_dir / res["root"])

    def inside_archive(self, path: Path) -> Path:
        """`path`, checked to lie inside the archive: a last guard behind the request-path
        check, so no label can ever point a resource at another object's files."""
        if not path.resolve().is_relative_to(self.archive_dir.resolve()):
            raise ValueError(f"{path} is outside the archive")
        return path

    def files(self, resource_id: int) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM files WHERE resource_id = ? ORDER BY path", (resource_id,))

    def delete_resource(self, res: sqlite3.Row, remove_files: bool) -> None:
        with self.write() as c:
            c.execute("DELETE FROM files WHERE resource_id = ?", (res["id"],))
            c.execute("DELETE FROM resources WHERE id = ?", (res["id"],))
        if remove_files:
            shutil.rmtree(self.resource_root(res), ignore_errors=True)

    def delete_owner_resources(self, kind: str, key: str, remove_files: bool) -> None:
        for res in self.query(
            "SELECT * FROM resources WHERE owner_kind = ? AND owner_key = ?", (kind, key)
        ):
            self.delete_resource(res, remove_files)

    def delete_scan(self, scan: sqlite3.Row, remove_files: bool) -> None:
        with self.write():
            self.delete_owner_resources("scan", str(scan["pk"]), remove_files)
            self.conn().execute("DELETE FROM scans WHERE pk = ?", (scan["pk"],))

    def delete_experiment(self, exp: sqlite3.Row, remove_files: bool) -> None:
        with self.write() as c:
            for ass in c.execute(
                "SELECT * FROM experiments WHERE session_id = ?", (exp["id"],)
            ).fetchall():
                self.delete_experiment(ass, remove_files)
            for scan in c.execute(
                "SELECT * FROM scans WHERE experiment_id = ?", (exp["id"],)
            ).fetchall():
                self.delete_scan(scan, remove_files)
            kind = "assessor" if exp["session_id"] else "experiment"
            self.delete_owner_resources(kind, exp["id"], remove_files)
            c.execute(
                "DELETE FROM shares WHERE kind = 'experiment' AND entity_id = ?", (exp["id"],)
            )
            c.execute("DELETE FROM experiments WHERE id = ?", (exp["id"],))
        if remove_files and not exp["session_id"]:
            shutil.rmtree(self.session_dir(exp), ignore_errors=True)

    def delete_subject(self, subj: sqlite3.Row, remove_files: bool) -> None:
        with self.write() as c:
            for exp in c.execute(
                "SELECT * FROM experiments WHERE subject_id = ? AND session_id = ''", (subj["id"],)
            ).fetchall():
                self.delete_experiment(exp, remove_files)
            self.delete_owner_resources("subject", subj["id"], remove_files)
            c.execute("DELETE FROM shares WHERE kind = 'subject' AND entity_id = ?", (subj["id"],))
            c.execute("DELETE FROM subjects WHERE id = ?", (subj["id"],))
        if remove_files:
            shutil.rmtree(
                self.archive_dir / subj["project"] / "subjects" / subj["label"], ignore_errors=True
            )

    def delete_project(self, pid: str, remove_files: bool) -> None:
        with self.write() as c:
            for subj in c.execute("SELECT * FROM subjects WHERE project = ?", (pid,)).fetchall():
                self.delete_subject(subj, remove_files)
            self.delete_owner_resources("project", pid, remove_files)
            c.execute("DELETE FROM roles WHERE project = ?", (pid,))
            c.execute("DELETE FROM shares WHERE project = ?", (pid,))
            c.execute("DELETE FROM projects WHERE id = ?", (pid,))
        if remove_files:
            shutil.rmtree(self.archive_dir / pid, ignore_errors=True)
