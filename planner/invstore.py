"""Inventories on disk: one SQLite file per snapshot, read one experiment at a time.

A project of tens of millions of files does not fit in memory as Python objects, so a
snapshot writes each experiment to a store as it is read, and the walk, diff, drift,
verification and staleness read it back one experiment at a time. A stored inventory is an
ordinary ``Inventory`` whose ``subjects`` (and each subject's ``experiments``) are read-only
mappings backed by the store: every caller works unchanged, and memory holds one experiment
per side (the last one read, so consecutive reads of its scans do not decode it again).

The file holds a header (server, project, version, project resources, flags), one row per
subject (its own fields and resources) and one row per experiment: its canonical JSON
(``planner.inventory``'s, sorted keys), zlib-compressed, so the inventory's fingerprint is
computed by reading the rows in sorted order without decoding them. Experiments are indexed
by (subject, label) and by label, for "which subject holds label E".

Stores live in the directory their maker names (xnatctl passes ``inventories`` under its
state directory, or ``$XNATCTL_STORE_DIR``; without one, ``default_store_dir()``) and are
removed when their inventory is garbage-collected or the process exits, unless opened with
``keep=True``; those of a process killed before it could remove them are removed by the next
store made there.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
import weakref
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from planner.inventory import (
    Experiment,
    Inventory,
    Resource,
    Subject,
    experiment_from_dict,
    experiment_to_dict,
    resource_from_dict,
    resource_to_dict,
)
from planner.privatedirs import private_dir
from planner.processes import pid_alive

STORE_DIR_ENV = "XNATCTL_STORE_DIR"
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS header (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subjects (
    label TEXT PRIMARY KEY, placeholder INTEGER NOT NULL, shared_from TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    subject TEXT NOT NULL, label TEXT NOT NULL, shared_from TEXT NOT NULL,
    digests INTEGER NOT NULL, files INTEGER NOT NULL, bytes INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (subject, label)
);
CREATE INDEX IF NOT EXISTS experiments_by_label ON experiments (label);
"""

K = TypeVar("K")
V = TypeVar("V")


def default_store_dir() -> Path:
    """Where a store goes when its maker names no directory (a library caller, a test):
    ``$XNATCTL_STORE_DIR``, else a directory of this user's under the system's temporary
    directory. The CLI always names one (``xnatctl.paths``)."""
    if os.environ.get(STORE_DIR_ENV):
        return Path(os.environ[STORE_DIR_ENV]).expanduser()
    return Path(tempfile.gettempdir()) / f"xnatctl-inventories-{os.getuid()}"


