"""What "the same" means, entity by entity, and the change list it gives.

``ChangeCollector`` is the visitor over ``planner.walk`` that classifies every entity (create,
in sync, differs, destination only, conflict, skipped). The plan builder extends it with
steps; verification calls ``compare_experiment`` on one freshly read experiment. Both
therefore use this one comparison.

Fields compare by ``planner.fields``: subjects, experiments, scans and session assessors
differ when a counted source field is missing or otherwise on the destination.
Resources compare by file path and size, and by MD5 where both servers gave one and
``digests`` is on. The comparison is made for speed first (equal file tuples are the common
case); explanations are built only for what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from planner import fields as F
from planner import walk as W
from planner.address import Address
from planner.inventory import (
    Assessor,
    Experiment,
    Resource,
    Scan,
    Subject,
    content_fingerprint,
    subject_to_dict,
)
from planner.plan import (
    NEW_DATA_TEXT,
    OTHER_FILTERS_TEXT,
    SERIES_UID_DIFFERS_TEXT,
    Change,
    ChangeReason,
    ChangeStatus,
    Level,
)
from planner.sameness import (
    DICOM,
    EXTRA,
    MISSING,
    FileDifference,
    ScanMemory,
    byte_differences,
    dicom_differences,
    remember,
    render,
)
from planner.sameness import files_digest as files_digest  # where callers have found it

NO_DICOM_REASON = "no DICOM to import: the scan is created, its other resources uploaded"
# The DICOM pairs remembered in the state DB, by source scan address (see planner.sameness).
Memory = Mapping[str, ScanMemory]


def subject_fingerprint(subject: Subject) -> str:
    """Content fingerprint of one source subject, as recorded when it completes and compared
    by ``sync_new_only`` to notice new data on the source."""
    return content_fingerprint(subject_to_dict(subject))


def completion_fingerprint(subject: Subject, config: Mapping[str, Any]) -> str:
    """What a completed subject is recorded with: its content and the filters it was copied
    under (``content:filters``), so a later plan can tell new source data from a config that
    now asks for more (or other) data than was copied."""
    scope = {k: config.get(k) for k in ("filtering", "copy_shared")}
    return f"{subject_fingerprint(subject)}:{content_fingerprint(scope)}"


def completion_news(recorded: str, subject: Subject, config: Mapping[str, Any]) -> list[str]:
    """Why a completed subject may deserve another look: empty when nothing changed."""
    if not recorded:
        return []
    content, _, scope = recorded.partition(":")
    now_content, _, now_scope = completion_fingerprint(subject, config).partition(":")
    news = []
    if content != now_content:
        news.append(NEW_DATA_TEXT)
    if scope and scope != now_scope:
        news.append(OTHER_FILTERS_TEXT)
    return news


# -- comparisons -----------------------------------------------------------------------------


def compare_resource(src: Resource, dst: Resource, *, digests: bool) -> tuple[str, ...]:
    """Differences between two non-DICOM resources of the same label, e.g.
    ``file count 10 != 9`` (the rule is ``planner.sameness``)."""
    return render(byte_differences(src, dst, digests=digests))


def dicom_file_differences(
    src: Scan, dst: Scan, *, digests: bool, memory: ScanMemory | None = None
) -> list[FileDifference]:
    """The scans' DICOM compared by ``planner.sameness`` (names and count, and whether either
    side changed since the pair was remembered). Two scans without DICOM have none."""
    s, d = src.resources.get(DICOM), dst.resources.get(DICOM)
    if s is None and d is None:
        return []
    if s is None:
        return [FileDifference(EXTRA, "only on the destination")]
    if d is None:
        return [FileDifference(MISSING, "missing on the destination")]
    return dicom_differences(s, d, digests=digests, memory=memory)


def compare_dicom(
    src: Scan, dst: Scan, *, digests: bool, memory: ScanMemory | None = None
) -> tuple[str, ...]:
    """Differences of the scans' DICOM resources, prefixed ``DICOM:``."""
    diffs = dicom_file_differences(src, dst, digests=digests, memory=memory)
    return tuple(f"{DICOM}: {x}" for x in render(diffs))


