"""Apply's accounting on its own: groups, counts and the circuit breaker (planner.accounting)."""

from __future__ import annotations

import threading

from planner.accounting import Accounting, Listeners, Tally
from planner.plan import Step, StepKind
from planner.progress import NullReporter
from planner.steps import FAILED, OK, StepOutcome
from tests.planner.steps import Dest, make_step


def _step(subject: str, scan: str) -> Step:
    return make_step(
        StepKind.IMPORT_SCAN,
        f"{subject}/E1/scans/{scan}",
        Dest("P", subject, "E1"),
        id=f"import:{subject}/E1/{scan}",
        bytes=10,
    )


def _accounting(max_failures: int = 2) -> tuple[Accounting, list[str], list[str]]:
    verify: list[str] = []
    complete: list[str] = []
    acc = Accounting(
        Tally(),
        verify=False,
        max_failures=max_failures,
        cancel=threading.Event(),
        reporter=NullReporter(),
        listeners=Listeners(verify=verify.append, subject_complete=complete.append,
                            halted=lambda: False),
        conflicted_subjects=set(),
    )  # fmt: skip
    return acc, verify, complete


def test_counts_and_completed_subjects() -> None:
    acc, _verify, complete = _accounting()
    steps = [_step("S1", "1"), _step("S1", "2"), _step("S2", "1")]
    acc.expect(steps)
    acc.step_ended(steps[0], StepOutcome(OK, bytes_moved=10))
    assert complete == []  # S1 still has a step to go
    acc.step_ended(steps[1], StepOutcome(OK, bytes_moved=10))
    acc.step_ended(steps[2], StepOutcome(FAILED, "no"))
    assert complete == ["S1"]
    t = acc.tally
    assert (t.steps_run, t.scans_moved, t.bytes_moved) == (3, 2, 20)
    assert t.failed_steps == [(steps[2].id, "no")]


def test_the_circuit_breaker_trips_after_max_failures_subjects_in_a_row() -> None:
    acc, _verify, _complete = _accounting(max_failures=2)
    steps = [_step("S1", "1"), _step("S2", "1"), _step("S3", "1")]
    acc.expect(steps)
    acc.step_ended(steps[0], StepOutcome(FAILED, "no"))
    assert not acc.tally.circuit_breaker_tripped
    acc.step_ended(steps[1], StepOutcome(FAILED, "no"))
    assert acc.tally.circuit_breaker_tripped


def test_a_good_subject_resets_the_breaker() -> None:
    acc, _verify, _complete = _accounting(max_failures=2)
    steps = [_step("S1", "1"), _step("S2", "1"), _step("S3", "1")]
    acc.expect(steps)
    acc.step_ended(steps[0], StepOutcome(FAILED, "no"))
    acc.step_ended(steps[1], StepOutcome(OK))
    acc.step_ended(steps[2], StepOutcome(FAILED, "no"))
    assert not acc.tally.circuit_breaker_tripped


def test_read_one_at_a_time_finished_groups_are_counted_and_forgotten() -> None:
    # Steps told as they are read (walk order): S1 is sealed once S2's first step is read;
    # its groups are then counted and dropped, and S2 waits for ``all_read``.
    acc, _verify, complete = _accounting()
    s1a, s1b, s2 = _step("S1", "1"), _step("S1", "2"), _step("S2", "1")
    acc.read(s1a)
    acc.step_ended(s1a, StepOutcome(OK, bytes_moved=10))
    acc.read(s1b)
    acc.step_ended(s1b, StepOutcome(OK, bytes_moved=10))
    assert complete == [] and set(acc.subjects) == {"S1"}  # more of S1 may follow
    acc.read(s2)
    assert complete == ["S1"]
    assert set(acc.subjects) == {"S2"} and set(acc.experiments) == {"S2/E1"}
    assert (acc.tally.subjects.synced, acc.tally.experiments.synced) == (1, 1)
    acc.step_ended(s2, StepOutcome(OK, bytes_moved=10))
    assert complete == ["S1"]
    acc.all_read()
    assert complete == ["S1", "S2"] and acc.subjects == {} and acc.experiments == {}
    assert acc.tally.subjects.synced == 2
