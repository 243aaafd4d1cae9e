"""Record an apply run in the state DB as it goes: an observer of the walk, not part of it.

Like Terraform's ``StateHook``, this is told when a step starts and ends, when a subject is
complete and when an experiment's scans are verified equal, and writes that down, so a run
killed at any moment resumes at the next unfinished step. Steps are recorded by the thread
that ran them, at once; a step the state DB shows as done with the same facts
(``facts_digest``) is not run again.
"""

from __future__ import annotations

from collections.abc import Container, Iterable

from planner.inventory import content_fingerprint
from planner.plan import CreateExperiment, CreateSubject, Plan, Step, StepKind
from planner.progress import Reporter
from planner.sameness import ScanMemory
from planner.state import PairKey, StateDB
from planner.statuses import StepStatus
from planner.steps import FAILED, StepOutcome, describe

__all__ = ["RecordedSteps", "StateHook", "facts_digest", "pair_key"]


def facts_digest(step: Step) -> str:
    """What the state DB records with a finished step: a step planned again from different
    facts (the source changed) or for another target is not "already done"."""
    return content_fingerprint({"kind": str(step.kind), "facts": step.facts, "target": step.target})


def pair_key(plan: Plan) -> PairKey:
    return PairKey(plan.source.url, plan.source.project, plan.dest.url, plan.dest.project)


class RecordedSteps(Container[str]):
    """The steps any run recorded for a pair, asked one step ID at a time (``in``), so the
    staleness check does not load every step the pair ever had."""

    def __init__(self, state: StateDB, pair: PairKey) -> None:
        self.state = state
        self.pair = pair

    def __contains__(self, step_id: object) -> bool:
        return isinstance(step_id, str) and self.state.has_step(self.pair, step_id)


_CREATES = {StepKind.CREATE_SUBJECT: "subject", StepKind.CREATE_EXPERIMENT: "experiment"}


class StateHook:
    """Writes one run's steps and completed subjects to the state DB (thread-safe as the
    state DB is)."""

    def __init__(self, state: StateDB, pair: PairKey, run_id: int, reporter: Reporter) -> None:
        self.state = state
        self.pair = pair
        self.run_id = run_id
        self.reporter = reporter

    def records(self, steps: list[Step]) -> dict[str, tuple[str, str]]:
        """step ID -> (latest status, facts digest) of the steps earlier runs recorded at
        all, for a few steps at a time (one experiment's): done with the same facts is
        skipped, recorded otherwise is resumed."""
        return self.state.step_records(self.pair, [s.id for s in steps])

    def _record(self, step: Step, status: StepStatus, outcome: StepOutcome | None = None) -> None:
        o = outcome or StepOutcome(status)
        self.state.record_step(
            self.run_id,
            self.pair,
            step.id,
            str(step.kind),
            step.address,
            status,
            attempts=o.attempts,
            bytes=o.bytes_moved,
            error=o.error,
            facts_digest=facts_digest(step),
        )

    def step_started(self, step: Step) -> StepOutcome | None:
        """Record ``step`` as running; a failed outcome when that could not be recorded
        (a step not recorded as started would not be resumed, so it must not run)."""
        try:
            self._record(step, StepStatus.RUNNING)
        except Exception as exc:
            return StepOutcome(
                FAILED, f"could not record the step in the state DB: {describe(exc)}"
            )
        return None

    def step_ended(self, step: Step, outcome: StepOutcome) -> StepOutcome:
        """Record a finished step (and the accession ID a creation got); the outcome to
        count, failed when the record could not be written (an unrecorded step is redone)."""
        try:
            self._record(step, StepStatus.DONE if outcome.ok else StepStatus.FAILED, outcome)
            level = _CREATES.get(step.kind)
            if outcome.ok and level is not None and outcome.dest_id:
                assert isinstance(step, CreateSubject | CreateExperiment)
                source_id = step.source_id
                self.state.record_mapping(
                    self.pair, level, step.address, source_id, outcome.dest_id
                )
        except Exception as exc:
            return StepOutcome(
                FAILED, f"could not record the step in the state DB: {describe(exc)}"
            )
        return outcome

    def step_not_run(self, step: Step, outcome: StepOutcome) -> None:
        """A step that cannot run this time: recorded as failed, so history shows why."""
        try:
            self._record(step, StepStatus.FAILED, outcome)
        except Exception as exc:
            self.reporter.warning(f"could not record {step.id} in the state DB: {describe(exc)}")

    def subject_complete(self, subject: str, fingerprint: str) -> None:
        try:
            self.state.mark_subject_done(self.pair, subject, self.run_id, fingerprint)
        except Exception as exc:
            self.reporter.warning(f"could not mark subject {subject} done: {describe(exc)}")

    def scans_verified(self, exp_key: str, equal_scans: Iterable[ScanMemory]) -> None:
        """Remember scans verified equal, for later runs' comparisons."""
        try:
            self.state.remember_scans(self.pair, equal_scans)
        except Exception as exc:  # the transfer is fine; only the memory is lost
            self.reporter.warning(f"could not remember the scans of {exp_key}: {describe(exc)}")