def sweep(directory: Path) -> None:
    """Remove the stores of processes that are gone (killed before they could remove them):
    a store's name carries the ID of the process that made it."""
    for path in directory.glob("inventory-*-*.sqlite"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            _remove(path)


def _pack(data: dict[str, Any]) -> bytes:
    return zlib.compress(_CANONICAL.encode(data).encode(), 1)


def _unpack(blob: bytes) -> dict[str, Any]:
    return json.loads(zlib.decompress(blob))


def _files_have_digests(resources: Mapping[str, Resource]) -> bool:
    return all(f.digest for r in resources.values() for f in r.files)


def experiment_has_digests(e: Experiment) -> bool:
    """Did the server give an MD5 for every file of the experiment?"""
    return (
        _files_have_digests(e.resources)
        and all(_files_have_digests(s.resources) for s in e.scans.values())
        and all(_files_have_digests(a.resources) for a in e.assessors.values())
    )


def experiment_size(e: Experiment) -> tuple[int, int]:
    """(files, bytes) of an experiment's own and its scans' resources, as
    ``planner.compare.entity_size`` counts them: kept in the index, so a subject's size
    needs no experiment read."""
    resources = [
        *e.resources.values(),
        *(r for s in e.scans.values() for r in s.resources.values()),
    ]
    return sum(len(r.files) for r in resources), sum(r.total_bytes for r in resources)


def _remove(path: Path) -> None:
    for p in (path, Path(f"{path}-journal")):
        p.unlink(missing_ok=True)


def _subject_own(s: Subject) -> dict[str, Any]:
    """A subject's own fields and resources, without its experiments (rows of their own):
    what its row holds and what its part of the fingerprint hashes."""
    return {
        "label": s.label,
        "id": s.id,
        "shared_from": s.shared_from,
        "fields": dict(sorted(s.fields.items())),
        "resources": {k: resource_to_dict(v) for k, v in sorted(s.resources.items())},
    }


class StoreError(Exception):
    """An inventory store that cannot be made or written (a full disk, a directory without
    permission): one line naming the file and what to do, not a database traceback."""

    def __init__(self, where: Path | str, exc: BaseException) -> None:
        cause = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        super().__init__(
            f"the inventory store {where} cannot be written ({cause}): free space there, or "
            "set XNATCTL_STORE_DIR to a directory on a disk with room"
        )


class InventoryStore:
    """One SQLite file holding one inventory. Writes come from one thread at a time (the
    snapshot's collecting thread); reads may come from any thread, one at a time."""

    def __init__(
        self, path: Path | None = None, *, keep: bool = False, directory: Path | None = None
    ) -> None:
        if path is None:
            d = directory if directory is not None else default_store_dir()
            private_dir(d)
            sweep(d)
            fd, name = tempfile.mkstemp(prefix=f"inventory-{os.getpid()}-", suffix=".sqlite", dir=d)
            os.close(fd)
            path = Path(name)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._last: tuple[str, str, Experiment] | None = None
        self._finalizer = (
            None if keep else weakref.finalize(self, InventoryStore._close, self._db, path)
        )

    @staticmethod
    def _close(db: sqlite3.Connection, path: Path) -> None:
        db.close()
        _remove(path)

    def close(self) -> None:
        """Close and (unless kept) remove the file now rather than at garbage collection."""
        if self._finalizer is not None:
            self._finalizer()
        else:
            self._db.close()

    @classmethod
    def open(cls, path: Path, *, keep: bool = True) -> Inventory:
        """The inventory of a store written earlier (kept unless ``keep`` is False)."""
        return cls(path, keep=keep).inventory()

    # -- writing ---------------------------------------------------------------------------

    def _begin(self) -> None:
        """Writes go in one transaction, committed by ``finish``."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN")

    def put_subject(self, s: Subject, *, placeholder: bool = False) -> None:
        """A subject's own row (its experiments are rows of their own)."""
        data = _subject_own(s)
        verb = "INSERT OR IGNORE" if placeholder else "INSERT OR REPLACE"
        with self._lock:
            self._begin()
            self._db.execute(
                f"{verb} INTO subjects VALUES (?, ?, ?, ?)",
                (s.label, int(placeholder), s.shared_from, _pack(data)),
            )

    def put_experiment(self, subject: str, e: Experiment) -> None:
        blob = _pack(experiment_to_dict(e))
        files, nbytes = experiment_size(e)
        with self._lock:
            self._begin()
            self._db.execute(
                "INSERT OR REPLACE INTO experiments VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    subject,
                    e.label,
                    e.shared_from,
                    int(experiment_has_digests(e)),
                    files,
                    nbytes,
                    blob,
                ),
            )

    def finish(
        self,
        *,
        server_url: str,
        project: str,
        server_version: str = "",
        taken_at: str = "",
        resources: Mapping[str, Resource] | None = None,
        requests: int = 0,
        digests: bool | None = None,
    ) -> Inventory:
        """Write the header, commit, and return the stored inventory. ``digests`` None: true
        when every file of the project, its subjects and experiments has a digest."""
        resources = dict(sorted((resources or {}).items()))
        with self._lock:
            self._begin()
            self._db.execute(
                "INSERT OR IGNORE INTO subjects SELECT DISTINCT subject, 1, '', ? FROM experiments",
                (b"",),
            )
        if digests is None:
            digests = _files_have_digests(resources) and self._all_digests()
        header = {
            "server_url": server_url,
            "project": project,
            "server_version": server_version,
            "taken_at": taken_at,
            "digests": digests,
            "requests": requests,
            "resources": {k: resource_to_dict(v) for k, v in resources.items()},
        }
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO header VALUES ('inventory', ?)", (json.dumps(header),)
            )
            self._db.execute("COMMIT")
        return self.inventory()

    def _all_digests(self) -> bool:
        with self._lock:
            bad = self._db.execute("SELECT 1 FROM experiments WHERE digests = 0 LIMIT 1").fetchone()
            rows = self._db.execute("SELECT data FROM subjects WHERE placeholder = 0").fetchall()
        if bad is not None:
            return False
        return all(_files_have_digests(self._subject(blob).resources) for (blob,) in rows)

    # -- reading ---------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        """The stored inventory; it keeps this store (and so its file) alive."""
        with self._lock:
            (text,) = self._db.execute("SELECT value FROM header WHERE key='inventory'").fetchone()
        h = json.loads(text)
        return Inventory(
            server_url=h["server_url"],
            project=h["project"],
            server_version=h["server_version"],
            taken_at=h["taken_at"],
            digests=bool(h["digests"]),
            resources={k: resource_from_dict(v) for k, v in h["resources"].items()},
            subjects=StoredSubjects(self),
            requests=int(h["requests"]),
        )

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def subject_labels(self) -> list[str]:
        return [r[0] for r in self._query("SELECT label FROM subjects ORDER BY label")]

    def _subject(self, blob: bytes, label: str = "") -> Subject:
        if not blob:
            return Subject(label=label)
        d = _unpack(blob)
        return Subject(
            label=d["label"],
            id=d["id"],
            shared_from=d["shared_from"],
            fields=d["fields"],
            resources={k: resource_from_dict(v) for k, v in d["resources"].items()},
        )

    def subject(self, label: str) -> Subject | None:
        rows = self._query("SELECT data FROM subjects WHERE label = ?", (label,))
        if not rows:
            return None
        s = self._subject(rows[0][0], label)
        return Subject(
            label=s.label,
            id=s.id,
            shared_from=s.shared_from,
            fields=s.fields,
            resources=s.resources,
            experiments=StoredExperiments(self, label),
        )

    def experiment_labels(self, subject: str) -> list[str]:
        sql = "SELECT label FROM experiments WHERE subject = ? ORDER BY label"
        return [r[0] for r in self._query(sql, (subject,))]

    def experiment(self, subject: str, label: str) -> Experiment | None:
        last = self._last
        if last is not None and last[0] == subject and last[1] == label:
            return last[2]
        sql = "SELECT data FROM experiments WHERE subject = ? AND label = ?"
        rows = self._query(sql, (subject, label))
        if not rows:
            return None
        e = experiment_from_dict(_unpack(rows[0][0]))
        self._last = (subject, label, e)
        return e

    def sizes(self, subject: str) -> dict[str, tuple[int, int]]:
        """Experiment label -> (files, bytes) for one subject, from the index."""
        sql = "SELECT label, files, bytes FROM experiments WHERE subject = ?"
        return {r[0]: (r[1], r[2]) for r in self._query(sql, (subject,))}

    def homes(self, label: str) -> list[str]:
        """The subjects holding an experiment of this label (XNAT allows one)."""
        sql = "SELECT subject FROM experiments WHERE label = ? ORDER BY subject"
        return [r[0] for r in self._query(sql, (label,))]

    def shared(self) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
        """Subjects (label, owner) and experiments (subject, label, owner) shared into the
        project, from the index, without reading any experiment."""
        subjects = self._query(
            "SELECT label, shared_from FROM subjects WHERE shared_from != '' ORDER BY label"
        )
        experiments = self._query(
            "SELECT subject, label, shared_from FROM experiments WHERE shared_from != '' "
            "ORDER BY subject, label"
        )
        return [tuple(r) for r in subjects], [tuple(r) for r in experiments]  # type: ignore[misc]

    def canonical_subjects(self) -> Iterator[tuple[str, str, Iterator[tuple[str, str]]]]:
        """(label, canonical JSON of the subject without experiments, its experiments as
        (label, canonical JSON)), in sorted order: what the fingerprint hashes."""
        for label in self.subject_labels():
            s = self.subject(label)
            assert s is not None
            own = _subject_own(s)
            yield label, _CANONICAL.encode(own), self._canonical_experiments(label)

    def _canonical_experiments(self, subject: str) -> Iterator[tuple[str, str]]:
        for label in self.experiment_labels(subject):
            sql = "SELECT data FROM experiments WHERE subject = ? AND label = ?"
            (blob,) = self._query(sql, (subject, label))[0]
            yield label, zlib.decompress(blob).decode()


