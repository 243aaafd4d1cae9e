"""What apply tells the outside world while it runs.

The engine never prints: it reports to a ``Reporter``, and the command line decides how to
show it (a progress bar on a terminal, one log line per step otherwise, nothing in tests).
Reporters are called from worker threads as well as the coordinator, so an implementation
must be thread-safe.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol, runtime_checkable

from planner.plan import Step


class StepResult(StrEnum):
    """How a step ended, as a reporter is told (``Reporter.step_finished``)."""

    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"  # already done in an earlier run, or a dependency failed


STEP_OK = StepResult.OK
STEP_FAILED = StepResult.FAILED
STEP_SKIPPED = StepResult.SKIPPED


@runtime_checkable
class Reporter(Protocol):
    """Receives apply's progress; every method must return quickly and never raise."""

    def run_started(self, total_steps: int, total_bytes: int) -> None: ...

    def step_started(self, step: Step) -> None: ...

    def step_progress(self, step: Step, nbytes: int) -> None:
        """``nbytes`` more bytes of ``step`` moved (downloaded or uploaded)."""
        ...

    def step_finished(self, step: Step, status: str, error: str = "") -> None: ...

    def warning(self, text: str) -> None: ...

    def info(self, text: str) -> None: ...


class NullReporter:
    """Reports to nobody: the default when the caller passes no reporter."""

    def run_started(self, total_steps: int, total_bytes: int) -> None:
        pass

    def step_started(self, step: Step) -> None:
        pass

    def step_progress(self, step: Step, nbytes: int) -> None:
        pass

    def step_finished(self, step: Step, status: str, error: str = "") -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def info(self, text: str) -> None:
        pass


def step_bytes(step: Step) -> int:
    """Bytes a step is expected to move, from its facts (0 for creations)."""
    return step.planned_bytes
