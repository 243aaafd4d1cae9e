"""Who may write to a destination session when: the rule that keeps imports from racing.

On XNAT 1.8.10+ a DICOM-zip import goes through the prearchive: uploads of one
project/StudyInstanceUID/label share one prearchive session while it is receiving
(``PrearcDatabase.eitherGetOrCreateSession``), and the archiver refuses to archive a session
that is being archived or has open workflows (``PrearcSessionArchiver``:
``preventConcurrentArchiving``, "Duplicate archive attempt"), which DICOM-zip reports as a
bare 400 "unable to archive for the Prearchive session". Two imports into one session at
the same time therefore fail or, worse, archive each other's half-received files.

So writes to one destination session are serialized while different sessions go in
parallel, in two parts:

- ``SessionWindow`` (the coordinator's rule): at most ``per_session`` steps of one session
  are handed to the pool at a time; the rest wait their turn while the coordinator moves on
  to other sessions, so the pool's slots are spread over sessions.
- ``TransferSlots`` (the workers' rule): ``workers`` slots bound the transfers running at
  once, and one lock per session lets a single step write to it at a time. A step waiting
  for its session's lock gives its slot back, so a download of another scan (of this
  session or another) runs meanwhile: downloads overlap imports.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from planner.plan import Step

T = TypeVar("T")

# Steps of one session in the pool at once: one writing to it, one downloading the next zip.
STEPS_AHEAD_PER_SESSION = 2


def session_key(step: Step) -> str | None:
    """The destination session a step writes to (``project/subject/experiment``), if any."""
    d = step.dest
    if not d.experiment or not d.subject:
        return None
    return f"{d.project}/{d.subject}/{d.experiment}"


class SessionWindow(Generic[T]):
    """Admits at most ``per_session`` items of one session; queues the rest in order.

    Used by the coordinator thread only; not thread-safe.
    """

    def __init__(self, per_session: int = STEPS_AHEAD_PER_SESSION) -> None:
        self.per_session = max(1, per_session)
        self._running: Counter[str] = Counter()
        self._waiting: dict[str, deque[T]] = {}

    def admit(self, key: str, item: T) -> bool:
        """True when ``item`` may go now (it is counted as running); else it is queued."""
        if self._running[key] < self.per_session and not self._waiting.get(key):
            self._running[key] += 1
            return True
        self._waiting.setdefault(key, deque()).append(item)
        return False

    def finished(self, key: str) -> None:
        """One admitted item of ``key`` is done."""
        self._running[key] -= 1
        if self._running[key] <= 0:
            del self._running[key]

    def ready(self) -> list[T]:
        """Queued items that may go now, in queue order; they are counted as running."""
        out: list[T] = []
        for key in list(self._waiting):
            queue = self._waiting[key]
            while queue and self._running[key] < self.per_session:
                self._running[key] += 1
                out.append(queue.popleft())
            if not queue:
                del self._waiting[key]
        return out

    def waiting(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    def drain(self) -> list[T]:
        """Every queued item, removed (for a run that stops)."""
        out = [item for q in self._waiting.values() for item in q]
        self._waiting.clear()
        return out


class TransferSlots:
    """``workers`` transfer slots, and one writer per destination session (thread-safe)."""

    def __init__(self, workers: int) -> None:
        self._slots = threading.Semaphore(max(1, workers))
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    @contextmanager
    def running(self) -> Iterator[None]:
        """Hold a transfer slot for the length of a step."""
        self._slots.acquire()
        try:
            yield
        finally:
            self._slots.release()

    @contextmanager
    def exclusive(self, key: str | None) -> Iterator[None]:
        """Inside ``running()``: be the only writer to session ``key``.

        While the session is busy, the slot is given back, so waiting costs no transfer;
        it is taken again once the session is ours (a holder of a session lock waits only
        for a slot, never for another lock, so this cannot deadlock).
        """
        if key is None:
            yield
            return
        lock = self._lock(key)
        if not lock.acquire(blocking=False):
            self._slots.release()
            try:
                lock.acquire()
            finally:
                self._slots.acquire()
        try:
            yield
        finally:
            lock.release()
