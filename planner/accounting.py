"""The one count of an apply run: what moved, what each subject and experiment came to, and
the circuit breaker.

Like rclone's ``accounting.StatsInfo``, this is the single place the numbers are kept: the
coordinator reports each step's end (and each verification) to ``Accounting``, which updates
a typed ``Tally``; the result, the state DB's run record and the views all read that tally.

A subject's result is known once all its steps (and its experiments' verifications) are
finished; after ``max_failures`` consecutive failed subjects the breaker trips and the run
stops. Used by the coordinator thread only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from planner import address as A
from planner.address import Address
from planner.plan import ChangeStatus, Level, Plan, Step, StepKind
from planner.progress import Reporter
from planner.steps import StepOutcome
from planner.verify import ExperimentVerification, VerificationSummary

PROJECT_KEY = A.PROJECT


def subject_key(address: str) -> str:
    """The subject an address belongs to, or the project's key for project resources."""
    subject = Address.parse(address).subject
    return subject if subject is not None else PROJECT_KEY


def group_keys(address: str) -> tuple[str, str | None]:
    """(subject key, experiment key or None) of a step address."""
    experiment = Address.parse(address).up_to(Level.EXPERIMENT)
    return subject_key(address), (str(experiment) if experiment is not None else None)


@dataclass
class Counts:
    synced: int = 0
    failed: int = 0
    skipped: int = 0  # nothing to do this run: in sync, or done by an earlier run
    pending: int = 0  # left for the next run (interrupted or aborted before it finished)

    def as_dict(self) -> dict[str, int]:
        return {
            "synced": self.synced,
            "failed": self.failed,
            "skipped": self.skipped,
            "pending": self.pending,
        }


@dataclass
class Tally:
    """The numbers of one run (``planner.apply.ApplyResult`` is a ``Tally``)."""

    subjects: Counts = field(default_factory=Counts)
    experiments: Counts = field(default_factory=Counts)
    scans_moved: int = 0
    resources_moved: int = 0
    bytes_moved: int = 0
    steps_run: int = 0
    steps_skipped: int = 0
    verification: VerificationSummary = field(default_factory=VerificationSummary)
    failed_steps: list[tuple[str, str]] = field(default_factory=list)
    # The failed steps (of ``failed_steps``) that never ran: a step they depend on failed.
    steps_not_run: set[str] = field(default_factory=set)
    kept_zips: list[Path] = field(default_factory=list)
    circuit_breaker_tripped: bool = False


@dataclass
class _Group:
    """Bookkeeping for one subject or experiment."""

    key: str
    outstanding: int = 0  # steps (and the verification) not finished yet
    ran: int = 0
    skipped: int = 0
    failed: bool = False
    closed: bool = False
    verified_pending: bool = False  # its verification was skipped by a cancel


@dataclass
class Listeners:
    """What accounting tells the run: an experiment is ready to verify; a subject is done
    (and not in conflict), so the state DB may record it complete."""

    verify: Callable[[str], None]
    subject_complete: Callable[[str], None]
    halted: Callable[[], bool]


