"""Whether a process that left files or locks behind is still running.

A lock, an inventory store and a plan spool each carry the ID of the process that made them,
so that one left by a process killed before it could clean up is known and removed.
"""

from __future__ import annotations

import os

__all__ = ["pid_alive"]


def pid_alive(pid: int) -> bool:
    """True when a process with this pid runs on this host (or may: no permission).

    A zombie (exited, not yet reaped by its parent) still answers ``kill(pid, 0)`` but will
    never release a lock: it counts as gone.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return not _zombie(pid)
    except OSError:
        return False
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Whether ``pid`` is a zombie, by its state in ``/proc`` (False where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return bool(fields) and fields[0] in ("Z", "X")
