"""Make a plan: filter both inventories, walk them, classify every entity, emit steps.

The classification is ``planner.compare``'s; this module adds only the steps and what decides
them (filters, the state DB's completed subjects under ``sync_new_only``). Everything is a
pure function of its inputs: the same inventories, config and state give the same plan.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from planner import address as A
from planner import walk as W
from planner.address import Address
from planner.backend import quote_segment
from planner.compare import (
    DICOM,
    ChangeCollector,
    Memory,
    Recorded,
    compare_assessor,
    compare_experiment_own,
    completion_news,
    dicom_size,
    entity_size,
    files_digest,
    is_scan_dicom,
    scan_field_values,
    scan_fields_differ,
)
from planner.config import TransferConfig
from planner.filters import in_scope
from planner.inventory import (
    Assessor,
    Experiment,
    Inventory,
    Resource,
    Scan,
    Subject,
    assessor_to_dict,
    content_fingerprint,
    experiment_to_dict,
    subject_to_dict,
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
    StepKind,
    summarize,
)
from planner.sameness import ScanMemory, names_digest


class PlanBuilder(ChangeCollector):
    """The change collector plus the steps that would make the destination match."""

    def __init__(
        self, src: Inventory, dst: Inventory, *, digests: bool, memory: Memory | None = None,
        on_equal_scan: Callable[[ScanMemory], None] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(digests=digests, memory=memory, on_equal_scan=on_equal_scan)
        self.src_project = src.project
        self.dst_project = dst.project
        self.steps: list[Step] = []
        self._subject_step = ""  # create_subject step of the subject being walked
        self._exp: tuple[Experiment | None, Experiment | None, str] = (None, None, "")
        self._scan: tuple[Scan | None, Scan | None, str] = (None, None, "")
        self._assessor: tuple[Assessor | None, Assessor | None, str] = (None, None, "")
        self._exp_work = _ExperimentWork()

    # steps -------------------------------------------------------------------------------

    def _add(
        self,
        kind: StepKind,
        at: Address,
        facts: dict[str, Any],
        target: dict[str, Any],
        depends: tuple[str, ...],
        reason: str,
    ) -> str:
        sid = A.step_id(kind.value, at)
        deps = tuple(d for d in depends if d)
        self.steps.append(Step(sid, kind, str(at), at.level, facts, target, deps, reason))
        return sid

    def _subject_target(self, at: Address) -> dict[str, Any]:
        return {"project": self.dst_project, "subject": at.subject}

    def _update_subject(self, at: Address, s: Subject, d: Subject, why: str) -> str:
        return self._add(
            StepKind.UPDATE_SUBJECT,
            at,
            {
                "source_id": s.id,
                "fields": dict(sorted(s.fields.items())),
                "dest_state": dest_state(subject_to_dict(d)),
            },
            self._subject_target(at),
            (),
            why,
        )

    def _update_experiment(self, at: Address, e: Experiment, why: str) -> str:
        """The experiment's XML document, after its creation and all its scan imports."""
        exp_dst = self._exp[1]
        work = self._exp_work
        target = self._subject_target(at) | {
            "experiment": exp_dst.label if exp_dst is not None else e.label
        }
        return self._add(
            StepKind.UPDATE_EXPERIMENT,
            at,
            {
                "owner_level": "experiment",
                "source_id": e.id,
                "source_path": f"/data/experiments/{quote_segment(e.id)}",
                "xsi_type": e.xsi_type,
                "date": e.date,
                "fields": dict(sorted(e.fields.items())),
                "scans": sorted(work.scans),
                "scan_fields": {k: v for k, v in sorted(work.scan_fields.items())},
                "dest_state": dest_state(experiment_to_dict(exp_dst) if exp_dst else None),
            },
            target,
            (self._exp[2], *work.imports, *work.creates),
            why,
        )

    def _assessor_target(self, at: Address, a: Assessor) -> dict[str, Any]:
        """Where an assessor goes: under the destination's label of its session."""
        exp_src, exp_dst, _ = self._exp
        assert exp_src is not None
        return self._subject_target(at) | {
            "experiment": exp_dst.label if exp_dst is not None else exp_src.label,
            "assessor": a.label,
        }

    def _create_assessor(self, at: Address, a: Assessor) -> str:
        exp_step = self._exp[2]
        target = self._assessor_target(at, a)
        return self._add(
            StepKind.CREATE_ASSESSOR,
            at,
            {"source_id": a.id, "xsi_type": a.xsi_type, "date": a.date},
            target,
            (exp_step,),
            "assessor missing on the destination",
        )

    def _update_assessor(
        self, at: Address, a: Assessor, d: Assessor | None, depends: str, why: str
    ) -> str:
        exp_src = self._exp[0]
        assert exp_src is not None
        target = self._assessor_target(at, a)
        return self._add(
            StepKind.UPDATE_EXPERIMENT,
            at,
            {
                "owner_level": "assessor",
                "source_id": a.id,
                "source_path": f"{_experiment_path(exp_src)}/assessors/{quote_segment(a.id)}",
                "xsi_type": a.xsi_type,
                "date": a.date,
                "fields": dict(sorted(a.fields.items())),
                "dest_state": dest_state(assessor_to_dict(d) if d else None),
            },
            target,
            (depends,),
            why,
        )

    def _create_subject(self, at: Address, s: Subject) -> str:
        return self._add(
            StepKind.CREATE_SUBJECT,
            at,
            {"source_id": s.id, "fields": dict(sorted(s.fields.items()))},
            self._subject_target(at),
            (),
            "subject missing on the destination",
        )

    def _create_experiment(self, at: Address, e: Experiment) -> str:
        target = self._subject_target(at) | {"experiment": e.label}
        return self._add(
            StepKind.CREATE_EXPERIMENT,
            at,
            {
                "source_id": e.id,
                "xsi_type": e.xsi_type,
                "date": e.date,
                "fields": dict(sorted(e.fields.items())),
            },
            target,
            (self._subject_step,),
            "experiment missing on the destination",
        )

    def _import_scan(self, at: Address, s: Scan, d: Scan | None, why: str) -> str:
        exp_src, exp_dst, exp_step = self._exp
        assert exp_src is not None
        dicom = s.resources[DICOM]
        files, nbytes = dicom_size(s)
        target = self._subject_target(at) | {
            "experiment": exp_dst.label if exp_dst is not None else exp_src.label,
            "scan": d.id if d is not None else s.id,
        }
        return self._add(
            StepKind.IMPORT_SCAN,
            at,
            {
                "source_experiment_id": exp_src.id,
                "scan_id": s.id,
                "xsi_type": s.xsi_type,
                "type": s.type,
                "uid": s.uid,
                "file_count": files,
                "bytes": nbytes,
                "files_digest": files_digest(dicom),
                "names_digest": names_digest(dicom),
                "resource": DICOM,
                "repair": d is not None,
            },
            target,
            (exp_step,),
            why,
        )

    def _create_scan(self, at: Address, s: Scan) -> str:
        """A scan no DICOM import will create: PUT it, so its other resources have a home.

        It keeps the source scan ID on the destination (there is no SeriesNumber to number
        it by); its other fields follow with the experiment's XML document.
        """
        exp_src, exp_dst, exp_step = self._exp
        assert exp_src is not None
        target = self._subject_target(at) | {
            "experiment": exp_dst.label if exp_dst is not None else exp_src.label,
            "scan": s.id,
        }
        return self._add(
            StepKind.CREATE_SCAN,
            at,
            {
                "source_experiment_id": exp_src.id,
                "scan_id": s.id,
                "xsi_type": s.xsi_type,
                "type": s.type,
                "series_description": s.series_description,
            },
            target,
            (exp_step,),
            "scan missing on the destination, without DICOM to import",
        )

    def _upload_resource(self, at: Address, r: Resource, repair: bool, why: str) -> str:
        sp = f"/data/projects/{quote_segment(self.src_project)}"
        extra: dict[str, str] = {}
        target: dict[str, Any] = {"project": self.dst_project}
        label_q = quote_segment(r.label)
        if at.subject is None:
            owner, source_path, depends = "project", f"{sp}/resources/{label_q}", ()
        elif not at.in_experiment:
            target["subject"] = at.subject
            owner = "subject"
            source_path = f"{sp}/subjects/{quote_segment(at.subject)}/resources/{label_q}"
            depends = (self._subject_step,)
        else:
            exp_src, exp_dst, exp_step = self._exp
            assert exp_src is not None
            target["subject"] = at.subject
            target["experiment"] = exp_dst.label if exp_dst is not None else exp_src.label
            ep = f"/data/experiments/{quote_segment(exp_src.id)}"
            if at.assessor is not None:
                a_src, _a_dst, a_step = self._assessor
                assert a_src is not None
                target["assessor"] = a_src.label
                owner = "assessor"
                source_path = f"{ep}/assessors/{quote_segment(a_src.id)}/resources/{label_q}"
                depends = (a_step or exp_step,)
            elif at.scan is not None:
                scan_src, scan_dst, scan_step = self._scan
                assert scan_src is not None
                target["scan"] = scan_dst.id if scan_dst is not None else scan_src.id
                owner = "scan"
                source_path = f"{ep}/scans/{quote_segment(scan_src.id)}/resources/{label_q}"
                depends = (scan_step or exp_step,)
                if scan_dst is None and DICOM in scan_src.resources and scan_src.uid:
                    # The import numbers the new scan by its SeriesNumber, not the source ID:
                    # the upload finds it by series UID once the import has made it.
                    extra = {"scan_uid": scan_src.uid, "source_scan_id": scan_src.id}
            else:
                owner, source_path, depends = "experiment", f"{ep}/resources/{label_q}", (exp_step,)
        target["label"] = r.label
        return self._add(
            StepKind.UPLOAD_RESOURCE,
            at,
            {
                "owner_level": owner,
                "source_path": source_path,
                "label": r.label,
                "format": r.format,
                "content": r.content,
                "file_count": r.file_count,
                "bytes": r.total_bytes,
                "files_digest": files_digest(r),
                "repair": repair,
                **extra,
            },
            target,
            depends,
            why,
        )

    # visitor -----------------------------------------------------------------------------

    def src_only(self, at: Address, src: Any) -> bool:
        descend = super().src_only(at, src)
        if not descend:
            return False
        level = at.level
        if level == Level.SUBJECT:
            self._subject_step = self._create_subject(at, src)
        elif level == Level.EXPERIMENT:
            self._exp = (src, None, self._create_experiment(at, src))
            self._exp_work = _ExperimentWork(new=True)
        elif level == Level.SCAN:
            if DICOM in src.resources:
                step = self._import_scan(at, src, None, "scan missing on the destination")
                self._exp_work.add_scan(src, step)
            else:
                step = self._create_scan(at, src)
                self._exp_work.add_scan(src, created=step)
            self._scan = (src, None, step)
        elif level == Level.ASSESSOR:
            step = self._create_assessor(at, src)
            self._assessor = (src, None, step)
            self._update_assessor(at, src, None, step, "assessor fields, after its creation")
        elif level == Level.RESOURCE:
            self._upload_resource(at, src, False, "resource missing on the destination")
        return True

    def match(self, at: Address, src: Any, dst: Any) -> Recorded | None:
        recorded = super().match(at, src, dst)
        level = at.level
        if level == Level.SUBJECT:
            assert recorded is not None
            self._subject_step = ""
            if recorded.change.status == ChangeStatus.DIFFERS:
                self._update_subject(at, src, dst, "; ".join(recorded.change.differences))
        elif level == Level.EXPERIMENT:
            self._exp = (src, dst, "")
            self._exp_work = _ExperimentWork(own=compare_experiment_own(src, dst))
        elif level == Level.SCAN:
            assert recorded is not None
            step = ""
            in_conflict = recorded.change.status == ChangeStatus.CONFLICT
            if recorded.dicom and DICOM in src.resources and not in_conflict:
                step = self._import_scan(at, src, dst, "; ".join(recorded.dicom))
            self._scan = (src, dst, step)
            if not in_conflict:
                self._exp_work.add_scan(src, step, fields_differ=scan_fields_differ(src, dst))
        elif level == Level.ASSESSOR:
            self._assessor = (src, dst, "")
            diffs = compare_assessor(src, dst, digests=self.digests)
            if diffs:
                self._update_assessor(at, src, dst, "", "; ".join(diffs))
        elif level == Level.RESOURCE and not is_scan_dicom(at):
            assert recorded is not None
            if recorded.change.status == ChangeStatus.DIFFERS:
                self._upload_resource(at, src, True, "; ".join(recorded.change.differences))
        return recorded

    def leave(self, at: Address, src: Any, dst: Any) -> None:
        super().leave(at, src, dst)
        if at.level != Level.EXPERIMENT or src is None:
            return
        why = self._exp_work.why()
        if why:
            self._update_experiment(at, src, why)


