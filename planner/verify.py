"""Check that an experiment arrived whole, after apply moved it.

The verdict comes from the diff's own comparison (``planner.compare.compare_experiment``) so
that verification and planning can never disagree about what "the same" means; the tiers
below only explain the verdict to a person:

- tier 1: every (filtered) source scan exists on the destination, with or without DICOM;
- tier 2: file counts of every scan resource and experiment resource match;
- tier 3: sizes and MD5 digests match file by file, when both servers report digests.

Fields count as well (``planner.fields``): an experiment, scan or session assessor whose
counted fields differ after apply fails verification, because apply carries them.

Only the filtered source is compared, so data a filter left out is never reported missing;
what exists only on the destination is never a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from planner.inventory import Experiment, Resource
from planner.plan import Change, ChangeStatus, Level

# compare_experiment(src, dst, digests=...) -> list[Change], from the diff.
Compare = Callable[..., list[Change]]
_FAILING = (ChangeStatus.CREATE, ChangeStatus.DIFFERS, ChangeStatus.CONFLICT)
# What apply's steps settle: differences there fail a transfer. Experiment and assessor
# fields are carried by their XML documents, so they count too.
_TRANSFERRED = (Level.SCAN, Level.RESOURCE, Level.EXPERIMENT, Level.ASSESSOR)


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


def _resource_pairs(
    src: Experiment, dst: Experiment
) -> list[tuple[str, Resource, Resource | None]]:
    pairs: list[tuple[str, Resource, Resource | None]] = []
    for scan_id, scan in sorted(src.scans.items()):
        dscan = dst.scans.get(scan_id)
        for label, res in sorted(scan.resources.items()):
            other = dscan.resources.get(label) if dscan else None
            pairs.append((f"scans/{scan_id}/{label}", res, other))
    for label, res in sorted(src.resources.items()):
        pairs.append((f"resources/{label}", res, dst.resources.get(label)))
    return pairs


def _digests_known(resource: Resource | None) -> bool:
    return resource is not None and all(f.digest for f in resource.files)


def verify_experiment(
    address: str,
    src: Experiment,
    dst: Experiment | None,
    *,
    compare: Compare,
    digests: bool = True,
) -> ExperimentVerification:
    """Compare the filtered source experiment with what the destination now holds."""
    if dst is None:
        return ExperimentVerification(
            address, False, False, False, None, ("the experiment is missing on the destination",)
        )
    problems: list[str] = []
    # Every kept source scan is transferred: imported from its DICOM, or created (a scan
    # without DICOM) with its other resources.
    missing = sorted(set(src.scans) - set(dst.scans))
    tier1 = not missing
    if missing:
        problems.append(f"scans missing on the destination: {', '.join(missing)}")

    tier2 = True
    tier3: bool | None = True
    for where, res, other in _resource_pairs(src, dst):
        if other is None:
            if res.files:
                tier2 = False
                problems.append(f"{where}: missing on the destination")
            continue
        if other.file_count != res.file_count:
            tier2 = False
            problems.append(f"{where}: {other.file_count} files, the source has {res.file_count}")
            continue
        if not (digests and _digests_known(res) and _digests_known(other)):
            tier3 = None if tier3 is not False else False
            continue
        theirs = {f.path: f for f in other.files}
        for entry in res.files:
            got = theirs.get(entry.path)
            if got is None or got.size != entry.size or got.digest != entry.digest:
                tier3 = False
                problems.append(f"{where}/{entry.path}: size or MD5 differs")

    verdict_ok = True
    notes: list[str] = []
    for change in compare(src, dst, digests=digests):
        if change.status not in _FAILING:
            continue
        text = f"{change.address}: {'; '.join(change.differences) or change.status.value}"
        if change.level in _TRANSFERRED:
            verdict_ok = False
            if text not in problems:
                problems.append(text)
        elif change.level != Level.EXPERIMENT:
            notes.append(text)
    ok = verdict_ok and tier1 and tier2 and tier3 is not False
    return ExperimentVerification(address, ok, tier1, tier2, tier3, tuple(problems), tuple(notes))
