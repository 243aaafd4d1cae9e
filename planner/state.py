"""The state DB: what earlier runs did, so a run resumes and a plan knows what is done.

One SQLite file (``transfer.db`` in the config directory). Everything is keyed by the
*pair*: source URL and project, destination URL and project. Each role has its module:

- ``planner.state_base``: the connection (private file, WAL, one shared connection under a
  lock, write transactions), the schema check and pair ids;
- ``planner.state_schema``: the tables and their migrations (``schema_version``);
- ``planner.state_runs``: ``runs``, one row per transfer run;
- ``planner.state_steps``: ``steps`` (history) and ``step_status`` (latest per pair);
- ``planner.state_memory``: ``subjects_done``, ``mappings``, ``scan_memory`` and
  ``pairs.serial``, which a plan records so apply refuses a plan made before a later change;
- ``planner.state_locks``: ``locks``, one per destination project.

``StateDB`` is all of them on one connection, so callers open one object. All methods are
thread-safe, because apply records steps from worker threads.
"""

from __future__ import annotations

from planner.state_base import PairKey, StateError, pid_alive
from planner.state_locks import Lock, LockHeld, LockInfo, LockTable, lock_info_dict
from planner.state_memory import PairMemory
from planner.state_runs import RunLog
from planner.state_schema import MIGRATIONS, SCHEMA_VERSION
from planner.state_steps import StepLog
from planner.statuses import RUN_STATUSES, STEP_STATUSES, RunStatus, StepStatus

__all__ = [
    "MIGRATIONS",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "STEP_STATUSES",
    "Lock",
    "LockHeld",
    "LockInfo",
    "PairKey",
    "RunStatus",
    "StateDB",
    "StateError",
    "StepStatus",
    "lock_info_dict",
    "pid_alive",
]


class StateDB(RunLog, StepLog, PairMemory, LockTable):
    """The state DB; ``readonly`` opens an existing one for reports, which never write (a
    run left 'running' by a dead process is shown as interrupted, not recorded so)."""
