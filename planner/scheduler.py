"""Run jobs in dependency order: the walk of apply, knowing nothing of XNAT, HTTP or state.

A job is a plain callable with an id, the ids it depends on, an optional session key and an
``inline`` flag. The scheduler:

- defers a job until every job it depends on (among the planned ones) has finished, and ends
  a job without running it when one of them failed (an orphan);
- runs inline jobs on the calling thread (the coordinator), the rest in a pool with at most
  ``limit`` in flight, so memory and temp disk stay bounded;
- hands at most a few jobs of one session to the pool at a time (``planner.gates``'s
  ``SessionWindow``) while it moves on to other sessions;
- stops submitting once ``stopping()`` says so or ``cancel`` is set, and on Ctrl-C lets the
  jobs in flight end (a second Ctrl-C abandons them).

What a job's result means is the caller's business: ``settle`` turns it into ``Settled``
(ok, failed, or left open for the next run), and the scheduler only remembers that for the
dependency rule. Side work that must end before the run does (apply's verifications) is
handed over with ``watch``.

The jobs come from an iterator read lazily: the scheduler pulls the next job only while fewer
than ``read_ahead`` jobs are read and not ended (waiting, deferred or in flight), so a plan of
millions of steps never sits in memory. The dependency rule then needs no list of the plan's
jobs: jobs come after the jobs they depend on (a plan's walk order), so a dependency that is
not among the jobs read and not ended has ended already (or was never part of the run), and
only the IDs of failed jobs are kept, to orphan their dependents (failures are few). A caller
whose jobs may come out of that order passes ``planned`` (every job's ID): a dependency among
them then also waits until it has been read and has ended, as a finished-ok set is kept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, TypeVar

from planner.gates import SessionWindow

T = TypeVar("T")

# Jobs read and not ended, at most: enough to reach several sessions past one whose window is
# full (a session holds a few jobs in flight), small against a plan's millions of steps.
READ_AHEAD = 2000


class Settled(Enum):
    """How a finished job counts for the jobs that depend on it."""

    OK = "ok"
    FAILED = "failed"
    OPEN = "open"  # cancelled or stopped: neither done nor failed; the next run does it


@dataclass(frozen=True)
class Job(Generic[T]):
    """One unit of work: ``run()`` does it; ``item`` is what the caller knows it by."""

    id: str
    item: T
    run: Callable[[], Any]
    depends_on: tuple[str, ...] = ()
    session: str | None = None
    inline: bool = False


@dataclass
class Hooks(Generic[T]):
    """What the scheduler tells its caller.

    ``settle(job, result, error)``: a job ended (``error`` when ``run`` raised).
    ``orphan(job, failed_dep)``: a job that will not run; ``failed_dep`` is the dependency
    that failed, or "" when its dependencies never ran. Both return how the job counts."""

    settle: Callable[[Job[T], Any, BaseException | None], Settled]
    orphan: Callable[[Job[T], str], Settled]
    stopping: Callable[[], bool] = field(default=lambda: False)
    interrupted: Callable[[bool], None] = field(default=lambda again: None)


class Scheduler(Generic[T]):
    """The coordinator's loop over jobs; used from one thread (the coordinator) only."""

    def __init__(
        self,
        hooks: Hooks[T],
        *,
        limit: int,
        cancel: threading.Event,
        planned: Iterable[str] | None = None,
        window: SessionWindow[Job[T]] | None = None,
        read_ahead: int = READ_AHEAD,
    ) -> None:
        self.hooks = hooks
        self.limit = max(1, limit)
        self.cancel = cancel
        self.read_ahead = max(self.limit, read_ahead)
        self.planned = set(planned) if planned is not None else None
        self.window: SessionWindow[Job[T]] = window if window is not None else SessionWindow()
        self.open: set[str] = set()  # read and not ended (or left open: never ended)
        self.failed: set[str] = set()
        self.done: set[str] = set()  # ended ok; kept only with ``planned``
        self.deferred: list[Job[T]] = []
        self.inflight: dict[Future[Any], Callable[[Future[Any]], None]] = {}
        self.abandoned = False

    # -- the walk ------------------------------------------------------------------------

    def already_done(self, job_id: str) -> None:
        """A job an earlier run finished: its dependents may go (without ``planned``, a job
        not read is taken as ended already, so there is nothing to note)."""
        if self.planned is not None:
            self.done.add(job_id)

    def stopping(self) -> bool:
        return self.cancel.is_set() or self.hooks.stopping()

    def run(self, jobs: Iterable[Job[T]]) -> bool:
        """Run ``jobs`` in order (deferring the ones whose dependencies are not done) and
        wait for all of them; True when a second Ctrl-C abandoned jobs still in flight."""
        pool = ThreadPoolExecutor(max_workers=self.limit, thread_name_prefix="apply")
        try:
            try:
                self._walk(jobs, pool)
            except KeyboardInterrupt:
                self.cancel.set()
                self.hooks.interrupted(False)
                try:
                    self.drain()
                except KeyboardInterrupt:
                    self.abandoned = True
                    self.hooks.interrupted(True)
        finally:
            pool.shutdown(wait=not self.abandoned, cancel_futures=True)
        return self.abandoned

    def _walk(self, jobs: Iterable[Job[T]], pool: ThreadPoolExecutor) -> None:
        for job in jobs:
            if self.stopping():
                break
            self.open.add(job.id)
            self._release(pool)
            self.dispatch(job, pool)
            self._settle_down(pool, lambda: len(self.open) >= self.read_ahead)
        self._settle_down(pool, self.pending)
        self.drain()

    def _settle_down(self, pool: ThreadPoolExecutor, busy: Callable[[], bool]) -> None:
        """Wait for jobs to end while ``busy()`` (and the run is not stopping); jobs deferred
        on jobs that can no longer end are ended as orphans."""
        while busy() and not self.stopping():
            self._release_waiting(pool)
            if not self.inflight:
                self._fail_orphans()
                break
            self.collect(block=True)
            self._release_deferred(pool)

    def drain(self) -> None:
        """Wait for everything in flight (jobs and watched futures)."""
        while self.inflight:
            self.collect(block=True)

    def pending(self) -> bool:
        return bool(self.inflight or self.deferred or self.window.waiting())

    def dispatch(self, job: Job[T], pool: ThreadPoolExecutor, *, admitted: bool = False) -> None:
        """Run, submit, defer or end one job, by the state of its dependencies and of its
        session's window (``admitted``: the window let it through already)."""
        failed = next((d for d in job.depends_on if d in self.failed), None)
        if failed is not None:
            self._settled(job, self.hooks.orphan(job, failed))
            return
        if any(self._waits_for(d) for d in job.depends_on):
            self.deferred.append(job)
            return
        if job.inline:
            self.collect(block=False)
            self._end_inline(job)
            return
        key = job.session
        if key is not None and not admitted and not self.window.admit(key, job):
            return  # its session has enough in flight: it goes when one of them ends
        while len(self.inflight) >= self.limit:
            self.collect(block=True)
        self.inflight[pool.submit(job.run)] = lambda fut: self._end_pooled(job, fut)

    def watch(self, fut: Future[Any], done: Callable[[Future[Any]], None]) -> None:
        """Side work the run waits for; ``done(fut)`` is called on the coordinator."""
        self.inflight[fut] = done

    def collect(self, *, block: bool) -> None:
        """Hand the results of whatever finished to their callbacks."""
        if not self.inflight:
            return
        ready, _ = wait(
            list(self.inflight), timeout=0.5 if block else 0, return_when=FIRST_COMPLETED
        )
        for fut in ready:
            self.inflight.pop(fut)(fut)

    # -- internals -----------------------------------------------------------------------

    def _end_inline(self, job: Job[T]) -> None:
        try:
            result, error = job.run(), None
        except Exception as exc:
            result, error = None, exc
        self._settled(job, self.hooks.settle(job, result, error))

    def _end_pooled(self, job: Job[T], fut: Future[Any]) -> None:
        if job.session is not None:
            self.window.finished(job.session)
        try:
            result, error = fut.result(), None
        except Exception as exc:
            result, error = None, exc
        self._settled(job, self.hooks.settle(job, result, error))

    def _waits_for(self, dep: str) -> bool:
        """A dependency read and not ended (or, with ``planned``, one not read yet)."""
        if dep in self.open:
            return True
        return self.planned is not None and dep in self.planned and dep not in self.done

    def _settled(self, job: Job[T], how: Settled) -> None:
        """Forget a job that ended, but for a failed one's ID; one left open stays open,
        so its dependents never go (they end as orphans)."""
        if how == Settled.OPEN:
            return
        self.open.discard(job.id)
        if how == Settled.FAILED:
            self.failed.add(job.id)
        elif self.planned is not None:
            self.done.add(job.id)

    def _release(self, pool: ThreadPoolExecutor) -> None:
        self._release_waiting(pool)
        self._release_deferred(pool)

    def _release_waiting(self, pool: ThreadPoolExecutor) -> None:
        """Submit the jobs whose session has room again (the session window's rule)."""
        if self.stopping():
            return
        for job in self.window.ready():
            self.dispatch(job, pool, admitted=True)

    def _release_deferred(self, pool: ThreadPoolExecutor) -> None:
        if not self.deferred or self.stopping():
            return
        waiting, self.deferred = self.deferred, []
        for job in waiting:
            self.dispatch(job, pool)

    def _fail_orphans(self) -> None:
        """Deferred jobs whose dependencies can no longer run (a plan out of order)."""
        for job in self.deferred + self.window.drain():
            self._settled(job, self.hooks.orphan(job, ""))
        self.deferred = []
