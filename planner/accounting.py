"""The one count of an apply run: what moved, what each subject and experiment came to, and
the circuit breaker.

Like rclone's ``accounting.StatsInfo``, this is the single place the numbers are kept: the
coordinator reports each step's end (and each verification) to ``Accounting``, which updates
a typed ``Tally``; the result, the state DB's run record and the views all read that tally.

A subject's result is known once all its steps (and its experiments' verifications) are
finished; after ``max_failures`` consecutive failed subjects the breaker trips and the run
stops. Used by the coordinator thread only.

Steps are told as the run reads them from the plan (``expect``), in walk order: a subject's
and an experiment's steps come together, so a group is sealed (all its steps read) once the
reading moves past it, and a group that is sealed and finished is counted and forgotten.
Only the groups of subjects and experiments not yet finished are held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from planner import address as A
from planner.address import Address
from planner.plan import Level, Plan, Step, StepKind
from planner.planstream import QUIET, by_subject
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
    verified_pending: bool = False  # its verification (or, for a subject, one of its
    # experiments') was skipped by a cancel
    sealed: bool = False  # all its steps are read


@dataclass
class Listeners:
    """What accounting tells the run: an experiment is ready to verify; a subject is done
    (and not in conflict), so the state DB may record it complete."""

    verify: Callable[[str], None]
    subject_complete: Callable[[str], None]
    halted: Callable[[], bool]
    experiment_done: Callable[[str], None] = lambda key: None  # counted and forgotten


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
        self.subjects: dict[str, _Group] = {}  # not finished yet
        self.experiments: dict[str, _Group] = {}  # not finished yet
        self._reading: tuple[str | None, str | None] = (None, None)
        self._last_read: str | None = None  # the subject of the last step read
        self._all_read = False
        self.consecutive_failed = 0

    def expect(self, steps: Iterable[Step]) -> None:
        """All the steps of a run at once (``read`` each, then ``all_read``)."""
        for step in steps:
            self.read(step)
        self.all_read()

    def read(self, step: Step) -> None:
        """A step read from the plan: open its subject's and experiment's groups; the
        groups the reading has moved past are sealed."""
        subj, exp = group_keys(step.address)
        self._reading_moves_to(subj, exp)
        self._last_read = subj
        sgroup = self.subjects.get(subj)
        if sgroup is None:
            sgroup = self.subjects[subj] = _Group(subj)
        sgroup.outstanding += 1
        if exp:
            group = self.experiments.get(exp)
            if group is None:
                group = self.experiments[exp] = _Group(exp)
                if self.verify:
                    group.outstanding += 1  # its verification
                    sgroup.outstanding += 1
            group.outstanding += 1

    def all_read(self) -> None:
        """The plan's steps are all read: the last groups are sealed too."""
        self._reading_moves_to(None, None)
        self._all_read = True

    def _reading_moves_to(self, subj: str | None, exp: str | None) -> None:
        last_subj, last_exp = self._reading
        self._reading = (subj, exp)
        if last_exp is not None and last_exp != exp:
            group = self.experiments.get(last_exp)
            if group is not None:
                group.sealed = True
                self._maybe_finish_experiment(group)
        if last_subj is not None and last_subj != subj:
            sgroup = self.subjects.get(last_subj)
            if sgroup is not None:
                sgroup.sealed = True
                self._maybe_finish_subject(sgroup)

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
        if group.closed or not group.sealed or group.outstanding != verifying:
            return
        group.closed = True
        if not verifying:
            self._forget_experiment(group)
            return
        if group.failed or self.cancel.is_set():
            # A failed experiment is failed already; a cancelled run verifies next time.
            self.verified(group.key, None)
            return
        self.listeners.verify(group.key)

    def verified(self, exp_key: str, verdict: ExperimentVerification | None) -> None:
        """An experiment's verification ended (``None``: it was not done)."""
        group = self.experiments[exp_key]
        sgroup = self.subjects[subject_key(exp_key)]
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
            group.verified_pending = sgroup.verified_pending = True
        if group.outstanding == 0:
            self._forget_experiment(group)
        self._maybe_finish_subject(sgroup)

    def _maybe_finish_subject(self, group: _Group) -> None:
        if group.closed or not group.sealed or group.outstanding != 0:
            return
        if group.verified_pending:
            return  # unverified because the run was cancelled: pending
        group.closed = True
        if group.key != PROJECT_KEY:
            self._subject_finished(group)
        del self.subjects[group.key]
        self._count(group, self.tally.subjects, subjects=True)

    def _subject_finished(self, group: _Group) -> None:
        if group.failed:
            if group.ran:
                self._subject_failed()
            return
        if group.ran:
            self.consecutive_failed = 0
        if group.key in self.conflicted_subjects:
            return  # not complete: something of it could not be transferred
        self.listeners.subject_complete(group.key)

    def _forget_experiment(self, group: _Group) -> None:
        """An experiment whose steps and verification all ended: counted, then forgotten."""
        del self.experiments[group.key]
        self._count(group, self.tally.experiments, subjects=False)
        self.listeners.experiment_done(group.key)

    def _count(self, group: _Group, counts: Counts, *, subjects: bool) -> None:
        if group.key == PROJECT_KEY:
            return
        conflicted = subjects and group.key in self.conflicted_subjects
        if group.failed or conflicted:  # a subject with a conflict is not synced
            counts.failed += 1
        elif not group.closed:
            counts.pending += 1
        elif group.ran == 0:
            counts.skipped += 1
        else:
            counts.synced += 1

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

    def close(self, plan: Plan) -> None:
        """Count the subjects and experiments not finished (pending or failed), and those
        the plan has nothing to do for (one pass over its changes and steps)."""
        t = self.tally
        for group in self.subjects.values():
            self._count(group, t.subjects, subjects=True)
        for group in self.experiments.values():
            self._count(group, t.experiments, subjects=False)
        self.subjects.clear()
        self.experiments.clear()
        last = self._last_read  # walk order: the subjects after it were never read
        unread = not self._all_read and last is None
        for part in by_subject(plan):
            if unread and part.has_steps and part.subject:
                # A run stopped before reading these steps: left for the next run.
                t.subjects.pending += 1
                t.experiments.pending += part.experiments_with_steps
            if not self._all_read and (part.subject or PROJECT_KEY) == last:
                unread = True
            t.experiments.skipped += part.quiet_experiments
            c = part.change
            if c is not None and c.status in QUIET and not part.has_steps:
                t.subjects.skipped += 1