class LazyMapping(Mapping[K, V]):
    """A read-only mapping of fixed keys whose values are made on access, never kept."""

    def __init__(self, keys: list[K], load: Callable[[K], V | None]) -> None:
        self._keys = keys
        self._set = set(keys)
        self._load = load

    def __getitem__(self, key: K) -> V:
        if key not in self._set:
            raise KeyError(key)
        value = self._load(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[K]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._set

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self._keys)} keys)"


class StoredSubjects(LazyMapping[str, Subject]):
    """An inventory's subjects, read from its store on access."""

    def __init__(self, store: InventoryStore) -> None:
        super().__init__(store.subject_labels(), store.subject)
        self.store = store


class StoredExperiments(LazyMapping[str, Experiment]):
    """A stored subject's experiments, read from the store on access."""

    def __init__(self, store: InventoryStore, subject: str) -> None:
        super().__init__(store.experiment_labels(subject), lambda k: store.experiment(subject, k))
        self.store = store
        self.subject = subject

    def size(self) -> tuple[int, int]:
        """(files, bytes) of these experiments, from the store's index."""
        sizes = self.store.sizes(self.subject)
        kept = [sizes[k] for k in self if k in sizes]
        return sum(f for f, _ in kept), sum(b for _, b in kept)


def store_of(inv: Inventory) -> InventoryStore | None:
    """The store behind an inventory read from disk, or None for one held in memory."""
    subjects = inv.subjects
    return subjects.store if isinstance(subjects, StoredSubjects) else None


def is_lazy(mapping: Mapping[Any, Any]) -> bool:
    """Is this mapping read on access (so callers must not build project-wide copies)?"""
    return isinstance(mapping, LazyMapping)
