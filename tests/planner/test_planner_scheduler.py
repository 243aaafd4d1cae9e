"""The dependency scheduler on plain callables: no HTTP, no state DB (planner.scheduler)."""

from __future__ import annotations

import threading
import time
from typing import Any

from planner.scheduler import Hooks, Job, Scheduler, Settled


class Recorder:
    """Hooks that note every end and orphan; a job's result ``False`` counts as failed."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.orphans: list[tuple[str, str]] = []
        self.errors: dict[str, BaseException] = {}
        self.stop = False

    def settle(self, job: Job[str], result: Any, error: BaseException | None) -> Settled:
        self.ended.append(job.id)
        if error is not None:
            self.errors[job.id] = error
            return Settled.FAILED
        if result is None:
            return Settled.OPEN
        return Settled.OK if result else Settled.FAILED

    def orphan(self, job: Job[str], failed_dep: str) -> Settled:
        self.orphans.append((job.id, failed_dep))
        return Settled.FAILED

    def hooks(self) -> Hooks[str]:
        return Hooks(settle=self.settle, orphan=self.orphan, stopping=lambda: self.stop)


def scheduler(rec: Recorder, jobs: list[Job[str]], *, limit: int = 4) -> Scheduler[str]:
    return Scheduler(
        rec.hooks(), limit=limit, cancel=threading.Event(), planned=[j.id for j in jobs]
    )


def job(id: str, fn: Any = lambda: True, **kw: Any) -> Job[str]:
    return Job(id=id, item=id, run=fn, **kw)


def test_a_job_waits_for_the_job_it_depends_on() -> None:
    order: list[str] = []
    gate = threading.Event()

    def slow_parent() -> bool:
        gate.wait(2)
        order.append("parent")
        return True

    def child() -> bool:
        order.append("child")
        return True

    jobs = [job("child", child, depends_on=("parent",)), job("parent", slow_parent)]
    rec = Recorder()
    s = scheduler(rec, jobs)
    threading.Timer(0.2, gate.set).start()
    assert s.run(jobs) is False
    assert order == ["parent", "child"]
    assert rec.orphans == []


def test_a_failed_parent_orphans_its_children() -> None:
    jobs = [
        job("parent", lambda: False),
        job("child", depends_on=("parent",)),
        job("other"),
    ]
    rec = Recorder()
    scheduler(rec, jobs).run(jobs)
    assert rec.orphans == [("child", "parent")]
    assert sorted(rec.ended) == ["other", "parent"]


def test_a_job_whose_parent_never_runs_ends_as_an_orphan() -> None:
    # "parent" is planned but left open (cancelled-like): its child can never go.
    jobs = [job("parent", lambda: None), job("child", depends_on=("parent",))]
    rec = Recorder()
    scheduler(rec, jobs).run(jobs)
    assert rec.orphans == [("child", "")]


def test_unplanned_dependencies_are_ignored() -> None:
    jobs = [job("child", depends_on=("done-long-ago",))]
    rec = Recorder()
    scheduler(rec, jobs).run(jobs)
    assert rec.ended == ["child"] and rec.orphans == []


def test_already_done_jobs_release_their_children() -> None:
    jobs = [job("child", depends_on=("parent",))]
    rec = Recorder()
    s = Scheduler(rec.hooks(), limit=2, cancel=threading.Event(), planned=["parent", "child"])
    s.already_done("parent")
    s.run(jobs)
    assert rec.ended == ["child"]


def _concurrency_probe() -> tuple[Any, list[int]]:
    lock = threading.Lock()
    state = {"now": 0}
    peaks: list[int] = []

    def work() -> bool:
        with lock:
            state["now"] += 1
            peaks.append(state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return True

    return work, peaks


def test_no_more_than_limit_jobs_are_in_flight() -> None:
    work, peaks = _concurrency_probe()
    jobs = [job(f"j{i}", work) for i in range(12)]
    rec = Recorder()
    scheduler(rec, jobs, limit=3).run(jobs)
    assert len(rec.ended) == 12
    assert max(peaks) <= 3
    assert max(peaks) >= 2  # they did run side by side


def test_one_session_has_at_most_two_jobs_in_flight() -> None:
    work, peaks = _concurrency_probe()
    jobs = [job(f"j{i}", work, session="p/s/e") for i in range(8)]
    rec = Recorder()
    scheduler(rec, jobs, limit=8).run(jobs)
    assert len(rec.ended) == 8
    assert max(peaks) <= 2


def test_inline_jobs_run_on_the_calling_thread() -> None:
    seen: list[str] = []
    jobs = [
        job("inline", lambda: seen.append(threading.current_thread().name) or True, inline=True)
    ]
    rec = Recorder()
    scheduler(rec, jobs).run(jobs)
    assert seen == [threading.current_thread().name]


def test_a_raising_job_is_settled_with_its_error() -> None:
    def boom() -> bool:
        raise RuntimeError("boom")

    jobs = [job("a", boom), job("b", boom, inline=True)]
    rec = Recorder()
    scheduler(rec, jobs).run(jobs)
    assert sorted(rec.errors) == ["a", "b"]


def test_cancel_stops_submitting() -> None:
    rec = Recorder()
    cancel = threading.Event()

    def first() -> bool:
        cancel.set()
        return True

    jobs = [job("first", first, inline=True), job("second"), job("third")]
    s = Scheduler(rec.hooks(), limit=2, cancel=cancel, planned=[j.id for j in jobs])
    s.run(jobs)
    assert rec.ended == ["first"]


def test_stopping_hook_stops_submitting() -> None:
    rec = Recorder()

    def trip() -> bool:
        rec.stop = True
        return False

    jobs = [job("trip", trip, inline=True), job("after")]
    scheduler(rec, jobs).run(jobs)
    assert rec.ended == ["trip"]


def test_watched_futures_are_waited_for() -> None:
    from concurrent.futures import Future

    rec = Recorder()
    got: list[Any] = []
    fut: Future[Any] = Future()
    jobs = [job("a")]
    s = scheduler(rec, jobs)
    s.watch(fut, lambda f: got.append(f.result()))
    threading.Timer(0.2, lambda: fut.set_result("verified")).start()
    s.run(jobs)
    assert got == ["verified"]


# -- jobs read lazily, in walk order (no ``planned``) ----------------------------------------


def streaming(rec: Recorder, *, limit: int = 2, read_ahead: int = 4) -> Scheduler[str]:
    return Scheduler(rec.hooks(), limit=limit, cancel=threading.Event(), read_ahead=read_ahead)


def test_jobs_are_read_only_while_few_are_open() -> None:
    # A job ends only when its gate opens; the iterator notes how far it was read meanwhile.
    gates = [threading.Event() for _ in range(20)]
    read: list[int] = []
    most_ahead: list[int] = []
    ended: list[int] = []

    def work(i: int) -> bool:
        gates[i].wait(2)
        ended.append(i)
        return True

    def jobs() -> Any:
        for i in range(20):
            read.append(i)
            most_ahead.append(len(read) - len(ended))
            yield job(f"j{i}", lambda i=i: work(i))

    def opener() -> None:
        for g in gates:
            time.sleep(0.01)
            g.set()

    rec = Recorder()
    s = streaming(rec, limit=2, read_ahead=4)
    threading.Thread(target=opener, daemon=True).start()
    s.run(jobs())
    assert len(rec.ended) == 20
    assert max(most_ahead) <= 5  # the four open ones and the one being read
    assert s.open == set() and s.failed == set()  # nothing of the ended jobs is kept


def test_in_walk_order_a_dependency_in_flight_is_waited_for() -> None:
    order: list[str] = []

    def slow_parent() -> bool:
        time.sleep(0.2)
        order.append("parent")
        return True

    jobs = [job("parent", slow_parent), job("child", lambda: order.append("child") or True,
                                            depends_on=("parent",))]  # fmt: skip
    rec = Recorder()
    streaming(rec).run(iter(jobs))
    assert order == ["parent", "child"]


def test_in_walk_order_only_failed_ids_are_remembered() -> None:
    jobs = [
        job("a", lambda: False),
        job("ok"),
        job("b", depends_on=("a",)),
        job("c", depends_on=("ok",)),
        job("d", depends_on=("b",)),
    ]
    rec = Recorder()
    s = streaming(rec, limit=1)
    s.run(iter(jobs))
    assert rec.orphans == [("b", "a"), ("d", "b")]
    assert sorted(rec.ended) == ["a", "c", "ok"]
    assert s.failed == {"a", "b", "d"} and s.open == set()


def test_in_walk_order_a_job_left_open_orphans_its_dependents() -> None:
    jobs = [job("parent", lambda: None), job("child", depends_on=("parent",))]
    rec = Recorder()
    streaming(rec).run(iter(jobs))
    assert rec.orphans == [("child", "")]