def compare_scan(
    src: Scan, dst: Scan, *, digests: bool, memory: ScanMemory | None = None
) -> tuple[str, ...]:
    """Differences of the scan itself and its DICOM (other resources are compared on their
    own). ``series UID differs`` (``series_uid_differs``) means the two cannot be the same
    scan: a conflict."""
    return (*compare_scan_own(src, dst), *compare_dicom(src, dst, digests=digests, memory=memory))


def compare_scan_own(src: Scan, dst: Scan) -> tuple[str, ...]:
    """The scan's identity and fields, without its files."""
    out: list[str] = []
    if series_uid_differs(src, dst):
        out.append(SERIES_UID_DIFFERS_TEXT)
    if src.xsi_type and dst.xsi_type and src.xsi_type != dst.xsi_type:
        out.append(f"xsiType {src.xsi_type} != {dst.xsi_type}")
    if src.type != dst.type and src.type:
        out.append(f"type {src.type} != {dst.type}")
    out.extend(compare_scan_fields(src, dst))
    return tuple(out)


def series_uid_differs(src: Scan, dst: Scan) -> bool:
    """Do the scans of one ID hold different series? Then they cannot be the same scan."""
    return bool(src.uid and dst.uid and src.uid != dst.uid)


def compare_scan_fields(src: Scan, dst: Scan) -> tuple[str, ...]:
    """Scan fields other than the type (see ``planner.fields``) that differ."""
    out: list[str] = []
    if src.series_description and src.series_description != dst.series_description:
        out.append(f"series_description {src.series_description!r} != {dst.series_description!r}")
    if src.quality and src.quality != dst.quality:
        out.append(f"quality {src.quality!r} != {dst.quality!r}")
    out.extend(compare_fields(src.fields, dst.fields))
    return tuple(out)


def scan_fields_differ(src: Scan, dst: Scan) -> bool:
    """Would the experiment's XML document change this scan on the destination?"""
    return bool((src.type and src.type != dst.type) or compare_scan_fields(src, dst))


compare_fields = F.compare_fields


def scan_field_values(scan: Scan) -> dict[str, str]:
    """A scan's fields as the experiment's XML document carries them to the destination (and
    as a plan records them, so the stale check can tell when they changed)."""
    values = {
        "type": scan.type,
        "series_description": scan.series_description,
        "quality": scan.quality,
        **scan.fields,
    }
    return {k: v for k, v in sorted(values.items()) if v}


def compare_experiment_own(src: Experiment, dst: Experiment) -> tuple[str, ...]:
    out: list[str] = []
    if src.date and src.date != dst.date:
        out.append(f"date {src.date} != {dst.date or '(none)'}")
    out.extend(compare_fields(src.fields, dst.fields))
    return tuple(out)


def compare_assessor(src: Assessor, dst: Assessor, *, digests: bool) -> tuple[str, ...]:
    """The assessor's own date and fields; its resources are walked (and judged) on their own."""
    out: list[str] = []
    if src.date and src.date != dst.date:
        out.append(f"date {src.date} != {dst.date or '(none)'}")
    out.extend(compare_fields(src.fields, dst.fields))
    return tuple(out)


# -- sizes -----------------------------------------------------------------------------------


def resources_size(resources: dict[str, Resource]) -> tuple[int, int]:
    files = nbytes = 0
    for r in resources.values():
        files += len(r.files)
        nbytes += r.total_bytes
    return files, nbytes


def entity_size(entity: Any) -> tuple[int, int]:
    """(files, bytes) held by an entity and everything under it."""
    if isinstance(entity, Resource):
        return entity.file_count, entity.total_bytes
    files, nbytes = resources_size(getattr(entity, "resources", {}))
    for child in getattr(entity, "scans", {}).values():
        f, b = entity_size(child)
        files, nbytes = files + f, nbytes + b
    experiments = getattr(entity, "experiments", {})
    if hasattr(experiments, "size"):  # on disk: from the store's index, reading none
        f, b = experiments.size()
        return files + f, nbytes + b
    for child in experiments.values():
        f, b = entity_size(child)
        files, nbytes = files + f, nbytes + b
    return files, nbytes


def dicom_size(scan: Scan) -> tuple[int, int]:
    r = scan.resources.get(DICOM)
    return (r.file_count, r.total_bytes) if r is not None else (0, 0)


# -- the visitor -----------------------------------------------------------------------------


