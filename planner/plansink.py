"""Where the diff's records go as the walk makes them: a plan file (the spool) or memory.

The walk hands on one group of records at a time (a subject's own, or one experiment's);
``GroupedWriter`` puts them in file order (``planner.planfile.ordered``), merges in the
changes known before the walk (filtered, shared and completed entities) where they belong,
and passes each record to a sink, which counts the summary as records pass.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import TracebackType

from planner.plan import Change, Plan, Step, SummaryCounter
from planner.planfile import (
    End,
    PlanWriter,
    file_plan,
    group_key,
    header_of,
    open_plan_file,
    ordered,
)
from planner.planviews import Spool


class PlanSink:
    """Takes a plan's records in file order and, when closed, gives the plan."""

    def __init__(self, plan: Plan) -> None:
        self.base = plan  # the header's fields; its records and summary are the sink's
        self.counter = SummaryCounter()
        self.changes = 0
        self.steps = 0

    def __enter__(self) -> PlanSink:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def change(self, c: Change) -> None:
        self.counter.change(c)
        self.changes += 1

    def step(self, s: Step) -> None:
        self.counter.step(s)
        self.steps += 1

    def plan(self) -> Plan:
        raise NotImplementedError


class MemorySink(PlanSink):
    """Keeps the records: a plan held in memory, for tests and small tools."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self._changes: list[Change] = []
        self._steps: list[Step] = []

    def change(self, c: Change) -> None:
        super().change(c)
        self._changes.append(c)

    def step(self, s: Step) -> None:
        super().step(s)
        self._steps.append(s)

    def plan(self) -> Plan:
        return replace(
            self.base,
            changes=tuple(self._changes),
            steps=tuple(self._steps),
            summary=self.counter.summary(),
        )


class SpoolSink(PlanSink):
    """Writes the records to a spool file in ``directory`` as they come; the plan's steps
    and changes are views over it, and the file goes when the plan does."""

    def __init__(self, plan: Plan, directory: Path) -> None:
        super().__init__(plan)
        self.spool = Spool(directory)
        self.writer = PlanWriter(self.spool.path)
        self.header = header_of(plan)

    def __enter__(self) -> SpoolSink:
        self.writer.__enter__()
        self.writer.header(self.header)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self.writer.close(self.counter.summary())
            self.writer.__exit__(kind, exc, tb)
        except BaseException:
            self.spool.remove()
            raise
        if kind is not None:
            self.spool.remove()

    def change(self, c: Change) -> None:
        super().change(c)
        self.writer.change(c)

    def step(self, s: Step) -> None:
        super().step(s)
        self.writer.step(s)

    def plan(self) -> Plan:
        end = End(self.counter.summary(), self.changes, self.steps)
        return file_plan(open_plan_file(self.spool.path), self.header, end, owner=self.spool)


class GroupedWriter:
    """Puts each group of the walk's records in file order and hands them to ``sink``,
    with the changes known before the walk (``early``) merged in where they belong."""

    def __init__(self, sink: PlanSink, early: list[Change]) -> None:
        self.sink = sink
        # (group, address) order; popped from the end as the walk passes their groups
        self.pending = sorted(early, key=lambda c: (group_key(c.address), c.address))
        self.pending.reverse()

    def group(self, changes: list[Change], steps: list[Step]) -> None:
        keys = [group_key(c.address) for c in changes] + [group_key(s.address) for s in steps]
        last = max(keys)
        early: list[Change] = []
        while self.pending and group_key(self.pending[-1].address) <= last:
            early.append(self.pending.pop())
        merged = sorted([*early, *changes], key=lambda c: c.address)
        self._emit(merged, sorted(steps, key=lambda s: (s.address, s.kind.value)))

    def finish(self) -> None:
        rest, self.pending = self.pending[::-1], []
        self._emit(rest, [])

    def _emit(self, changes: list[Change], steps: list[Step]) -> None:
        for record in ordered(changes, steps):
            if isinstance(record, Change):
                self.sink.change(record)
            else:
                self.sink.step(record)
