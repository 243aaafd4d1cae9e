"""A plan may only write where its header says: check every step against it.

The lock and the stale check cover the source and destination projects named in the plan's
header, and a step's address names the subject and experiment it is about. A step whose
destination (project, subject, experiment, assessor, resource label) or source IDs say
otherwise would move writes or reads somewhere nothing checked: a plan edited by
hand or damaged. Apply refuses such a plan before touching anything, naming the step.

A step reads the source at paths ``planner.restpaths`` builds from the header's source
project, the step's address and, inside an experiment, accession IDs the step names. The
header cannot vouch for those IDs: they must agree across the plan's steps here, and with the
source's inventory at the step's address when apply has one (``check_source_ids``).
"""

from __future__ import annotations

from planner import address as A
from planner.address import Address, BadAddress
from planner.inventory import Inventory
from planner.plan import (
    STEP_CLASSES,
    CreateAssessor,
    CreateExperiment,
    CreateScan,
    ImportScan,
    Level,
    Plan,
    Step,
    UpdateDocument,
    UploadResource,
)


class PlanMismatch(ValueError):
    """A step disagrees with the plan's header or with the source it names."""

    def __init__(self, step: Step, why: str) -> None:
        super().__init__(f"step {step.id} {why}; the plan was edited or damaged, make a new plan")
        self.step_id = step.id


class PlanGuard:
    """Checks steps one at a time, as a plan is written or read, against the header's
    destination project; the source experiment IDs are kept per experiment (one short
    string each), the only thing that must be remembered across steps."""

    def __init__(self, dest_project: str) -> None:
        self.dest_project = dest_project
        self.experiment_ids: dict[str, tuple[str, str]] = {}  # experiment -> (ID, step ID)

    def check(self, step: Step) -> None:
        """Raise ``PlanMismatch`` if ``step`` does not agree with the header or with the
        source experiment IDs of the steps checked before it."""
        _check_step(self.dest_project, step)
        for exp_id in _experiment_ids(step):
            key = str(_address(step).up_to(Level.EXPERIMENT))
            seen = self.experiment_ids.setdefault(key, (exp_id, step.id))
            if seen[0] != exp_id:
                raise PlanMismatch(
                    step,
                    f"reads source experiment {exp_id}, where step {seen[1]} reads "
                    f"{seen[0]} for the same experiment",
                )


def check_plan(plan: Plan) -> None:
    """Raise ``PlanMismatch`` for the first step that does not agree with the header."""
    guard = PlanGuard(plan.dest.project)
    for step in plan.steps:
        guard.check(step)


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


def _check_step(dest_project: str, step: Step) -> None:
    d, at = step.dest, _address(step)
    if step.id != A.step_id(step.kind.value, step.address):
        raise PlanMismatch(step, f"does not match its kind and address {step.address}")
    if not isinstance(step, STEP_CLASSES[step.kind]):
        raise PlanMismatch(step, f"is not a {step.kind} step")
    if d.project != dest_project:
        raise PlanMismatch(
            step,
            f"targets project {d.project!r}, not the plan's destination project {dest_project}",
        )
    _expect(step, "subject", at.subject)
    _expect(step, "experiment", at.experiment)
    if at.assessor is not None:
        _expect(step, "assessor", at.assessor)
    if isinstance(step, UploadResource):
        _expect(step, "label", at.resource)
    if isinstance(step, ImportScan | CreateScan) and (
        at.level != Level.SCAN or step.scan_id != at.scan
    ):
        raise PlanMismatch(step, f"names scan {step.scan_id!r}, not its address")
    if isinstance(step, ImportScan) and step.resource != "DICOM":
        raise PlanMismatch(step, f"imports resource {step.resource!r}, not DICOM")
    _check_source(step, at)


def _expect(step: Step, key: str, want: str | None) -> None:
    got = getattr(step.dest, key)
    if want is None:
        if got:
            raise PlanMismatch(step, f"targets {key} {got!r}, which its address does not name")
    elif got != want:
        raise PlanMismatch(step, f"targets {key} {got!r}, not {want!r} as its address says")


def _check_source(step: Step, at: Address) -> None:
    """A step reads the source where its address and IDs say (``planner.restpaths``): the
    IDs it names must fit its address, so no path leads into another experiment's data."""
    if isinstance(step, UpdateDocument):
        if step.owner_level != at.level or at.level not in (Level.EXPERIMENT, Level.ASSESSOR):
            raise PlanMismatch(step, f"writes the document of a {step.owner_level} at {at}")
        if not step.source_experiment_id:
            raise PlanMismatch(step, "names no source experiment")
        return
    if not isinstance(step, UploadResource):
        return
    owner = at.parent.level if at.parent is not None else Level.PROJECT
    if step.owner_level != owner:
        raise PlanMismatch(step, f"reads a {step.owner_level} resource at {at}")
    if at.in_experiment != bool(step.source_experiment_id):
        where = "an experiment" if at.in_experiment else "no experiment"
        raise PlanMismatch(
            step, f"names source experiment {step.source_experiment_id!r} for {where}"
        )
    if at.scan is not None and step.source_owner_id != at.scan:
        raise PlanMismatch(step, f"reads scan {step.source_owner_id!r}, not its address")
    if (at.scan is not None or at.assessor is not None) != bool(step.source_owner_id):
        raise PlanMismatch(step, f"names source owner {step.source_owner_id!r} at {at}")


def _assessor_id(step: Step) -> str:
    if isinstance(step, CreateAssessor):
        return step.source_id
    if isinstance(step, UpdateDocument) and step.owner_level == Level.ASSESSOR:
        return step.source_id
    if isinstance(step, UploadResource) and step.owner_level == Level.ASSESSOR:
        return step.source_owner_id
    return ""


def _experiment_ids(step: Step) -> list[str]:
    """The source experiment accession IDs a step reads from or names."""
    ids: list[str] = []
    if not _address(step).in_experiment:
        return ids
    if isinstance(step, CreateExperiment):
        ids.append(step.source_id)
    if isinstance(step, UpdateDocument) and step.owner_level == Level.EXPERIMENT:
        ids.append(step.source_id)
    if isinstance(step, UpdateDocument | ImportScan | CreateScan | UploadResource):
        ids.append(step.source_experiment_id)
    return [i for i in ids if i]
