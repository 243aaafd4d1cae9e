"""What the state DB remembers per pair beyond steps: completed subjects (with the
fingerprint of the source subtree they were completed from, so a plan tells "done" from
"has new data"), accession-ID mappings, scan pairs' DICOM digests (``planner.sameness``),
and the pair's ``serial``, bumped by every write that changes what is recorded as done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from planner.address import Address
from planner.plan import Level
from planner.sameness import ScanMemory, SideState
from planner.state_base import PairKey, StateConnection, _now

__all__ = ["PairMemory", "ScanMemoryLookup"]


def _memory(r: dict[str, Any]) -> ScanMemory:
    return ScanMemory(
        r["address"],
        r["dest_scan"],
        SideState(r["source_shape"], r["source_content"]),
        SideState(r["dest_shape"], r["dest_content"]),
    )


class ScanMemoryLookup(Mapping[str, ScanMemory]):
    """A pair's remembered scans, read from the state DB one experiment at a time: looking
    an address up reads its experiment's pairs (the walk asks for each scan of one
    experiment in turn) and keeps only those. Iterating reads them all (kept for
    completeness; the walk only looks addresses up)."""

    def __init__(self, db: PairMemory, pair: PairKey) -> None:
        self.db = db
        self.pair = pair
        self._lock = threading.Lock()
        self._prefix = ""
        self._held: dict[str, ScanMemory] = {}

    def __getitem__(self, address: str) -> ScanMemory:
        experiment = Address.parse(address).up_to(Level.EXPERIMENT)
        if experiment is None:
            found = self.db.remembered_scan(self.pair, address)
        else:
            prefix = f"{experiment}/"
            with self._lock:
                if prefix != self._prefix:
                    self._held = self.db.remembered_scans_under(self.pair, prefix)
                    self._prefix = prefix
                found = self._held.get(address)
        if found is None:
            raise KeyError(address)
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(self.db.remembered_scans(self.pair))

    def __len__(self) -> int:
        return len(self.db.remembered_scans(self.pair))


class PairMemory(StateConnection):
    """Subjects done, mappings, remembered scan pairs and the serial, per pair."""

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
        rows = self._pair_rows(
            pair, "SELECT subject, fingerprint FROM subjects_done WHERE pair_id = ?"
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
        rows = self._pair_rows(
            pair, "SELECT level, address, source_id, dest_id FROM mappings WHERE pair_id = ?"
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
        """Source scan address -> the remembered pair (see ``planner.sameness``), all of
        them: for small projects and tests; a walk uses ``scan_memory`` instead."""
        rows = self._pair_rows(pair, "SELECT * FROM scan_memory WHERE pair_id = ?")
        return {r["address"]: _memory(r) for r in rows}

    def remembered_scans_under(self, pair: PairKey, prefix: str) -> dict[str, ScanMemory]:
        """The remembered pairs whose address starts with ``prefix`` (one experiment's:
        ``"S/E/"``), by a range of the primary key."""
        rows = self._pair_rows(
            pair,
            "SELECT * FROM scan_memory WHERE pair_id = ? AND address >= ? AND address < ?",
            (prefix, prefix + "\U0010ffff"),
        )
        return {r["address"]: _memory(r) for r in rows if r["address"].startswith(prefix)}

    def remembered_scan(self, pair: PairKey, address: str) -> ScanMemory | None:
        rows = self._pair_rows(
            pair, "SELECT * FROM scan_memory WHERE pair_id = ? AND address = ?", (address,)
        )
        return _memory(rows[0]) if rows else None

    def scan_memory(self, pair: PairKey) -> ScanMemoryLookup:
        """The remembered pairs as a mapping that reads one address at a time (the walk
        asks for each scan it compares), instead of loading them all."""
        return ScanMemoryLookup(self, pair)

    def serial(self, pair: PairKey) -> int:
        rows = self._pair_rows(pair, "SELECT serial FROM pairs WHERE id = ?")
        return int(rows[0]["serial"]) if rows else 0
