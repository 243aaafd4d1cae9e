"""Refuse to apply a plan the servers have moved on from.

A saved plan is a promise about two servers at one moment. Before applying it, apply reads
again what the plan touches and checks that the promise still holds:

- source: every step's facts (IDs, xsiType, date, file count, bytes, digest of the file list)
  still describe the source;
- destination: nothing that the plan will create has appeared there since, unless this
  plan's own earlier (interrupted) run put it there, which the state DB knows.

A destination that grew in places the plan does not touch, or a source with new subjects,
does not make the plan stale: applying it does exactly what it said it would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Container
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from planner.address import Address
from planner.backend import XnatBackend
from planner.compare import scan_field_values
from planner.filters import filter_inventory
from planner.inventory import Assessor, Experiment, Inventory, Resource, Scan, Subject
from planner.plan import (
    ChangeStatus,
    CreateAssessor,
    CreateExperiment,
    CreateScan,
    CreateSubject,
    ImportScan,
    Level,
    Plan,
    Step,
    StepKind,
    UpdateDocument,
    UpdateSubject,
    UploadResource,
)
from planner.planstream import groups, ordered_changes, ordered_steps, with_changes
from planner.sameness import planned_files, source_unchanged
from planner.walk import ExperimentHomes

_SHOWN = 10


class StalePlan(Exception):
    """The plan no longer describes the servers; ``what_changed`` lists why."""

    def __init__(self, what_changed: list[str]) -> None:
        self.what_changed = list(what_changed)
        shown = "; ".join(self.what_changed[:_SHOWN])
        more = len(self.what_changed) - _SHOWN
        if more > 0:
            shown += f"; and {more} more"
        super().__init__(
            f"the plan is stale, the servers changed since it was made: {shown}. "
            "Nothing was applied; make a new plan and apply that."
        )


@dataclass
class StalenessReport:
    what_changed: list[str] = field(default_factory=list)
    source_inventory: Inventory | None = None  # filtered, as the plan saw it
    raw_source_inventory: Inventory | None = None  # unfiltered, for subject fingerprints
    dest_inventory: Inventory | None = None


def _find(inv: Inventory, address: str) -> Any:
    """The entity at an address (see ``planner.address``), or None."""
    at = Address.parse(address)
    holder: Any = inv
    if at.subject is not None:
        holder = inv.subjects.get(at.subject)
        if holder is not None and at.experiment is not None:
            holder = holder.experiments.get(at.experiment)
        if holder is not None and at.scan is not None:
            holder = holder.scans.get(at.scan)
        if holder is not None and at.assessor is not None:
            holder = holder.assessors.get(at.assessor)
    if at.resource is not None:
        return holder.resources.get(at.resource) if holder is not None else None
    return holder if at.subject is not None else None  # the project is no entity here


def find_entity(inv: Inventory, address: str) -> Any:
    return _find(inv, address)


def _compare_files(
    where: str,
    res: Resource | None,
    step: ImportScan | UploadResource,
    files_digest: Callable[[Resource], str] | None,
) -> list[str]:
    """The source against a step's planned files, by ``planner.sameness.source_unchanged``
    (every byte counts: source against source). ``files_digest`` None skips the digest."""
    planned = planned_files(step)
    if files_digest is None:
        planned = dataclasses.replace(planned, files_digest="")
    return source_unchanged(where, res, planned)


def source_changes(
    plan: Plan, source: Inventory, files_digest: Callable[[Resource], str] | None
) -> list[str]:
    """What no longer holds on the (filtered) source, step by step."""
    changed: list[str] = []
    for step in ordered_steps(plan):  # walk order: one stored experiment read at a time
        changed.extend(_step_source_changes(step, source, files_digest))
    return changed


def _step_source_changes(
    step: Step, source: Inventory, files_digest: Callable[[Resource], str] | None
) -> list[str]:
    entity = _find(source, step.address)
    where = step.address
    if isinstance(step, CreateSubject | UpdateSubject):
        if not isinstance(entity, Subject):
            return [f"subject {where} is gone from the source"]
        if isinstance(step, CreateSubject) and _recreated(step.source_id, entity.id):
            return [f"subject {where} was recreated on the source (ID {entity.id})"]
        # The subject is created with its demographics: the planned values must still hold.
        return _fields_changed(f"subject {where}", entity.fields, step.fields)
    if isinstance(step, CreateExperiment):
        if not isinstance(entity, Experiment):
            return [f"experiment {where} is gone from the source"]
        out = []
        if _recreated(step.source_id, entity.id):
            out.append(f"experiment {where} was recreated on the source (ID {entity.id})")
        if step.xsi_type and entity.xsi_type and entity.xsi_type != step.xsi_type:
            out.append(f"experiment {where} is now a {entity.xsi_type}")
        if (entity.date or "") != step.date:
            out.append(f"experiment {where} date changed to {entity.date or 'none'}")
        return out
    if isinstance(step, ImportScan):
        if not isinstance(entity, Scan):
            return [f"scan {where} is gone from the source"]
        out = []
        if step.uid and entity.uid and entity.uid != step.uid:
            out.append(f"scan {where} has a new series UID")
        res = entity.resources.get(step.resource)
        return out + _compare_files(f"scan {where}", res, step, files_digest)
    if isinstance(step, CreateScan):
        if not isinstance(entity, Scan):
            return [f"scan {where} is gone from the source"]
        if step.xsi_type and entity.xsi_type and entity.xsi_type != step.xsi_type:
            return [f"scan {where} is now a {entity.xsi_type}"]
        if "DICOM" in entity.resources:
            return [f"scan {where} now has DICOM on the source"]
        return []
    if isinstance(step, UploadResource):
        res = entity if isinstance(entity, Resource) else None
        return _compare_files(f"resource {where}", res, step, files_digest)
    if isinstance(step, UpdateDocument):
        return _document_changes(step, entity)
    if isinstance(step, CreateAssessor):
        if not isinstance(entity, Assessor):
            return [f"assessor {where} is gone from the source"]
        if _recreated(step.source_id, entity.id):
            return [f"assessor {where} was recreated on the source (ID {entity.id})"]
        return []
    return []


def _recreated(planned_id: str, now_id: str) -> bool:
    return bool(planned_id and now_id and now_id != planned_id)


def _document_changes(step: UpdateDocument, entity: Any) -> list[str]:
    where = step.address
    if not isinstance(entity, Experiment | Assessor):
        return [f"{step.level} {where} is gone from the source"]
    out = _fields_changed(f"{step.level} {where}", entity.fields, step.fields)
    if (entity.date or "") != step.date:
        out.append(f"{step.level} {where} date changed to {entity.date or 'none'}")
    if isinstance(entity, Experiment) and step.owner_level == Level.EXPERIMENT:
        out.extend(_scan_fields_changed(where, entity, step.scan_fields))
    return out


def _fields_changed(where: str, now: dict[str, str], planned: dict[str, str]) -> list[str]:
    """The fields a step carries that no longer hold on the source, by name."""
    names = sorted(k for k in set(now) | set(planned) if now.get(k, "") != planned.get(k, ""))
    if not names:
        return []
    return [f"{where}: its fields changed on the source ({', '.join(names)})"]


def _scan_fields_changed(
    where: str, exp: Experiment, planned: dict[str, dict[str, str]]
) -> list[str]:
    """Scan fields (type, quality, notes...) the experiment's document would carry."""
    out: list[str] = []
    for scan_id, values in sorted(planned.items()):
        scan = exp.scans.get(scan_id)
        if scan is None:
            continue  # a scan gone from the source is its own step's to report
        now = scan_field_values(scan)
        names = sorted(k for k in set(now) | set(values) if now.get(k) != values.get(k))
        if names:
            out.append(
                f"experiment {where} scan {scan_id}: its fields changed on the source "
                f"({', '.join(names)})"
            )
    return out


