"""How a run, a step and a pre-flight check ended, as stored and as reports show them.

``StrEnum`` so the value is the stored text: the DB, the JSON outputs and a plain ``==``
against a stored string all keep working, and no code spells a status as a literal.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["RUN_STATUSES", "STEP_STATUSES", "CheckStatus", "RunStatus", "StepStatus"]


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


class CheckStatus(StrEnum):
    """A ``transfer-check`` finding (pre-flight checks and the destination probe)."""

    PASS = "pass"
    FAIL = "fail"
    # Skipped because a check it builds on failed.
    NOT_RUN = "not_run"
    # A finding to know about (a version, a header rewrite), neither pass nor fail.
    INFO = "info"


RUN_STATUSES = tuple(RunStatus)
STEP_STATUSES = tuple(StepStatus)
