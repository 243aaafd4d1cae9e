"""Check that an experiment arrived whole, after apply moved it.

The verdict is the shared walk's (``planner.walk``, through ``planner.compare``): the same
pairing of scans (by ID, then by series UID, because DICOM import numbers a destination scan
by its SeriesNumber) and the same comparison of files (``planner.sameness``) as the plan and
drift, so verification can never disagree with them. The tiers only explain the verdict to a
person:

- tier 1: every (filtered) source scan exists on the destination, with or without DICOM;
- tier 2: the same files are there: counts and names of every scan and experiment resource;
- tier 3: contents match: sizes and MD5 of non-DICOM files (when both servers give MD5s),
  and, for a scan's DICOM remembered in the state DB, neither side changed since. A scan's
  DICOM is otherwise the same by names and count, since the destination may rewrite headers.

Fields count as well (``planner.fields``): an experiment, scan or session assessor whose
counted fields differ after apply fails verification, because apply carries them.

Only the filtered source is compared, so data a filter left out is never reported missing;
what exists only on the destination is never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.address import Address
from planner.compare import Memory, collect_experiment
from planner.inventory import Experiment
from planner.plan import ChangeStatus, Level
from planner.sameness import CONTENT_KINDS, NAME_KINDS, ScanMemory

_FAILING = (ChangeStatus.CREATE, ChangeStatus.DIFFERS, ChangeStatus.CONFLICT)
# What apply's steps settle: differences there fail a transfer. Experiment and assessor
# fields are carried by their XML documents, so they count too.
_TRANSFERRED = (Level.SCAN, Level.RESOURCE, Level.EXPERIMENT, Level.ASSESSOR)
_WORDS = {ChangeStatus.CREATE: "missing on the destination"}


@dataclass(frozen=True)
class ExperimentVerification:
    address: str
    ok: bool
    tier1: bool
    tier2: bool
    tier3: bool | None  # None: digests unavailable on one side
    problems: tuple[str, ...] = ()
    # Differences no apply step settles: shown, never a failure of the transfer.
    notes: tuple[str, ...] = ()
    # Scan pairs whose DICOM was found equal: remembered in the state DB when ``ok``.
    equal_scans: tuple[ScanMemory, ...] = ()

    @property
    def digests_note(self) -> str:
        return "digests unavailable" if self.tier3 is None else ""


@dataclass
class VerificationSummary:
    checked: int = 0
    passed: int = 0
    failed: int = 0
    digests_unavailable: int = 0
    failures: list[ExperimentVerification] = field(default_factory=list)

    def add(self, result: ExperimentVerification) -> None:
        self.checked += 1
        if result.ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append(result)
        if result.tier3 is None:
            self.digests_unavailable += 1


def verify_experiment(
    address: str,
    src: Experiment,
    dst: Experiment | None,
    *,
    digests: bool = True,
    memory: Memory | None = None,
) -> ExperimentVerification:
    """Compare the filtered source experiment with what the destination now holds.

    ``memory`` holds the remembered scan pairs that still apply: apply leaves out the scans
    it has just imported, which are made anew.
    """
    if dst is None:
        return ExperimentVerification(
            address, False, False, False, None, ("the experiment is missing on the destination",)
        )
    walked = collect_experiment(src, dst, digests=digests, memory=memory)
    missing: list[str] = []
    tier2 = True
    tier3: bool | None = None if not digests or walked.digests_incomplete else True
    problems: list[str] = []
    notes: list[str] = []
    for change in walked.changes:
        if change.status not in _FAILING:
            continue
        kinds = walked.kinds.get(change.address, frozenset())
        if change.level == Level.SCAN and change.status == ChangeStatus.CREATE:
            missing.append(str(Address.parse(change.address).scan))
        if change.level == Level.RESOURCE and change.status == ChangeStatus.CREATE:
            tier2 = False
        if kinds & NAME_KINDS:
            tier2 = False
        if kinds & CONTENT_KINDS:
            tier3 = False
        why = "; ".join(change.differences) or _WORDS.get(change.status, change.status.value)
        text = f"{change.address}: {why}"
        if change.level in _TRANSFERRED:
            problems.append(text)
        else:
            notes.append(text)
    if missing:
        problems.insert(0, f"scans missing on the destination: {', '.join(missing)}")
    ok = not problems
    return ExperimentVerification(
        address,
        ok,
        not missing,
        tier2,
        tier3,
        tuple(problems),
        tuple(notes),
        tuple(walked.equal_scans),
    )
