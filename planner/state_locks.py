"""Destination-project locks in the state DB: one per destination project, naming who holds
it (user, host, pid, operation, when), so two transfers never write to one project at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from planner.state_base import StateConnection, _now, _user, pid_alive

__all__ = ["Lock", "LockHeld", "LockInfo", "LockTable", "lock_info_dict"]


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) a destination project's lock."""

    owner: str
    host: str
    pid: int
    operation: str
    acquired_at: str

    def describe(self) -> str:
        return (
            f"{self.owner}@{self.host} (pid {self.pid}) running {self.operation} "
            f"since {self.acquired_at}"
        )


@dataclass(frozen=True)
class Lock:
    """A held lock. ``took_over`` names the previous holder when its process was gone."""

    dest_url: str
    dest_project: str
    token: str
    info: LockInfo
    took_over: LockInfo | None = None


class LockHeld(Exception):
    """Another live process is working on the same destination project."""

    def __init__(self, dest_url: str, dest_project: str, holder: LockInfo) -> None:
        self.dest_url = dest_url
        self.dest_project = dest_project
        self.holder = holder
        self.owner = holder.owner
        self.host = holder.host
        self.pid = holder.pid
        self.operation = holder.operation
        self.acquired_at = holder.acquired_at
        hint = (
            "wait for it to finish"
            if holder.host == socket.gethostname()
            else "wait for it to finish; if that process is gone, release the lock with "
            f"'xnatctl project unlock -P {dest_project}'"
        )
        super().__init__(
            f"project {dest_project} on {dest_url} is locked by {holder.describe()}; {hint}"
        )


class LockTable(StateConnection):
    """Take, release, list and break destination-project locks."""

    def acquire_lock(
        self, dest_url: str, dest_project: str, *, operation: str, owner: str = ""
    ) -> Lock:
        """Take the destination project's lock, or raise ``LockHeld``.

        A lock left by a process that no longer exists on this host is taken over, and the
        returned lock names the previous holder in ``took_over`` so the caller can warn. A
        lock from another host cannot be checked and is always respected.
        """
        info = LockInfo(
            owner=owner or _user(),
            host=self._host,
            pid=os.getpid(),
            operation=operation,
            acquired_at=_now(),
        )
        token = uuid.uuid4().hex
        with self._tx() as c:
            row = c.execute(
                "SELECT owner, host, pid, operation, acquired_at FROM locks"
                " WHERE dest_url = ? AND dest_project = ?",
                (dest_url, dest_project),
            ).fetchone()
            previous = None
            if row is not None:
                previous = LockInfo(row[0], row[1], int(row[2]), row[3], row[4])
                if previous.host != self._host or pid_alive(previous.pid):
                    raise LockHeld(dest_url, dest_project, previous)
            c.execute(
                "INSERT OR REPLACE INTO locks (dest_url, dest_project, token, owner, host, pid,"
                " operation, acquired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    dest_url,
                    dest_project,
                    token,
                    info.owner,
                    info.host,
                    info.pid,
                    info.operation,
                    info.acquired_at,
                ),
            )
        return Lock(dest_url, dest_project, token, info, previous)

    def release_lock(self, lock: Lock) -> None:
        """Release a lock we hold; a lock since taken over by someone else is left alone."""
        with self._tx() as c:
            c.execute(
                "DELETE FROM locks WHERE dest_url = ? AND dest_project = ? AND token = ?",
                (lock.dest_url, lock.dest_project, lock.token),
            )

    def lock_holder(self, dest_url: str, dest_project: str) -> LockInfo | None:
        rows = self._rows(
            "SELECT owner, host, pid, operation, acquired_at FROM locks"
            " WHERE dest_url = ? AND dest_project = ?",
            (dest_url, dest_project),
        )
        if not rows:
            return None
        r = rows[0]
        return LockInfo(r["owner"], r["host"], int(r["pid"]), r["operation"], r["acquired_at"])

    def locks(self, dest_project: str) -> list[tuple[str, LockInfo]]:
        """(destination URL, holder) of every lock on a project of this ID, on any server."""
        rows = self._rows(
            "SELECT dest_url, owner, host, pid, operation, acquired_at FROM locks"
            " WHERE dest_project = ? ORDER BY dest_url",
            (dest_project,),
        )
        return [
            (
                r["dest_url"],
                LockInfo(r["owner"], r["host"], int(r["pid"]), r["operation"], r["acquired_at"]),
            )
            for r in rows
        ]

    def held_by_live_local_process(self, info: LockInfo) -> bool:
        """Whether a lock's holder is a process running on this host (never to be broken)."""
        return info.host == self._host and pid_alive(info.pid)

    def break_lock(self, dest_url: str, dest_project: str) -> LockInfo | None:
        """Remove a lock whoever holds it (for a holder on another host known to be gone)."""
        with self._tx() as c:
            holder = self.lock_holder(dest_url, dest_project)
            c.execute(
                "DELETE FROM locks WHERE dest_url = ? AND dest_project = ?",
                (dest_url, dest_project),
            )
        return holder


def lock_info_dict(info: LockInfo) -> dict[str, Any]:
    return asdict(info)