_NEEDS_WORK = (ChangeStatus.CREATE, ChangeStatus.DIFFERS, ChangeStatus.CONFLICT)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass
class _Frame:
    """A matched experiment whose verdict waits for its children."""

    index: int
    own: tuple[str, ...]
    counts: dict[tuple[Level, ChangeStatus], int] = field(default_factory=dict)


def is_scan_dicom(at: Address) -> bool:
    """The DICOM resource of a scan is judged with its scan, not on its own."""
    return at.scan is not None and at.resource == DICOM


@dataclass(frozen=True)
class Recorded:
    """What the collector recorded for one matched entity, handed back to its subclasses so
    they need not read the change list: the change, and a scan's DICOM differences (which
    decide an import, while the scan's own fields are settled by its experiment)."""

    change: Change
    dicom: tuple[str, ...] = ()


class ChangeCollector:
    """Classifies every entity the walk visits into ``changes`` (in walk order).

    ``memory`` holds the DICOM of scan pairs remembered in the state DB, by source scan
    address: a remembered pair whose files changed on either side since differs although
    its names agree. Besides the changes, the collector keeps what verification and the
    state DB need: the kinds of file difference per address (``kinds``), the scan pairs
    whose DICOM it found equal (``equal_scans``), and whether some compared files had no
    MD5 (``digests_incomplete``).
    """

    def __init__(
        self,
        *,
        digests: bool,
        memory: Memory | None = None,
        on_equal_scan: Callable[[ScanMemory], None] | None = None,
    ) -> None:
        self.digests = digests
        self.memory: Memory = memory or {}
        self.changes: list[Change] = []
        self.kinds: dict[str, frozenset[str]] = {}
        self.equal_scans: list[ScanMemory] = []
        # Where equal scan pairs go: kept in ``equal_scans`` unless a caller takes them as
        # they are found (a project's worth of them is no small list).
        self._equal = on_equal_scan or self.equal_scans.append
        self.digests_incomplete = False
        self._frames: list[_Frame] = []

    # recording ---------------------------------------------------------------------------

    def record(self, change: Change) -> None:
        self.changes.append(change)
        if self._frames and change.level != Level.EXPERIMENT:
            counts = self._frames[-1].counts
            key = (change.level, change.status)
            counts[key] = counts.get(key, 0) + 1

    def _change(
        self,
        at: Address,
        status: ChangeStatus,
        entity: Any,
        differences: tuple[str, ...] = (),
        reason: str = "",
        *,
        why: ChangeReason = ChangeReason.NONE,
    ) -> Change:
        if at.level == Level.SCAN and isinstance(entity, Scan):
            files, nbytes = dicom_size(entity)
        else:
            files, nbytes = entity_size(entity) if entity is not None else (0, 0)
        change = Change(str(at), at.level, status, differences, reason, nbytes, files, why)
        self.record(change)
        return change

    # visitor -----------------------------------------------------------------------------

    def src_only(self, at: Address, src: Any) -> bool:
        if is_scan_dicom(at):
            return False
        reason = ""
        if at.level == Level.SCAN and DICOM not in src.resources:
            # Nothing to import (a derived scan, or its DICOM filtered out): the scan is
            # created as it is, and its other resources are transferred into it.
            reason = NO_DICOM_REASON
        why = ChangeReason.NO_DICOM if reason else ChangeReason.NONE
        self._change(at, ChangeStatus.CREATE, src, (), reason, why=why)
        return True

    def dst_only(self, at: Address, dst: Any) -> bool:
        if is_scan_dicom(at):
            return False
        self._change(at, ChangeStatus.DEST_ONLY, dst, (), "only on the destination (kept)")
        return False

    def match(self, at: Address, src: Any, dst: Any) -> Recorded | None:
        """Judge a pair; None for a scan's DICOM, which its scan was judged with. A matched
        experiment is recorded in sync until ``leave`` settles it by its children."""
        if is_scan_dicom(at):
            return None
        level = at.level
        if level == Level.EXPERIMENT:
            own = compare_experiment_own(src, dst)
            change = self._change(at, ChangeStatus.IN_SYNC, src)  # settled on leave
            self._frames.append(_Frame(len(self.changes) - 1, own))
            return Recorded(change)
        if level == Level.SCAN:
            dicom = self._dicom_differences(str(at), src, dst)
            diffs = (*compare_scan_own(src, dst), *dicom)
        else:
            dicom = ()
            diffs = self.differences(level, src, dst, str(at))
        status = ChangeStatus.DIFFERS if diffs else ChangeStatus.IN_SYNC
        why = ChangeReason.NONE
        if level == Level.SCAN and series_uid_differs(src, dst):
            status, why = ChangeStatus.CONFLICT, ChangeReason.SERIES_UID_DIFFERS
        return Recorded(self._change(at, status, src, diffs, why=why), dicom)

    def conflict(self, at: Address, src: Any, dst: Any, why: ChangeReason, text: str) -> Change:
        return self._change(at, ChangeStatus.CONFLICT, src, (text,), text, why=why)

    def leave(self, at: Address, src: Any, dst: Any) -> None:
        if at.level != Level.EXPERIMENT or src is None or dst is None:
            return
        frame = self._frames.pop()
        old = self.changes[frame.index]
        diffs = list(frame.own)
        notes: list[str] = []
        names = {
            Level.SCAN: "scan",
            Level.RESOURCE: "resource",
            Level.ASSESSOR: "assessor",
        }
        for (lvl, status), n in sorted(frame.counts.items()):
            word = _plural(n, names.get(lvl, str(lvl)))
            if status == ChangeStatus.CREATE:
                diffs.append(f"{word} missing on the destination")
            elif status == ChangeStatus.DIFFERS:
                diffs.append(f"{word} {'differs' if n == 1 else 'differ'}")
            elif status == ChangeStatus.CONFLICT:
                diffs.append(f"{word} in conflict")
            elif status == ChangeStatus.DEST_ONLY:
                notes.append(f"{word} only on the destination")
        status = ChangeStatus.DIFFERS if diffs else ChangeStatus.IN_SYNC
        self.changes[frame.index] = Change(
            old.address, old.level, status, tuple(diffs), "; ".join(notes), old.bytes, old.files
        )

    # comparisons by level ----------------------------------------------------------------

    def differences(self, level: Level, src: Any, dst: Any, address: str = "") -> tuple[str, ...]:
        if level == Level.RESOURCE:
            found = byte_differences(src, dst, digests=self.digests)
            self._note(address, found, src, dst)
            return render(found)
        if level == Level.SCAN:
            return (*compare_scan_own(src, dst), *self._dicom_differences(address, src, dst))
        if level == Level.SUBJECT:
            return compare_fields(src.fields, dst.fields)
        if level == Level.ASSESSOR:
            return compare_assessor(src, dst, digests=self.digests)
        return ()

    def _dicom_differences(self, address: str, src: Scan, dst: Scan) -> tuple[str, ...]:
        """The scans' DICOM differences, prefixed ``DICOM:``; notes what verification and the
        state DB need of them."""
        remembered = self.memory.get(address)
        if remembered is not None and remembered.dest_scan != dst.id:
            remembered = None  # remembered with another destination scan: not this pair
        found = dicom_file_differences(src, dst, digests=self.digests, memory=remembered)
        s, d = src.resources.get(DICOM), dst.resources.get(DICOM)
        self._note(address, found, s, d)
        if not found and s is not None and d is not None:
            self._equal(remember(address, dst.id, s, d))
        return tuple(f"{DICOM}: {x}" for x in render(found))

    def _note(self, address: str, found: list[FileDifference], src: Any, dst: Any) -> None:
        if found:
            self.kinds[address] = frozenset(d.kind for d in found)
        for r in (src, dst):
            if r is not None and any(not f.digest for f in r.files):
                self.digests_incomplete = True


def collect_experiment(
    src: Experiment, dst: Experiment | None, *, digests: bool, memory: Memory | None = None
) -> ChangeCollector:
    """Walk one experiment with a fresh collector (verification's view of it)."""
    collector = ChangeCollector(digests=digests, memory=memory)
    W.walk_experiment(src.subject_label, src, dst, collector)
    return collector


def compare_experiment(
    src: Experiment, dst: Experiment | None, *, digests: bool, memory: Memory | None = None
) -> list[Change]:
    """One change per entity under the experiment (itself first), by the walk's pairing."""
    return collect_experiment(src, dst, digests=digests, memory=memory).changes
