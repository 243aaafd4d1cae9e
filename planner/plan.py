"""What a plan is: its steps, the entity changes it was made from, and where it applies.

This module only describes a plan (and derives its summary counts from its steps and
changes). ``planner.diff`` makes one, ``planner.planfile`` saves and loads one,
``planner.apply`` executes one. Fields marked "display only" are for people; apply
never branches on them.
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class Step:
    """One unit of work for apply.

    ``id`` is stable for the same inputs (``kind:address``), so the state DB can recognise a
    step across runs. ``facts`` are the source facts the step was planned from (IDs, xsiType,
    date, file count, bytes, a digest of the file list); apply uses them to validate what it
    moves and to detect a stale plan. ``target`` names where it goes on the destination.
    """

    id: str
    kind: StepKind
    address: str
    level: Level
    facts: dict[str, Any] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    reason: str = ""  # display only


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
    source: Endpoint
    dest: Endpoint
    steps: tuple[Step, ...]
    changes: tuple[Change, ...]
    summary: Summary
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    state_serial: int = 0
    created_at: str = ""
    tool_version: str = ""
    format_version: int = PLAN_FORMAT_VERSION


def summarize(steps: tuple[Step, ...], changes: tuple[Change, ...]) -> Summary:
    """The counts a plan's summary holds, derived from its steps and changes: the plan maker
    records them, and loading a plan file checks them again."""
    counts = {kind: 0 for kind in StepKind}
    nbytes = 0
    for s in steps:
        counts[s.kind] += 1
        nbytes += int(s.facts.get("bytes", 0) or 0)
    by_status: dict[ChangeStatus, int] = dict.fromkeys(ChangeStatus, 0)
    exp_in_sync = differs = 0
    for c in changes:
        by_status[c.status] += 1
        if c.level == Level.EXPERIMENT and c.status == ChangeStatus.IN_SYNC:
            exp_in_sync += 1
        if c.status == ChangeStatus.DIFFERS and _is_unit(c):
            differs += 1
    return Summary(
        subjects_to_update=counts[StepKind.UPDATE_SUBJECT],
        experiments_to_update=counts[StepKind.UPDATE_EXPERIMENT],
        assessors_to_create=counts[StepKind.CREATE_ASSESSOR],
        subjects_to_create=counts[StepKind.CREATE_SUBJECT],
        experiments_to_create=counts[StepKind.CREATE_EXPERIMENT],
        scans_to_transfer=counts[StepKind.IMPORT_SCAN],
        scans_to_create=counts[StepKind.CREATE_SCAN],
        resources_to_upload=counts[StepKind.UPLOAD_RESOURCE],
        bytes_to_transfer=nbytes,
        experiments_in_sync=exp_in_sync,
        differs=differs,
        dest_only=by_status[ChangeStatus.DEST_ONLY],
        conflicts=by_status[ChangeStatus.CONFLICT],
        skipped=by_status[ChangeStatus.SKIPPED],
    )


def _is_unit(change: Change) -> bool:
    """Differences are counted per experiment, subject, or resource outside experiments, so a
    differing scan is not counted again with its experiment."""
    from planner.address import Address  # it builds on this module's Level

    if change.level in (Level.EXPERIMENT, Level.SUBJECT):
        return True
    return change.level == Level.RESOURCE and not Address.parse(change.address).in_experiment
