"""A plan may only write where its header says: check every step against it.

The lock and the stale check cover the source and destination projects named in the plan's
header, and a step's address names the subject and experiment it is about. A step whose
target (the destination project, subject, experiment, assessor, resource label) or source
path says otherwise would move writes or reads somewhere nothing checked: a plan edited by
hand or damaged. Apply refuses such a plan before touching anything, naming the step.

Experiment-level source paths name the source experiment by accession ID, which the header
cannot vouch for; those IDs must agree across the plan's steps here, and with the source's
inventory at the step's address when apply has one (``check_source_ids``).
"""

from __future__ import annotations

from typing import Any

from planner import address as A
from planner import restpaths as rest
from planner.address import Address, BadAddress
from planner.inventory import Inventory
from planner.plan import Level, Plan, Step, StepKind


class PlanMismatch(ValueError):
    """A step disagrees with the plan's header or with the source it names."""

    def __init__(self, step: Step, why: str) -> None:
        super().__init__(f"step {step.id} {why}; the plan was edited or damaged, make a new plan")
        self.step_id = step.id


def check_plan(plan: Plan) -> None:
    """Raise ``PlanMismatch`` for the first step that does not agree with the header."""
    experiment_ids: dict[str, tuple[str, Step]] = {}
    for step in plan.steps:
        _check_step(plan, step)
        for exp_id in _experiment_ids(step):
            key = str(_address(step).up_to(Level.EXPERIMENT))
            seen = experiment_ids.setdefault(key, (exp_id, step))
            if seen[0] != exp_id:
                raise PlanMismatch(
                    step,
                    f"reads source experiment {exp_id}, where step {seen[1].id} reads "
                    f"{seen[0]} for the same experiment",
                )


def check_source_ids(plan: Plan, source: Inventory) -> None:
    """Raise ``PlanMismatch`` for a step whose source accession IDs are not those of the
    entities at its address on the source (reading another project's data)."""
    for step in plan.steps:
        at = _address(step)
        if at.subject is None or at.experiment is None:
            continue
        subject = source.subjects.get(at.subject)
        exp = subject.experiments.get(at.experiment) if subject is not None else None
        if exp is None:
            continue  # gone from the source: the stale check's to report
        experiment = at.up_to(Level.EXPERIMENT)
        for exp_id in _experiment_ids(step):
            if exp_id != exp.id:
                raise PlanMismatch(
                    step,
                    f"reads source experiment {exp_id}, but {experiment} is {exp.id}",
                )
        if at.assessor is not None:
            assessor = exp.assessors.get(at.assessor)
            got = _assessor_id(step)
            if assessor is not None and got and got != assessor.id:
                raise PlanMismatch(
                    step, f"reads source assessor {got}, but {at.assessor} is {assessor.id}"
                )


# -- one step ---------------------------------------------------------------------------------


def _address(step: Step) -> Address:
    """The step's address, read from the plan; a malformed one is a damaged plan."""
    try:
        return Address.parse(step.address)
    except BadAddress as exc:
        raise PlanMismatch(step, f"has a malformed address: {exc}") from None


def _check_step(plan: Plan, step: Step) -> None:
    t, at = step.target, _address(step)
    if step.id != A.step_id(step.kind.value, step.address):
        raise PlanMismatch(step, f"does not match its kind and address {step.address}")
    if t.get("project") != plan.dest.project:
        raise PlanMismatch(
            step,
            f"targets project {t.get('project')!r}, not the plan's destination project "
            f"{plan.dest.project}",
        )
    _expect(step, "subject", at.subject)
    _expect(step, "experiment", at.experiment)
    if at.assessor is not None:
        _expect(step, "assessor", at.assessor)
    if step.kind == StepKind.UPLOAD_RESOURCE:
        _expect(step, "label", at.resource)
    scan_step = step.kind in (StepKind.IMPORT_SCAN, StepKind.CREATE_SCAN)
    if scan_step and (at.level != Level.SCAN or step.facts.get("scan_id") != at.scan):
        raise PlanMismatch(step, f"names scan {step.facts.get('scan_id')!r}, not its address")
    if step.kind == StepKind.IMPORT_SCAN and (step.facts.get("resource") or "DICOM") != "DICOM":
        raise PlanMismatch(step, f"imports resource {step.facts['resource']!r}, not DICOM")
    _check_source_path(plan, step, at)


