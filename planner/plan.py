"""What a plan is: its steps, the entity changes it was made from, and where it applies.

This module only describes a plan (and derives its summary counts from its steps and
changes). ``planner.diff`` makes one, ``planner.planfile`` saves and loads one,
``planner.apply`` executes one. Fields marked "display only" are for people; apply
never branches on them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

PLAN_FORMAT_VERSION = 2


class StepKind(StrEnum):
    """The kinds of step apply knows how to run."""

    CREATE_SUBJECT = "create_subject"
    CREATE_EXPERIMENT = "create_experiment"
    IMPORT_SCAN = "import_scan"  # download one scan's DICOM zip, validate, import
    # PUT a scan that no DICOM import will create (no DICOM after filtering): its other
    # resources are uploaded into it, its fields follow by the experiment's XML document
    CREATE_SCAN = "create_scan"
    UPLOAD_RESOURCE = "upload_resource"  # any non-DICOM resource at any level
    UPDATE_SUBJECT = "update_subject"  # PUT a subject's fields (idempotent)
    # PUT an experiment's or assessor's XML document (fields, scan fields), rewritten for
    # the destination, with allowDataDeletion=false
    UPDATE_EXPERIMENT = "update_experiment"
    CREATE_ASSESSOR = "create_assessor"  # a session assessor (its fields follow by XML)


class ChangeStatus(StrEnum):
    """How the diff classified one entity."""

    CREATE = "create"  # on the source only: will be transferred
    IN_SYNC = "in_sync"
    DIFFERS = "differs"  # on both, not equal (see ``differences``)
    DEST_ONLY = "dest_only"  # on the destination only: reported, never deleted
    CONFLICT = "conflict"  # cannot be transferred without overwriting something else
    SKIPPED = "skipped"  # left out by a filter or by the state DB


class ChangeReason(StrEnum):
    """Why the diff gave a change its status, for code to decide on; ``Change.reason`` and
    ``Change.differences`` are the text for people (like Terraform's ``ActionReason``).

    The plan file saves the value (a change record's ``why``) next to the text.
    """

    NONE = ""  # nothing code decides on
    # Skipped by ``sync_new_only``: an earlier run completed the subject, nothing new since.
    COMPLETED = "completed"
    # Skipped by ``sync_new_only`` although the source has new data, or the filters changed.
    COMPLETED_STALE = "completed_stale"
    # A conflict: the two scans of one ID hold different series, so they cannot be the same.
    SERIES_UID_DIFFERS = "series_uid_differs"
    # A conflict: paired by label, but of different xsiTypes (experiment, scan, assessor).
    XSI_TYPE_DIFFERS = "xsi_type_differs"
    # A conflict: paired sessions of different study UIDs (another study holds the label).
    STUDY_UID_DIFFERS = "study_uid_differs"
    # A conflict: the source scan's ID is taken on the destination by another series.
    SCAN_ID_TAKEN = "scan_id_taken"
    # A conflict: the destination holds the experiment's label under another subject.
    EXPERIMENT_ELSEWHERE = "experiment_elsewhere"
    # Skipped: a filter of the transfer config leaves it out.
    FILTERED = "filtered"
    # Skipped: shared into the project from another one, and ``copy_shared`` is off.
    SHARED = "shared"
    # Created: a scan with no DICOM to import, created by a PUT.
    NO_DICOM = "no_dicom"


# The display text of the reasons above (news follows COMPLETED_TEXT after "; ").
COMPLETED_TEXT = "completed by an earlier run"
NEW_DATA_TEXT = "has new data on the source"
OTHER_FILTERS_TEXT = "was completed under other filters"
SERIES_UID_DIFFERS_TEXT = "series UID differs"


class Level(StrEnum):
    PROJECT = "project"
    SUBJECT = "subject"
    EXPERIMENT = "experiment"
    SCAN = "scan"
    RESOURCE = "resource"
    ASSESSOR = "assessor"


@dataclass(frozen=True)
class Endpoint:
    """One side of a transfer. Never holds credentials."""

    url: str
    project: str
    profile: str = ""
    server_version: str = ""
    inventory_fingerprint: str = ""


@dataclass(frozen=True, slots=True)
class Dest:
    """Where a step writes on the destination, by labels (and a scan's ID): the project, then
    as deep as the step reaches. ``planner.restpaths`` turns it into a REST path."""

    project: str
    subject: str | None = None
    experiment: str | None = None
    scan: str | None = None
    assessor: str | None = None
    label: str | None = None  # a resource's label

    def as_dict(self) -> dict[str, str]:
        """The labels that are set, by name (the form the state DB's facts digest hashes)."""
        names = ("project", "subject", "experiment", "scan", "assessor", "label")
        return {n: v for n in names if (v := getattr(self, n)) is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One unit of work for apply; the per-kind classes below add what it was planned from.

    ``id`` is stable for the same inputs (``kind:address``), so the state DB can recognise a
    step across runs. The kind's own fields are the source facts the step was planned from
    (IDs, xsiType, date, file count, bytes, a digest of the file list); apply uses them to
    validate what it moves and to detect a stale plan. ``dest`` names where it goes.
    ``completed_before`` is the state serial a step of a subject an earlier run completed
    was planned at (see ``planner.diff``), so the state DB does not take it as done.
    """

    id: str
    kind: StepKind
    address: str
    level: Level
    dest: Dest
    depends_on: tuple[str, ...] = ()
    reason: str = ""  # display only
    completed_before: int | None = None

    def fact_names(self) -> tuple[str, ...]:
        """The kind's own fields, in the order the plan file writes them."""
        return ()

    @property
    def facts(self) -> dict[str, Any]:
        """The planned facts as one mapping: what the state DB's facts digest hashes."""
        out: dict[str, Any] = {}
        for name in self.fact_names():
            value = getattr(self, name)
            out[name] = list(value) if isinstance(value, tuple) else value
        if self.completed_before is not None:
            out["completed_before"] = self.completed_before
        return out

    @property
    def target(self) -> dict[str, str]:
        """``dest`` as a mapping, for the facts digest."""
        return self.dest.as_dict()

    @property
    def planned_bytes(self) -> int:
        """Bytes the step moves (0 for a creation or a document update)."""
        return 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateSubject(Step):
    """PUT a subject with its demographics."""

    source_id: str
    fields: dict[str, str]

    def fact_names(self) -> tuple[str, ...]:
        return ("source_id", "fields")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSubject(Step):
    """PUT a subject's fields (idempotent); ``dest_state`` digests what the destination held
    when it was planned, so a resumed run skips an update it made."""

    source_id: str
    fields: dict[str, str]
    dest_state: str

    def fact_names(self) -> tuple[str, ...]:
        return ("source_id", "fields", "dest_state")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateExperiment(Step):
    """PUT an experiment by label under its subject."""

    source_id: str
    xsi_type: str
    date: str
    fields: dict[str, str]

    def fact_names(self) -> tuple[str, ...]:
        return ("source_id", "xsi_type", "date", "fields")


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateAssessor(Step):
    """PUT a session assessor (its fields follow by its XML document)."""

    source_id: str
    xsi_type: str
    date: str

    def fact_names(self) -> tuple[str, ...]:
        return ("source_id", "xsi_type", "date")


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateDocument(Step):
    """PUT an experiment's or assessor's XML document (``owner_level``), read from the source
    by accession ID and rewritten for the destination. An experiment's carries the source
    scan IDs it settles and their fields (``scans``, ``scan_fields``); an assessor's none."""

    owner_level: Level
    source_id: str
    source_experiment_id: str  # the experiment's, or the assessor's session's
    xsi_type: str
    date: str
    fields: dict[str, str]
    dest_state: str
    scans: tuple[str, ...] = ()
    scan_fields: dict[str, dict[str, str]] = field(default_factory=dict)

    def fact_names(self) -> tuple[str, ...]:
        common = ("owner_level", "source_id", "source_experiment_id", "xsi_type", "date")
        if self.owner_level == Level.ASSESSOR:
            return (*common, "fields", "dest_state")
        return (*common, "fields", "scans", "scan_fields", "dest_state")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportScan(Step):
    """Download one source scan's DICOM as a zip, validate it, import it (``repair``: into a
    destination scan that exists but differs)."""

    source_experiment_id: str
    scan_id: str
    xsi_type: str
    type: str
    uid: str
    file_count: int
    bytes: int
    files_digest: str
    names_digest: str
    resource: str
    repair: bool

    def fact_names(self) -> tuple[str, ...]:
        return (
            "source_experiment_id",
            "scan_id",
            "xsi_type",
            "type",
            "uid",
            "file_count",
            "bytes",
            "files_digest",
            "names_digest",
            "resource",
            "repair",
        )

    @property
    def planned_bytes(self) -> int:
        return self.bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateScan(Step):
    """PUT a scan no DICOM import will create, so its other resources have a home."""

    source_experiment_id: str
    scan_id: str
    xsi_type: str
    type: str
    series_description: str

    def fact_names(self) -> tuple[str, ...]:
        return ("source_experiment_id", "scan_id", "xsi_type", "type", "series_description")


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadResource(Step):
    """Copy one non-DICOM resource, at any level (``owner_level``), as one zip.

    The source is read by labels (project, subject) or by accession IDs (anything in an
    experiment: ``source_experiment_id`` and the scan's or assessor's ``source_owner_id``).
    ``scan_uid`` is set when the scan is made by a DICOM import in the same run: the upload
    then finds the scan by series UID, as the import numbers it by its SeriesNumber.
    """

    owner_level: Level
    label: str
    format: str
    content: str
    file_count: int
    bytes: int
    files_digest: str
    repair: bool
    source_experiment_id: str = ""
    source_owner_id: str = ""  # the source scan's or assessor's ID
    scan_uid: str = ""

    def fact_names(self) -> tuple[str, ...]:
        names = ("owner_level", "label", "format", "content", "file_count", "bytes")
        where = ("source_experiment_id", "source_owner_id", "scan_uid")
        return (*names, "files_digest", "repair", *(n for n in where if getattr(self, n)))

    @property
    def planned_bytes(self) -> int:
        return self.bytes


STEP_CLASSES: dict[StepKind, type[Step]] = {
    StepKind.CREATE_SUBJECT: CreateSubject,
    StepKind.UPDATE_SUBJECT: UpdateSubject,
    StepKind.CREATE_EXPERIMENT: CreateExperiment,
    StepKind.CREATE_ASSESSOR: CreateAssessor,
    StepKind.UPDATE_EXPERIMENT: UpdateDocument,
    StepKind.IMPORT_SCAN: ImportScan,
    StepKind.CREATE_SCAN: CreateScan,
    StepKind.UPLOAD_RESOURCE: UploadResource,
}


@dataclass(frozen=True)
class Change:
    """The diff's verdict on one entity, at one address."""

    address: str
    level: Level
    status: ChangeStatus
    differences: tuple[str, ...] = ()  # e.g. "file count 10 != 9", "digest of a/b.dcm"
    reason: str = ""  # display only
    bytes: int = 0
    files: int = 0
    why: ChangeReason = ChangeReason.NONE  # what code decides on


@dataclass(frozen=True)
class Summary:
    """Counts for the one-line summary and for scripts."""

    subjects_to_create: int = 0
    experiments_to_create: int = 0
    scans_to_transfer: int = 0  # DICOM imports
    resources_to_upload: int = 0
    bytes_to_transfer: int = 0
    experiments_in_sync: int = 0
    differs: int = 0
    dest_only: int = 0
    conflicts: int = 0
    skipped: int = 0
    subjects_to_update: int = 0
    experiments_to_update: int = 0  # experiments and assessors whose fields are written
    assessors_to_create: int = 0
    scans_to_create: int = 0  # scans without DICOM to import, created by a PUT

    @property
    def has_changes(self) -> bool:
        return bool(
            self.subjects_to_create
            or self.experiments_to_create
            or self.scans_to_transfer
            or self.resources_to_upload
            or self.subjects_to_update
            or self.experiments_to_update
            or self.assessors_to_create
            or self.scans_to_create
        )


@dataclass(frozen=True)
class Plan:
    """A plan: where it applies, its steps and changes, and their summary.

    ``steps`` and ``changes`` are re-iterable collections in file order (walk order): tuples
    for a plan built in memory, views that read the plan file again on each pass for one
    the diff wrote or one loaded from a file (``planner.planfile``). Iterate them in order;
    never index them nor keep them whole. ``summary`` needs no pass over them.
    """

    source: Endpoint
    dest: Endpoint
    steps: Collection[Step]
    changes: Collection[Change]
    summary: Summary
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    state_serial: int = 0
    created_at: str = ""
    tool_version: str = ""
    format_version: int = PLAN_FORMAT_VERSION


class SummaryCounter:
    """The summary's counts, accumulated one record at a time as a plan is written or read,
    so no pass needs the records together."""

    def __init__(self) -> None:
        self.kinds: dict[StepKind, int] = dict.fromkeys(StepKind, 0)
        self.nbytes = 0
        self.by_status: dict[ChangeStatus, int] = dict.fromkeys(ChangeStatus, 0)
        self.exp_in_sync = 0
        self.differs = 0

    def step(self, s: Step) -> None:
        self.kinds[s.kind] += 1
        self.nbytes += s.planned_bytes

    def change(self, c: Change) -> None:
        self.by_status[c.status] += 1
        if c.level == Level.EXPERIMENT and c.status == ChangeStatus.IN_SYNC:
            self.exp_in_sync += 1
        if c.status == ChangeStatus.DIFFERS and _is_unit(c):
            self.differs += 1

    def summary(self) -> Summary:
        counts, by_status = self.kinds, self.by_status
        return Summary(
            subjects_to_update=counts[StepKind.UPDATE_SUBJECT],
            experiments_to_update=counts[StepKind.UPDATE_EXPERIMENT],
            assessors_to_create=counts[StepKind.CREATE_ASSESSOR],
            subjects_to_create=counts[StepKind.CREATE_SUBJECT],
            experiments_to_create=counts[StepKind.CREATE_EXPERIMENT],
            scans_to_transfer=counts[StepKind.IMPORT_SCAN],
            scans_to_create=counts[StepKind.CREATE_SCAN],
            resources_to_upload=counts[StepKind.UPLOAD_RESOURCE],
            bytes_to_transfer=self.nbytes,
            experiments_in_sync=self.exp_in_sync,
            differs=self.differs,
            dest_only=by_status[ChangeStatus.DEST_ONLY],
            conflicts=by_status[ChangeStatus.CONFLICT],
            skipped=by_status[ChangeStatus.SKIPPED],
        )


def summarize(steps: Iterable[Step], changes: Iterable[Change]) -> Summary:
    """The counts a plan's summary holds, derived from its steps and changes: the plan maker
    records them, and loading a plan file checks them again (``SummaryCounter``)."""
    counter = SummaryCounter()
    for s in steps:
        counter.step(s)
    for c in changes:
        counter.change(c)
    return counter.summary()


def _is_unit(change: Change) -> bool:
    """Differences are counted per experiment, subject, or resource outside experiments, so a
    differing scan is not counted again with its experiment."""
    from planner.address import Address  # it builds on this module's Level

    if change.level in (Level.EXPERIMENT, Level.SUBJECT):
        return True
    return change.level == Level.RESOURCE and not Address.parse(change.address).in_experiment