def dest_changes(plan: Plan, dest: Inventory, settled: Container[str]) -> list[str]:
    """Entities the plan will create that someone else created on the destination since.

    ``settled`` holds the step IDs this plan's earlier runs started or finished: their
    traces on the destination are expected. One pass over the plan's steps and changes side
    by side, one experiment's records at a time (walk order): what a step creates is known
    from its group's changes, so no project-wide map of them is made.
    """
    homes = ExperimentHomes(dest)
    changed: list[str] = []
    merged = with_changes(groups(ordered_steps(plan)), groups(ordered_changes(plan)))
    for _key, steps, changes in merged:
        if not steps:
            continue
        changed.extend(_labels_taken_elsewhere(steps, homes))
        creates = {c.address for c in changes if c.status == ChangeStatus.CREATE}
        for step in steps:
            if step.address in creates and step.id not in settled:
                changed.extend(_created_since(step, dest))
    return changed


def _created_since(step: Step, dest: Inventory) -> list[str]:
    """The step's entity, if someone else created it on the destination since the plan."""
    found = _find(dest, _dest_address(step))
    if step.kind == StepKind.UPLOAD_RESOURCE:
        if isinstance(found, Resource) and found.files:
            return [f"resource {step.address} now exists on the destination"]
        return []
    if found is None:
        return []
    if step.kind == StepKind.IMPORT_SCAN:
        res = found.resources.get(step.resource if isinstance(step, ImportScan) else "DICOM")
        if res is not None and res.files:
            return [f"scan {step.address} now exists on the destination"]
        return []
    what = _CREATED.get(step.kind)
    return [f"{what} {step.address} now exists on the destination"] if what else []


