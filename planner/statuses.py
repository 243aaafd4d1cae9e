"""How a run and a step ended, as the state DB stores them and reports show them.

``StrEnum`` so the value is the stored text: the DB, the JSON outputs and a plain ``==``
against a stored string all keep working, and no code spells a status as a literal.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RUN_STATUSES", "STEP_STATUSES", "RunStatus", "StepStatus"]


class RunStatus(StrEnum):
    """How a transfer run ended (``running`` while it goes)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    # A process gone without recording its end (killed, host rebooted).
    INTERRUPTED = "interrupted"
    ABORTED = "aborted"
    # Ended by an error no later step could avoid (a session that cannot be renewed).
    STOPPED = "stopped"


class StepStatus(StrEnum):
    """A step's status in the state DB: its history per run and its latest per pair."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def finished(self) -> bool:
        """Whether the step ended (so the DB records when)."""
        return self in (StepStatus.DONE, StepStatus.FAILED, StepStatus.SKIPPED)


RUN_STATUSES = tuple(RunStatus)
STEP_STATUSES = tuple(StepStatus)
