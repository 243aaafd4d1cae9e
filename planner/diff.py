"""Make a plan: filter both inventories, walk them, classify every entity, emit steps.

The classification is ``planner.compare``'s; this module adds only the steps and what decides
them (filters, the state DB's completed subjects under ``sync_new_only``). Everything is a
pure function of its inputs: the same inventories, config and state give the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from planner import address as A
from planner import walk as W
from planner.address import Address
from planner.compare import (
    DICOM,
    ChangeCollector,
    Memory,
    Recorded,
    compare_assessor,
    compare_experiment_own,
    completion_news,
    entity_size,
    is_scan_dicom,
    scan_fields_differ,
)
from planner.config import TransferConfig
from planner.filters import in_scope
from planner.inventory import (
    Inventory,
    Subject,
)
from planner.invstore import LazyMapping, is_lazy
from planner.plan import (
    COMPLETED_TEXT,
    Change,
    ChangeReason,
    ChangeStatus,
    Endpoint,
    Level,
    Plan,
    Step,
    Summary,
)
from planner.planfile import group_key
from planner.plansink import GroupedWriter, MemorySink, PlanSink, SpoolSink
from planner.sameness import ScanMemory
from planner.stepmaker import ExperimentWork, StepMaker, dest_state

__all__ = [
    "DiffResult",
    "PlanBuilder",
    "dest_state",
    "diff_inventories",
    "make_plan",
    "skipped_as_completed",
    "skipped_with_new_data",
]


class PlanBuilder(ChangeCollector):
    """The change collector plus the steps that would make the destination match: this
    class decides which steps the walk needs; ``planner.stepmaker`` makes them."""

    def __init__(
        self, src: Inventory, dst: Inventory, *, digests: bool, memory: Memory | None = None,
        on_equal_scan: Callable[[ScanMemory], None] | None = None,
        on_group: Callable[[list[Change], list[Step]], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(digests=digests, memory=memory, on_equal_scan=on_equal_scan)
        self.make = StepMaker(dst.project)
        # Where a finished group's records go (a subject's own, or one experiment's): handed
        # on when the walk records the first change of the next group, so only one group is
        # held. Without it, everything is kept in ``changes`` and ``steps``.
        self.on_group = on_group
        self._group: tuple[str, str] | None = None

    @property
    def steps(self) -> list[Step]:
        return self.make.steps

    def record(self, change: Change) -> None:
        key = group_key(change.address)
        if key != self._group and not self._frames:  # no experiment is being settled
            self.flush()
            self._group = key
        super().record(change)

    def flush(self) -> None:
        """Hand the records held so far on (``on_group``) and forget them."""
        if self.on_group is None or not (self.changes or self.make.steps):
            return
        changes, steps = self.changes, self.make.steps
        self.changes, self.make.steps = [], []
        self.on_group(changes, steps)

    def src_only(self, at: Address, src: Any) -> bool:
        descend = super().src_only(at, src)
        if not descend:
            return False
        make, level = self.make, at.level
        if level == Level.SUBJECT:
            make.create_subject(at, src)
        elif level == Level.EXPERIMENT:
            make.exp = (src, None, make.create_experiment(at, src))
            make.work = ExperimentWork(new=True)
        elif level == Level.SCAN:
            if DICOM in src.resources:
                step = make.import_scan(at, src, None, "scan missing on the destination")
                make.work.add_scan(src, step)
            else:
                step = make.create_scan(at, src)
                make.work.add_scan(src, created=step)
            make.scan = (src, None, step)
        elif level == Level.ASSESSOR:
            step = make.create_assessor(at, src)
            make.assessor = (src, None, step)
            make.update_assessor(at, src, None, step, "assessor fields, after its creation")
        elif level == Level.RESOURCE:
            make.upload_resource(at, src, False, "resource missing on the destination")
        return True

    def match(self, at: Address, src: Any, dst: Any) -> Recorded | None:
        recorded = super().match(at, src, dst)
        make, level = self.make, at.level
        if level == Level.SUBJECT:
            assert recorded is not None
            make.subject_step = ""
            if recorded.change.status == ChangeStatus.DIFFERS:
                make.update_subject(at, src, dst, "; ".join(recorded.change.differences))
        elif level == Level.EXPERIMENT:
            make.exp = (src, dst, "")
            make.work = ExperimentWork(own=compare_experiment_own(src, dst))
        elif level == Level.SCAN:
            assert recorded is not None
            step = ""
            in_conflict = recorded.change.status == ChangeStatus.CONFLICT
            if recorded.dicom and DICOM in src.resources and not in_conflict:
                step = make.import_scan(at, src, dst, "; ".join(recorded.dicom))
            make.scan = (src, dst, step)
            if not in_conflict:
                make.work.add_scan(src, step, fields_differ=scan_fields_differ(src, dst))
        elif level == Level.ASSESSOR:
            make.assessor = (src, dst, "")
            diffs = compare_assessor(src, dst, digests=self.digests)
            if diffs:
                make.update_assessor(at, src, dst, "", "; ".join(diffs))
        elif level == Level.RESOURCE and not is_scan_dicom(at):
            assert recorded is not None
            if recorded.change.status == ChangeStatus.DIFFERS:
                make.upload_resource(at, src, True, "; ".join(recorded.change.differences))
        return recorded

    def leave(self, at: Address, src: Any, dst: Any) -> None:
        super().leave(at, src, dst)
        if at.level != Level.EXPERIMENT or src is None:
            return
        why = self.make.work.why()
        if why:
            self.make.update_experiment(at, src, why)


# -- filters and state -----------------------------------------------------------------------


def _without_subjects(inv: Inventory, labels: set[str]) -> Inventory:
    if not labels:
        return inv
    if is_lazy(inv.subjects):  # on disk: narrowed without reading a subject
        subjects = inv.subjects
        kept = [k for k in subjects if W.label_key(k) not in labels]
        return replace(inv, subjects=LazyMapping(kept, subjects.get))
    keep = {k: v for k, v in inv.subjects.items() if W.label_key(k) not in labels}
    return replace(inv, subjects=keep)


def _completed_skips(
    raw_src: Inventory,
    src: Inventory,
    dst: Inventory,
    completed: Mapping[str, str],
    config: Mapping[str, Any],
) -> tuple[set[str], list[Change]]:
    """Subjects an earlier run completed: skipped, noting new source data or new filters.

    A completed subject the destination no longer holds whole (missing, or lacking an
    experiment, scan, assessor or resource the unchanged source has) is not skipped: its
    record is no longer true, so it is compared, and repaired, like any other subject.
    """
    labels: set[str] = set()
    changes: list[Change] = []
    dst_keys = {W.label_key(k): k for k in dst.subjects}
    for label in sorted(src.subjects):
        if label not in completed:
            continue
        raw = raw_src.subjects.get(label, src.subjects[label])
        reason = COMPLETED_TEXT
        news = completion_news(completed[label], raw, config)
        there_key = dst_keys.get(W.label_key(label))
        there = dst.subjects[there_key] if there_key is not None else None
        if there is None or (not news and _lacks(src.subjects[label], there)):
            continue
        if news:
            reason += "; " + " and ".join(news)
        files, nbytes = entity_size(src.subjects[label])
        labels.add(W.label_key(label))
        changes.append(
            Change(
                str(A.subject(label)),
                Level.SUBJECT,
                ChangeStatus.SKIPPED,
                (),
                reason,
                nbytes,
                files,
                ChangeReason.COMPLETED_STALE if news else ChangeReason.COMPLETED,
            )
        )
    return labels, changes


def _lacks(src: Subject, dst: Subject) -> bool:
    """Does the destination subject lack anything of the (filtered) source subject, by label
    and scan pairing? Only presence counts: files are what a full comparison is for."""

    def missing(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        return bool({W.label_key(k) for k in a} - {W.label_key(k) for k in b})

    if missing(src.resources, dst.resources) or missing(src.experiments, dst.experiments):
        return True
    dst_keys = {W.label_key(k): k for k in dst.experiments}
    for label in src.experiments:
        se, de = src.experiments[label], dst.experiments[dst_keys[W.label_key(label)]]
        if missing(se.resources, de.resources) or missing(se.assessors, de.assessors):
            return True
        for la, sa in se.assessors.items():
            da = next(v for k, v in de.assessors.items() if W.label_key(k) == W.label_key(la))
            if missing(sa.resources, da.resources):
                return True
        pairs, _conflicts, src_only, _dst_only = W.pair_scans(se.scans, de.scans)
        if src_only or any(missing(ss.resources, ds.resources) for ss, ds in pairs):
            return True
    return False


# -- the plan --------------------------------------------------------------------------------


def _after_completion(steps: list[Step], completed: Mapping[str, str], serial: int) -> list[Step]:
    """Steps of a subject an earlier run completed carry the state serial they were planned
    at. Such a step was done before, and the destination has lost (or never kept) its work
    since: it must run again, not be skipped as "already done" by the state DB, while a
    resumed run of this same plan still skips what it has done."""
    if not completed:
        return steps
    keys = {W.label_key(k) for k in completed}
    out = []
    for step in steps:
        subject = Address.parse(step.address).subject
        if subject is not None and W.label_key(subject) in keys:
            step = replace(step, completed_before=serial)
        out.append(step)
    return out


@dataclass(frozen=True)
class DiffResult:
    """A plan, and the scan pairs whose DICOM the walk found equal (for the state DB)."""

    plan: Plan
    equal_scans: tuple[ScanMemory, ...] = ()


def make_plan(src: Inventory, dst: Inventory, config: TransferConfig, **options: Any) -> Plan:
    """The plan alone: ``diff_inventories`` (whose keyword arguments these are) without the
    scan pairs it found equal, which are not even collected."""
    return diff_inventories(src, dst, config, on_equal_scan=lambda _: None, **options).plan


def diff_inventories(
    src: Inventory,
    dst: Inventory,
    config: TransferConfig,
    *,
    completed_subjects: Mapping[str, str],
    state_serial: int,
    source_profile: str = "",
    dest_profile: str = "",
    created_at: str,
    tool_version: str,
    memory: Memory | None = None,
    on_equal_scan: Callable[[ScanMemory], None] | None = None,
    spool_dir: Path | str | None = None,
) -> DiffResult:
    """``make_plan``, also returning the scan pairs found equal. ``memory`` holds the scan
    pairs the state DB remembers (``StateDB.remembered_scans``); ``on_equal_scan`` takes
    each pair found equal as it is found, instead of the result's ``equal_scans``.

    The walk hands its records on one subject or experiment at a time, in file order. With
    ``spool_dir`` they are written to a plan file there as they come (``SpoolSink``) and
    the plan's steps and changes are views over it; without, they are kept in memory.
    """
    scope = in_scope(src, dst, config.filtering, copy_shared=config.copy_shared)
    f_src, f_dst = scope.source, scope.dest
    assert f_dst is not None
    skips: list[Change] = [
        Change(str(addr), Level(level), ChangeStatus.SKIPPED, (), str(text), why=why)
        for why, found in (
            (ChangeReason.FILTERED, scope.filtered),
            (ChangeReason.SHARED, scope.shared),
        )
        for addr, level, text in found
    ]
    if config.sync_new_only and completed_subjects:
        config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
        labels, done = _completed_skips(src, f_src, f_dst, completed_subjects, config_dict)
        f_src = _without_subjects(f_src, labels)
        f_dst = _without_subjects(f_dst, labels)
        skips.extend(done)

    plan = Plan(
        source=_endpoint(src, source_profile),
        dest=_endpoint(dst, dest_profile),
        steps=(),
        changes=(),
        summary=Summary(),
        config=config.to_dict(),
        config_hash=config.config_hash(),
        state_serial=state_serial,
        created_at=created_at,
        tool_version=tool_version,
    )
    sink: PlanSink = MemorySink(plan) if spool_dir is None else SpoolSink(plan, Path(spool_dir))
    with sink:
        out = GroupedWriter(sink, skips)
        builder = PlanBuilder(
            f_src, f_dst, digests=src.digests and dst.digests, memory=memory,
            on_equal_scan=on_equal_scan,
            on_group=lambda changes, steps: out.group(
                changes, _after_completion(steps, completed_subjects, state_serial)
            ),
        )  # fmt: skip
        # Conflicts are found against the whole destination: a label a completed (left out)
        # subject holds would otherwise be written into by the plan's PUTs.
        W.walk(f_src, f_dst, builder, homes=dst)
        builder.flush()
        out.finish()
    return DiffResult(sink.plan(), tuple(builder.equal_scans))


def _endpoint(inv: Inventory, profile: str) -> Endpoint:
    return Endpoint(
        url=inv.server_url,
        project=inv.project,
        profile=profile,
        server_version=inv.server_version,
        inventory_fingerprint=inv.fingerprint(),
    )


# -- skipped subjects, counted for the summary line (``xnatctl.views.summary``) -------------


def skipped_as_completed(plan: Plan) -> int:
    """Subjects skipped by ``sync_new_only``: not compared with the destination."""
    if not plan.summary.skipped:
        return 0  # no pass over the plan's changes
    return sum(
        1
        for c in plan.changes
        if c.status == ChangeStatus.SKIPPED
        and c.level == Level.SUBJECT
        and c.why in (ChangeReason.COMPLETED, ChangeReason.COMPLETED_STALE)
    )


def skipped_with_new_data(plan: Plan) -> int:
    """Subjects skipped by ``sync_new_only`` although the source changed since."""
    if not plan.summary.skipped:
        return 0
    return sum(
        1
        for c in plan.changes
        if c.status == ChangeStatus.SKIPPED
        and c.level == Level.SUBJECT
        and c.why == ChangeReason.COMPLETED_STALE
    )