class Accounting:
    """Counts steps into subjects and experiments and decides when each is finished."""

    def __init__(
        self,
        tally: Tally,
        *,
        verify: bool,
        max_failures: int,
        cancel: threading.Event,
        reporter: Reporter,
        listeners: Listeners,
        conflicted_subjects: set[str],
    ) -> None:
        self.tally = tally
        self.verify = verify
        self.max_failures = max_failures
        self.cancel = cancel
        self.reporter = reporter
        self.listeners = listeners
        self.conflicted_subjects = conflicted_subjects
        self.subjects: dict[str, _Group] = {}
        self.experiments: dict[str, _Group] = {}
        self.consecutive_failed = 0

    def expect(self, steps: Iterable[Step]) -> None:
        """Open a group for every subject and experiment the steps touch."""
        for step in steps:
            subj, exp = group_keys(step.address)
            self.subjects.setdefault(subj, _Group(subj)).outstanding += 1
            if exp:
                group = self.experiments.get(exp)
                if group is None:
                    group = self.experiments[exp] = _Group(exp)
                    if self.verify:
                        group.outstanding += 1  # its verification
                        self.subjects[subj].outstanding += 1
                group.outstanding += 1

    def step_ended(self, step: Step, outcome: StepOutcome, *, skipped: bool = False) -> None:
        """A step finished (or, ``skipped``, an earlier run had finished it)."""
        if not skipped:
            self._count_step(step, outcome)
        subj, exp = group_keys(step.address)
        sgroup = self.subjects[subj]
        egroup = self.experiments.get(exp) if exp else None
        for group in (sgroup, egroup):
            if group is None:
                continue
            group.outstanding -= 1
            if skipped:
                group.skipped += 1
            else:
                group.ran += 1
                group.failed |= not outcome.ok
        if egroup is not None:
            self._maybe_finish_experiment(egroup)
        self._maybe_finish_subject(sgroup)

    def _count_step(self, step: Step, outcome: StepOutcome) -> None:
        t = self.tally
        t.steps_run += 1
        if outcome.ok:
            t.bytes_moved += outcome.bytes_moved
            if step.kind in (StepKind.IMPORT_SCAN, StepKind.CREATE_SCAN):
                t.scans_moved += 1
            elif step.kind == StepKind.UPLOAD_RESOURCE:
                t.resources_moved += 1
        else:
            t.failed_steps.append((step.id, outcome.error))
            if outcome.not_run:
                t.steps_not_run.add(step.id)
            if outcome.kept_zip is not None:
                t.kept_zips.append(outcome.kept_zip)

    def _maybe_finish_experiment(self, group: _Group) -> None:
        verifying = 1 if self.verify else 0
        if group.closed or group.outstanding != verifying:
            return
        group.closed = True
        if not verifying:
            return
        if group.failed or self.cancel.is_set():
            # A failed experiment is failed already; a cancelled run verifies next time.
            self.verified(group.key, None)
            return
        self.listeners.verify(group.key)

    def verified(self, exp_key: str, verdict: ExperimentVerification | None) -> None:
        """An experiment's verification ended (``None``: it was not done)."""
        group = self.experiments[exp_key]
        sgroup = self.subjects[exp_key.split("/", 1)[0]]
        group.outstanding -= 1
        sgroup.outstanding -= 1
        if verdict is not None:
            self.tally.verification.add(verdict)
            if not verdict.ok:
                group.failed = True
                sgroup.failed = True
                self.reporter.warning(
                    f"verification of {exp_key} failed: {'; '.join(verdict.problems)}"
                )
            elif verdict.tier3 is None:
                self.reporter.info(f"verified {exp_key}: file counts match (digests unavailable)")
        elif self.cancel.is_set() and not group.failed:
            group.verified_pending = True
        self._maybe_finish_subject(sgroup)

    def _maybe_finish_subject(self, group: _Group) -> None:
        if group.closed or group.outstanding != 0:
            return
        group.closed = True
        if group.key == PROJECT_KEY:
            return
        if group.failed:
            if group.ran:
                self._subject_failed()
            return
        if any(self.experiments[e].verified_pending for e in self._experiments_of(group.key)):
            group.closed = False  # unverified because the run was cancelled: pending
            return
        if group.ran:
            self.consecutive_failed = 0
        if group.key in self.conflicted_subjects:
            return  # not complete: something of it could not be transferred
        self.listeners.subject_complete(group.key)

    def _subject_failed(self) -> None:
        """The circuit breaker: too many failed subjects in a row stop the run."""
        self.consecutive_failed += 1
        limit = self.max_failures
        stopped = self.tally.circuit_breaker_tripped or self.listeners.halted()
        if limit > 0 and self.consecutive_failed >= limit and not stopped:
            self.tally.circuit_breaker_tripped = True
            self.reporter.warning(
                f"circuit breaker: {self.consecutive_failed} subjects in a row failed; "
                "stopping the run (fix the cause and run again: it resumes)"
            )

    def _experiments_of(self, subject: str) -> list[str]:
        return [k for k in self.experiments if k.split("/", 1)[0] == subject]

    def close(self, plan: Plan) -> None:
        """Count every subject and experiment as synced, failed, skipped or pending."""
        t = self.tally
        for groups, counts in ((self.subjects, t.subjects), (self.experiments, t.experiments)):
            for key, group in groups.items():
                if key == PROJECT_KEY:
                    continue
                conflicted = groups is self.subjects and key in self.conflicted_subjects
                if group.failed or conflicted:  # a subject with a conflict is not synced
                    counts.failed += 1
                elif not group.closed:
                    counts.pending += 1
                elif group.ran == 0:
                    counts.skipped += 1
                else:
                    counts.synced += 1
        t.subjects.skipped += _unplanned(plan, Level.SUBJECT, set(self.subjects))
        t.experiments.skipped += _unplanned(plan, Level.EXPERIMENT, set(self.experiments))


def _unplanned(plan: Plan, level: Level, planned: set[str]) -> int:
    """Entities the plan has nothing to do for (in sync, or skipped by a filter or the state)."""
    quiet = (ChangeStatus.IN_SYNC, ChangeStatus.SKIPPED)
    return sum(
        1
        for c in plan.changes
        if c.level == level and c.status in quiet and c.address not in planned
    )