def _expect(step: Step, key: str, want: str | None) -> None:
    got = step.target.get(key)
    if want is None:
        if got:
            raise PlanMismatch(step, f"targets {key} {got!r}, which its address does not name")
    elif got != want:
        raise PlanMismatch(step, f"targets {key} {got!r}, not {want!r} as its address says")


def _check_source_path(plan: Plan, step: Step, at: Address) -> None:
    path = step.facts.get("source_path")
    if path is None:
        if step.kind in (StepKind.UPLOAD_RESOURCE, StepKind.UPDATE_EXPERIMENT):
            raise PlanMismatch(step, "has no source path")
        return
    want = _expected_source_path(plan, step, at)
    if path != want:
        raise PlanMismatch(step, f"reads {path!r}, not {want!r} as the plan's source says")


def _expected_source_path(plan: Plan, step: Step, at: Address) -> str:
    sp, label = plan.source.project, at.resource or ""
    if at.subject is None and at.resource is not None:
        return rest.source_resource(sp, label=label)
    if at.subject is not None and not at.in_experiment and at.resource is not None:
        return rest.source_resource(sp, at.subject, label=label)
    if not at.in_experiment:
        raise PlanMismatch(step, f"has an address {step.address!r} a source path cannot have")
    # Experiment level: by the accession ID the step itself names (checked for agreement
    # across the plan, and against the source's inventory by ``check_source_ids``).
    eid = _path_experiment_id(step)
    if step.kind == StepKind.UPDATE_EXPERIMENT:
        if at.level == Level.EXPERIMENT:
            return rest.experiment_by_id(eid)
        return rest.assessor_by_id(eid, _assessor_id(step))
    if at.level == Level.RESOURCE and at.scan is not None:
        return rest.source_resource(sp, experiment_id=eid, scan_id=at.scan, label=label)
    if at.level == Level.RESOURCE and at.assessor is not None:
        aid = _assessor_id(step)
        return rest.source_resource(sp, experiment_id=eid, assessor_id=aid, label=label)
    if at.level == Level.RESOURCE:
        return rest.source_resource(sp, experiment_id=eid, label=label)
    raise PlanMismatch(step, f"has an address {step.address!r} a source path cannot have")


def _path_segments(step: Step) -> list[str]:
    path = str(step.facts.get("source_path") or "")
    return path.split("/")


def _path_experiment_id(step: Step) -> str:
    segs = _path_segments(step)  # ["", "data", "experiments", ID, ...]
    if len(segs) >= 4 and segs[1:3] == ["data", "experiments"]:
        from urllib.parse import unquote

        return unquote(segs[3])
    return ""


def _assessor_id(step: Step) -> str:
    if step.kind == StepKind.CREATE_ASSESSOR or (
        step.kind == StepKind.UPDATE_EXPERIMENT and step.facts.get("owner_level") == "assessor"
    ):
        return str(step.facts.get("source_id") or "")
    segs = _path_segments(step)
    if len(segs) >= 6 and segs[4] == "assessors":
        from urllib.parse import unquote

        return unquote(segs[5])
    return ""


def _experiment_ids(step: Step) -> list[str]:
    """The source experiment accession IDs a step reads from or names."""
    f: dict[str, Any] = step.facts
    ids: list[str] = []
    if not _address(step).in_experiment:
        return ids
    if step.kind == StepKind.CREATE_EXPERIMENT or (
        step.kind == StepKind.UPDATE_EXPERIMENT and f.get("owner_level") == "experiment"
    ):
        ids.append(str(f.get("source_id") or ""))
    if f.get("source_experiment_id"):
        ids.append(str(f["source_experiment_id"]))
    exp_in_path = _path_experiment_id(step)
    if exp_in_path:
        ids.append(exp_in_path)
    return [i for i in ids if i]
