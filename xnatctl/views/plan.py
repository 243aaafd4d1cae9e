"""A plan for people (a tree plus one summary line) and for scripts (the file's JSON layout)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TextIO

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.tree import Tree

from planner import address as A
from planner.address import Address
from planner.plan import Change, ChangeStatus, Level, Plan
from planner.planfile import plan_to_dict, write_json
from xnatctl.views.summary import human_bytes, summary_line

MARKS: dict[ChangeStatus, tuple[str, str]] = {
    ChangeStatus.CREATE: ("+", "green"),
    ChangeStatus.DIFFERS: ("~", "yellow"),
    ChangeStatus.IN_SYNC: ("=", "dim"),
    ChangeStatus.CONFLICT: ("!", "bold red"),
    ChangeStatus.DEST_ONLY: ("-", "cyan"),
    ChangeStatus.SKIPPED: ("·", "dim"),
}
PROJECT_NODE = A.PROJECT
MAX_REASONS = 8  # per entity; the plan file has them all


def parent_address(address: str) -> str | None:
    """The tree node that holds this one: its parent's address; subjects and the project
    node hang from the root."""
    at = Address.parse(address)
    parent = at.parent
    if parent is None or at.level == Level.SUBJECT:
        return None
    return str(parent)


def _name(change_or_address: Change | str) -> str:
    address = change_or_address if isinstance(change_or_address, str) else change_or_address.address
    at = Address.parse(address)
    if at.resource is not None:
        return f"resource {at.resource}"
    if at.scan is not None:
        return f"scan {at.scan}"
    if at.assessor is not None:
        return f"assessor {at.assessor}"
    if at.experiment is not None:
        return at.experiment
    return at.subject if at.subject is not None else "project resources"


def _label(change: Change) -> str:
    mark, style = MARKS[change.status]
    text = f"[{style}]{mark} {escape(_name(change))}[/]"
    if change.level == Level.SUBJECT:
        text = f"[{style}]{mark} subject {escape(_name(change))}[/]"
    elif change.level == Level.EXPERIMENT:
        text = f"[{style}]{mark} experiment {escape(_name(change))}[/]"
    if change.bytes or change.files:
        noun = "file" if change.files == 1 else "files"
        text += f" [dim]({change.files} {noun}, {human_bytes(change.bytes)})[/]"
    if change.status in (ChangeStatus.SKIPPED, ChangeStatus.DEST_ONLY) and change.reason:
        text += f" [dim]{escape(change.reason)}[/]"
    return text


def _reasons(change: Change) -> list[str]:
    if change.status not in (ChangeStatus.DIFFERS, ChangeStatus.CONFLICT):
        return []
    lines = list(change.differences) or ([change.reason] if change.reason else [])
    if change.status == ChangeStatus.DIFFERS and change.reason:
        lines.append(change.reason)
    if len(lines) > MAX_REASONS:
        lines = [*lines[:MAX_REASONS], f"and {len(lines) - MAX_REASONS} more"]
    return lines


def _root(plan: Plan) -> Tree:
    return Tree(
        f"[bold]{escape(plan.source.project)}[/] ({escape(plan.source.url)}) → "
        f"[bold]{escape(plan.dest.project)}[/] ({escape(plan.dest.url)})"
    )


def add_nodes(root: Tree, changes: Iterable[Change], *, show_in_sync: bool = False) -> bool:
    """Hang ``changes`` (one subject's, or the whole plan's) under ``root``: subject →
    experiment → scan/resource, each with its action mark and size. False if none shows."""
    by_address = {c.address: c for c in changes}
    shown = [c for c in by_address.values() if show_in_sync or c.status != ChangeStatus.IN_SYNC]
    wanted: set[str] = set()
    for c in shown:
        addr: str | None = c.address
        while addr is not None and addr not in wanted:
            wanted.add(addr)
            addr = parent_address(addr)
    nodes: dict[str, Tree] = {}

    def node_for(address: str) -> Tree:
        if address in nodes:
            return nodes[address]
        parent = parent_address(address)
        holder = root if parent is None else node_for(parent)
        change = by_address.get(address)
        text = _label(change) if change is not None else escape(_name(address))
        node = holder.add(text)
        if change is not None:
            for line in _reasons(change):
                node.add(f"[dim]{escape(line)}[/]")
        nodes[address] = node
        return node

    for address in sorted(wanted, key=_sort_key):
        node_for(address)
    return bool(wanted)


def build_tree(plan: Plan, *, show_in_sync: bool = False) -> Tree:
    """The whole plan as one tree (for a small plan; ``render_plan`` prints a subject at a
    time)."""
    root = _root(plan)
    add_nodes(root, plan.changes, show_in_sync=show_in_sync)
    return root


def _by_subject(changes: Iterable[Change]) -> Iterator[list[Change]]:
    """The changes in runs of one top-level node each (the project's, then a subject's), as
    the plan file holds them."""
    run: list[Change] = []
    current = ""
    for c in changes:
        # The address's first part names its subject (or is ``@project``): enough to tell
        # one run from the next without parsing every address.
        subject = c.address.split("/", 1)[0]
        if run and subject != current:
            yield run
            run = []
        current = subject
        run.append(c)
    if run:
        yield run


class _Lines:
    """Rendered lines, printed as they are (already cut to the console's width)."""

    def __init__(self, lines: list[list[Segment]]) -> None:
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in self.lines:
            yield from line
            yield Segment.line()


def _print_part(console: Console, tree: Tree, *, first: bool, last: bool, skip: int) -> None:
    """Print one top-level node of the tree: the root's lines (``skip`` of them) only with
    the first, and drawn as the root's last child only when it is (a stand-in sibling,
    whose line is dropped, makes rich draw the others' guides)."""
    if not last:
        tree.add("…")
    lines = console.render_lines(tree, console.options, pad=False)
    lines = lines[(0 if first else skip) : (None if last else -1)]
    console.print(_Lines(lines))


def render_plan(plan: Plan, console: Console, *, show_in_sync: bool = False) -> None:
    """Print the plan tree (when there is anything to show) and the summary line.

    The tree is printed a subject at a time as the records are read (one small tree per
    subject, dropped once printed), drawn as the one tree of the whole plan would be: the
    project line first, the summary line last.
    """
    skip = len(console.render_lines(_root(plan), console.options, pad=False))
    held: Tree | None = None  # printed once the next part shows whether it was the last
    first = True
    for changes in _by_subject(plan.changes):
        tree = _root(plan)
        if not add_nodes(tree, changes, show_in_sync=show_in_sync):
            continue
        if held is not None:
            _print_part(console, held, first=first, last=False, skip=skip)
            first = False
        held = tree
    if held is not None:
        _print_part(console, held, first=first, last=True, skip=skip)
    console.print(escape(summary_line(plan)), highlight=False, soft_wrap=True)


def _sort_key(address: str) -> tuple[int, int, bool, str]:
    """The project first; then shallower before deeper, a subject's experiments before its
    resources, and by address."""
    at = Address.parse(address)
    depth, holder = 0, at.parent
    while holder is not None:
        depth, holder = depth + 1, holder.parent
    subject_resource = (
        at.subject is not None and not at.in_experiment and at.level == Level.RESOURCE
    )
    return (0 if at.subject is None else 1, depth, subject_resource, address)


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as scripts see it: the same layout as the saved plan file."""
    return plan_to_dict(plan)


def write_plan_json(plan: Plan, out: TextIO) -> None:
    """``plan_to_json``'s document, written a record at a time (``-o json``)."""
    write_json(plan, out)
