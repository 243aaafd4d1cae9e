"""A plan's steps and changes as streams in walk order, one group at a time.

A plan read from its file (or made by the diff) hands its steps and changes over in walk
order: grouped by subject, then experiment, the project's own resources first, every step
after the steps it depends on. Apply, accounting and staleness rely on that order to keep
only one group's records (one experiment's) instead of the whole plan. A plan held in
memory as tuples (tests, small plans) may be in the diff's order (by address), so it is put
in walk order here once; that costs nothing it does not hold already.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import TypeVar

from planner.address import Address
from planner.plan import Change, ChangeStatus, Level, Plan, Step
from planner.planfile import walk_order

R = TypeVar("R", Change, Step)
GroupKey = tuple[str, str]


def group_of(address: str) -> GroupKey:
    """(subject, experiment) of an address, "" where it has none: the unit of walk order."""
    at = Address.parse(address)
    return (at.subject or "", at.experiment or "")


def _in_memory(plan: Plan) -> bool:
    return isinstance(plan.steps, tuple | list) and isinstance(plan.changes, tuple | list)


def ordered_steps(plan: Plan) -> Iterator[Step]:
    """The plan's steps in walk order (one pass over a streamed plan)."""
    if _in_memory(plan):
        return (r for r in walk_order(plan) if isinstance(r, Step))
    return iter(plan.steps)


def ordered_changes(plan: Plan) -> Iterator[Change]:
    """The plan's changes in walk order (one pass over a streamed plan)."""
    if _in_memory(plan):
        return (r for r in walk_order(plan) if isinstance(r, Change))
    return iter(plan.changes)


def groups(records: Iterable[R]) -> Iterator[tuple[GroupKey, list[R]]]:
    """Consecutive records of one group, as lists (one experiment's records at a time)."""
    key: Callable[[R], GroupKey] = lambda r: group_of(r.address)  # noqa: E731
    for k, run in groupby(records, key=key):
        yield k, list(run)


def with_changes(
    step_groups: Iterable[tuple[GroupKey, list[Step]]],
    change_groups: Iterable[tuple[GroupKey, list[Change]]],
) -> Iterator[tuple[GroupKey, list[Step], list[Change]]]:
    """Every change group with the steps of the same group (none when it has none).

    Both come in the same walk order and every step's entity has a change, so the groups
    with steps are a subsequence of the change groups: one pass over each, side by side.
    Step groups left over (a plan breaking that rule) come out last, without changes."""
    steps_it = iter(step_groups)
    pending = next(steps_it, None)
    for key, changes in change_groups:
        if pending is not None and pending[0] == key:
            yield key, pending[1], changes
            pending = next(steps_it, None)
        else:
            yield key, [], changes
    while pending is not None:
        yield pending[0], pending[1], []
        pending = next(steps_it, None)


@dataclass
class SubjectRecords:
    """What the end of a run needs to know of one subject's part of the plan, found in one
    pass over its changes and steps (a subject's groups come together)."""

    subject: str  # "" for the project's own records
    change: Change | None = None  # the subject's own
    has_steps: bool = False
    has_work: bool = False  # a change in it creates, differs or is in conflict
    quiet_experiments: int = 0  # experiments in sync or skipped, without steps
    experiments_with_steps: int = 0


_WORK = (ChangeStatus.CREATE, ChangeStatus.DIFFERS, ChangeStatus.CONFLICT)
QUIET = (ChangeStatus.IN_SYNC, ChangeStatus.SKIPPED)


def by_subject(plan: Plan) -> Iterator[SubjectRecords]:
    """One ``SubjectRecords`` per subject (and one for the project), in walk order."""
    merged = with_changes(groups(ordered_steps(plan)), groups(ordered_changes(plan)))
    current: SubjectRecords | None = None
    for (subject, exp), steps, changes in merged:
        if current is None or current.subject != subject:
            if current is not None:
                yield current
            current = SubjectRecords(subject)
        current.has_steps |= bool(steps)
        current.experiments_with_steps += bool(steps and exp)
        for c in changes:
            current.has_work |= c.status in _WORK
            if c.level == Level.SUBJECT:
                current.change = c
            elif c.level == Level.EXPERIMENT and c.status in QUIET and not steps:
                current.quiet_experiments += 1
    if current is not None:
        yield current