_CREATED = {
    StepKind.CREATE_SCAN: "scan",
    StepKind.CREATE_EXPERIMENT: "experiment",
    StepKind.CREATE_ASSESSOR: "assessor",
    StepKind.CREATE_SUBJECT: "subject",
}


def _labels_taken_elsewhere(steps: list[Step], homes: ExperimentHomes) -> list[str]:
    """Experiment labels one group's steps write under one subject that another subject of
    the destination now holds (XNAT would resolve the plan's writes to that experiment)."""
    changed: list[str] = []
    seen: set[tuple[str, str]] = set()
    for step in steps:
        subject, label = step.dest.subject, step.dest.experiment
        if not subject or not label or (subject, label) in seen:
            continue
        seen.add((subject, label))
        home = homes.get(label)
        if home is not None and home != subject:
            changed.append(
                f"experiment {label} now exists on the destination under subject {home} "
                f"(the plan writes it under {subject})"
            )
    return changed


def _dest_address(step: Step) -> str:
    """The step's address in destination labels (targets may rename subject/experiment)."""
    d = step.dest
    at = Address.parse(step.address)
    if at.subject is not None and d.subject:
        at = replace(at, subject=d.subject)
        if at.experiment is not None and d.experiment:
            at = replace(at, experiment=d.experiment)
    return str(at)


def find_staleness(
    plan: Plan,
    src: XnatBackend,
    dst: XnatBackend,
    settled: Container[str],
    store_dir: Path | None = None,
) -> StalenessReport:
    """Snapshot both servers again (their inventories in ``store_dir``) and list what no
    longer matches the plan.

    ``settled`` holds the IDs of steps this plan's earlier runs started or finished.
    """
    from planner.compare import files_digest
    from planner.snapshot import take_snapshot

    raw_src = take_snapshot(src, plan.source.project, store_dir=store_dir)
    source = filter_inventory(raw_src, plan.config)
    raw_dst = take_snapshot(dst, plan.dest.project, store_dir=store_dir)
    report = StalenessReport(
        source_inventory=source, raw_source_inventory=raw_src, dest_inventory=raw_dst
    )
    if not plan.source.inventory_fingerprint or (
        raw_src.fingerprint() != plan.source.inventory_fingerprint
    ):
        report.what_changed.extend(source_changes(plan, source, files_digest))
    if not plan.dest.inventory_fingerprint or (
        raw_dst.fingerprint() != plan.dest.inventory_fingerprint
    ):
        report.what_changed.extend(dest_changes(plan, raw_dst, settled))
    return report
