"""Drift: do two servers still agree? The plan's own comparison, strictly read-only.

Drift is the same filtered walk and the same ``ChangeCollector`` the plan is made from, so a
drift check and a plan can never disagree about what matches. It only reads inventories;
it never writes to a server, and it records nothing in the state DB. It does read the scan
pairs the state DB remembers (``memory``, local and read-only): a scan's DICOM is compared by
names because the destination rewrites headers, and only what was remembered shows a file
re-sent with other content on either side since.

Inventories read from disk (``planner.invstore``) are walked one experiment pair at a time,
so a drift check's memory depends on the largest experiment, not on the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from planner import walk as W
from planner.compare import ChangeCollector, Memory
from planner.config import Filtering
from planner.filters import in_scope
from planner.inventory import Inventory
from planner.plan import Change, ChangeStatus

DRIFT_SCHEMA = "xnatctl.drift/1"

MISSING = "missing"
DEST_ONLY = "dest_only"
DIFFERS = "differs"
CONFLICT = "conflict"
IN_SYNC = "in_sync"
NOT_COMPARED = "not_compared"

# How the plan's classes read in a drift report; "skipped" here is data shared in from
# another project (without copy_shared), which a drift report lists as not compared.
_CLASS_OF = {
    ChangeStatus.CREATE: MISSING,
    ChangeStatus.DEST_ONLY: DEST_ONLY,
    ChangeStatus.DIFFERS: DIFFERS,
    ChangeStatus.CONFLICT: CONFLICT,
    ChangeStatus.IN_SYNC: IN_SYNC,
    ChangeStatus.SKIPPED: NOT_COMPARED,
}
DRIFT_CLASSES = (MISSING, DEST_ONLY, DIFFERS, CONFLICT)
ALL_CLASSES = (*DRIFT_CLASSES, IN_SYNC, NOT_COMPARED)


@dataclass(frozen=True)
class DriftEntry:
    address: str
    level: str
    drift_class: str
    differences: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class DriftReport:
    source_url: str
    source_project: str
    dest_url: str
    dest_project: str
    checksums: bool
    checksums_note: str
    entries: tuple[DriftEntry, ...]
    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0

    @property
    def in_sync(self) -> bool:
        return not any(self.counts.get(c, 0) for c in DRIFT_CLASSES)

    def to_dict(self, *, include_in_sync: bool = False) -> dict[str, Any]:
        """The documented, stable JSON shape (``docs/drift.md``)."""
        return {
            "schema": DRIFT_SCHEMA,
            "in_sync": self.in_sync,
            "source": {"url": self.source_url, "project": self.source_project},
            "destination": {"url": self.dest_url, "project": self.dest_project},
            "checksums": self.checksums,
            "checksums_note": self.checksums_note,
            "counts": {c: self.counts.get(c, 0) for c in ALL_CLASSES},
            "entries": [
                {
                    "address": e.address,
                    "level": e.level,
                    "class": e.drift_class,
                    "differences": list(e.differences),
                    "note": e.note,
                }
                for e in self.entries
                if include_in_sync or e.drift_class != IN_SYNC
            ],
        }


def _entry(change: Change) -> DriftEntry:
    return DriftEntry(
        address=change.address,
        level=str(change.level),
        drift_class=_CLASS_OF[change.status],
        differences=change.differences,
        note=change.reason,
    )


def check_drift(
    src: Inventory,
    dst: Inventory,
    filtering: Filtering,
    *,
    checksums: bool | None = None,
    copy_shared: bool = False,
    memory: Memory | None = None,
) -> DriftReport:
    """Compare two inventories under the transfer filters.

    ``checksums`` None means "digests when both servers give them"; True asks for them (and
    the report says when a server does not give them); False compares sizes and counts only.
    ``memory``: the scan pairs the state DB remembers (``StateDB.remembered_scans``).
    """
    both_have_digests = src.digests and dst.digests
    if checksums is False:
        use_digests, note = False, "digests not compared (--no-checksums)"
    elif both_have_digests:
        use_digests, note = True, ""
    else:
        missing = [side for side, inv in (("source", src), ("destination", dst)) if not inv.digests]
        use_digests = False
        note = f"the {' and '.join(missing)} gave no MD5 digests: compared sizes and counts only"

    # Drift records nothing, so the scan pairs found equal are not kept either.
    collector = ChangeCollector(digests=use_digests, memory=memory, on_equal_scan=lambda _: None)
    scope = in_scope(src, dst, filtering, copy_shared=copy_shared)
    assert scope.dest is not None
    W.walk(scope.source, scope.dest, collector)
    not_compared = [
        DriftEntry(address, str(level), NOT_COMPARED, (), reason)
        for address, level, reason in scope.shared
    ]
    entries = tuple(
        sorted([*(_entry(c) for c in collector.changes), *not_compared], key=lambda e: e.address)
    )
    counts = dict.fromkeys(ALL_CLASSES, 0)
    for e in entries:
        counts[e.drift_class] += 1
    return DriftReport(
        source_url=src.server_url,
        source_project=src.project,
        dest_url=dst.server_url,
        dest_project=dst.project,
        checksums=use_digests,
        checksums_note=note,
        entries=entries,
        counts=counts,
        requests=src.requests + dst.requests,
    )