def _experiment_path(e: Experiment) -> str:
    return f"/data/experiments/{quote_segment(e.id)}"


def dest_state(entity: dict[str, Any] | None) -> str:
    """A digest of what the destination held when a field update was planned.

    Field updates are idempotent and cheap, and are planned only when something differs.
    Recording the destination's state in their facts makes a resumed run skip an update it
    already made, while a new plan (after the destination changed) runs it again.
    """
    return content_fingerprint(entity) if entity is not None else ""


class _ExperimentWork:
    """What the walk found under one experiment that its XML document must settle."""

    def __init__(self, *, new: bool = False, own: tuple[str, ...] = ()) -> None:
        self.new = new
        self.own = own  # its own fields (and date) that differ
        self.scans: list[str] = []  # source scan IDs the destination has or will have
        self.scan_fields: dict[str, dict[str, str]] = {}
        self.imports: list[str] = []  # import steps: the document goes after them
        self.creates: list[str] = []  # create_scan steps: the document goes after them too
        self.scans_differ = 0

    def add_scan(
        self,
        scan: Scan,
        import_step: str = "",
        *,
        created: str = "",
        fields_differ: bool = False,
    ) -> None:
        self.scans.append(scan.id)
        self.scan_fields[scan.id] = scan_field_values(scan)
        if import_step:
            self.imports.append(import_step)
        if created:
            self.creates.append(created)
        self.scans_differ += fields_differ

    def why(self) -> str:
        """Why the experiment's document is written, or ``""`` when it needs not be.

        A scan import sets the scan's type to its DICOM SeriesDescription, so every import
        is followed by the document that puts the source's scan fields back.
        """
        if self.new:
            return "experiment fields and scan fields, after its creation and imports"
        reasons = list(self.own)
        if self.scans_differ:
            n = self.scans_differ
            reasons.append(f"fields of {n} scan{'s' if n != 1 else ''} differ")
        if self.imports:
            reasons.append("scan fields after the imports")
        if self.creates:
            n = len(self.creates)
            reasons.append(f"fields of {n} created scan{'s' if n != 1 else ''}")
        return "; ".join(reasons)


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
            step = replace(step, facts={**step.facts, "completed_before": serial})
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
) -> DiffResult:
    """``make_plan``, also returning the scan pairs found equal. ``memory`` holds the scan
    pairs the state DB remembers (``StateDB.remembered_scans``); ``on_equal_scan`` takes
    each pair found equal as it is found, instead of the result's ``equal_scans``."""
    scope = in_scope(src, dst, config.filtering, copy_shared=config.copy_shared)
    f_src, f_dst = scope.source, scope.dest
    assert f_dst is not None
    changes: list[Change] = [
        Change(str(addr), Level(level), ChangeStatus.SKIPPED, (), str(reason))
        for addr, level, reason in (*scope.filtered, *scope.shared)
    ]
    if config.sync_new_only and completed_subjects:
        config_dict = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
        labels, skips = _completed_skips(src, f_src, f_dst, completed_subjects, config_dict)
        f_src = _without_subjects(f_src, labels)
        f_dst = _without_subjects(f_dst, labels)
        changes.extend(skips)

    builder = PlanBuilder(
        f_src, f_dst, digests=src.digests and dst.digests, memory=memory,
        on_equal_scan=on_equal_scan,
    )  # fmt: skip
    # Conflicts are found against the whole destination: a label a completed (left out)
    # subject holds would otherwise be written into by the plan's PUTs.
    W.walk(f_src, f_dst, builder, homes=dst)
    changes.extend(builder.changes)
    changes.sort(key=lambda c: c.address)
    steps = tuple(
        sorted(
            _after_completion(builder.steps, completed_subjects, state_serial),
            key=lambda s: (s.address, s.kind.value),
        )
    )
    all_changes = tuple(changes)
    config_dict = config.to_dict()
    plan = Plan(
        source=_endpoint(src, source_profile),
        dest=_endpoint(dst, dest_profile),
        steps=steps,
        changes=all_changes,
        summary=summarize(steps, all_changes),
        config=config_dict,
        config_hash=config.config_hash(),
        state_serial=state_serial,
        created_at=created_at,
        tool_version=tool_version,
    )
    return DiffResult(plan, tuple(builder.equal_scans))


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
    return sum(
        1
        for c in plan.changes
        if c.status == ChangeStatus.SKIPPED
        and c.level == Level.SUBJECT
        and c.why in (ChangeReason.COMPLETED, ChangeReason.COMPLETED_STALE)
    )


def skipped_with_new_data(plan: Plan) -> int:
    """Subjects skipped by ``sync_new_only`` although the source changed since."""
    return sum(
        1
        for c in plan.changes
        if c.status == ChangeStatus.SKIPPED
        and c.level == Level.SUBJECT
        and c.why == ChangeReason.COMPLETED_STALE
    )
