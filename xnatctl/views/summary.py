"""A plan, or a byte count, in one line of text for people.

The planner keeps only data (``planner.plan.Summary`` and the changes); the words are here,
next to the other views.
"""

from __future__ import annotations

from planner.diff import skipped_as_completed, skipped_with_new_data
from planner.plan import Plan


def human_bytes(n: int) -> str:
    """Decimal units, one decimal place: ``18.2 GB``."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def summary_line(plan: Plan) -> str:
    """The plan's counts in one sentence: what will be transferred, and what is not."""
    s = plan.summary
    tail = (
        f"{_n(s.experiments_in_sync, 'experiment')} in sync; {s.differs} differ"
        f"{'s' if s.differs == 1 else ''}; {s.dest_only} only on the destination; "
        f"{_n(s.conflicts, 'conflict')}"
    )
    if s.skipped:
        tail += f"; {s.skipped} skipped"
    stale_skips = skipped_with_new_data(plan)
    completed = skipped_as_completed(plan)
    if stale_skips:
        tail += (
            f" ({_n(stale_skips, 'subject')} completed earlier with new data on the source "
            "or under other filters: "
            "set sync_new_only: false to compare them)"
        )
    elif completed:
        # Skipped subjects were not compared: never call the servers in sync for them.
        tail += (
            f" ({_n(completed, 'subject')} completed by an earlier run, not compared with "
            "the destination: set sync_new_only: false to compare them)"
        )
    if not s.has_changes:
        if not (s.differs or s.dest_only or s.conflicts or completed):
            return "No changes: destination matches the source."
        return f"No changes to make: {tail}."
    scans = _n(s.scans_to_transfer + s.scans_to_create, "scan")
    if s.scans_to_create:
        scans += f" ({s.scans_to_create} without DICOM)"
    parts = [
        _n(s.subjects_to_create, "subject"),
        _n(s.experiments_to_create, "experiment"),
        scans,
    ]
    if s.resources_to_upload:
        parts.append(_n(s.resources_to_upload, "resource"))
    if s.assessors_to_create:
        parts.append(_n(s.assessors_to_create, "assessor"))
    updates = s.subjects_to_update + s.experiments_to_update
    if updates:
        parts.append(f"{updates} field update{'' if updates == 1 else 's'}")
    size = human_bytes(s.bytes_to_transfer)
    return f"Plan: {', '.join(parts)} to transfer ({size}); {tail}."
