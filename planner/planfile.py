"""The saved plan file: the only code that knows its layout.

Plan format 2 is JSON Lines: one JSON object per line, each with a ``record`` key. The
first line is the ``header`` (version, endpoints, config, state serial); then ``change`` and
``step`` records in walk order (the project's resources, then each subject with its
experiments, parents before children; a step depends only on steps written above it); the
last line is the ``end`` record with the summary and the record counts, so a file cut short
is told from a whole one. ``docs/plans.md`` describes every field.

A plan is written and read one record at a time (``PlanWriter``, ``iter_plan``), so a plan of
a million changes never has to be one string; ``save_plan``/``load_plan`` are built on them
for the in-memory ``Plan``. Reading checks the version and every record as it comes and turns
any problem (missing file, bad JSON, an older or newer format, missing fields, a cut-off
file) into one ``UnusablePlan`` error, so callers have exactly one thing to catch. Writing is
atomic (``planner.safewrite``): a crash never leaves half a plan behind. Plans carry no
credentials: ``Endpoint`` has none.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from planner.address import Address
from planner.plan import (
    PLAN_FORMAT_VERSION,
    STEP_CLASSES,
    Change,
    ChangeReason,
    ChangeStatus,
    Dest,
    Endpoint,
    Level,
    Plan,
    Step,
    StepKind,
    Summary,
    SummaryCounter,
)
from planner.planviews import FileRecords, PlanHandle, Spool
from planner.safewrite import replacing


class UnusablePlan(Exception):
    """A plan file that cannot be used, and why."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"cannot use the plan file {path}: {why}")
        self.path = Path(path)
        self.why = why


OLDER_FORMAT = (
    "it is plan format {version}, from an older xnatctl; make a new plan with this version"
)


@dataclass(frozen=True)
class Header:
    """What the first record says: everything of a ``Plan`` but its records and summary."""

    source: Endpoint
    dest: Endpoint
    config: dict[str, Any]
    config_hash: str
    state_serial: int
    created_at: str
    tool_version: str
    format_version: int = PLAN_FORMAT_VERSION


@dataclass(frozen=True)
class End:
    """The last record: the summary, and how many records came before it."""

    summary: Summary
    changes: int
    steps: int


# -- live form <-> saved form ----------------------------------------------------------------


def _endpoint_to_dict(e: Endpoint) -> dict[str, Any]:
    return {
        "url": e.url,
        "project": e.project,
        "profile": e.profile,
        "server_version": e.server_version,
        "inventory_fingerprint": e.inventory_fingerprint,
    }


def _endpoint_from_dict(d: dict[str, Any]) -> Endpoint:
    return Endpoint(
        url=str(d["url"]),
        project=str(d["project"]),
        profile=str(d.get("profile", "")),
        server_version=str(d.get("server_version", "")),
        inventory_fingerprint=str(d["inventory_fingerprint"]),
    )


def header_to_dict(h: Header) -> dict[str, Any]:
    return {
        "record": "header",
        "format_version": h.format_version,
        "tool_version": h.tool_version,
        "created_at": h.created_at,
        "source": _endpoint_to_dict(h.source),
        "dest": _endpoint_to_dict(h.dest),
        "config": h.config,
        "config_hash": h.config_hash,
        "state_serial": h.state_serial,
    }


_HEADER_FIELDS = (
    "tool_version",
    "created_at",
    "source",
    "dest",
    "config",
    "config_hash",
    "state_serial",
)


def header_from_dict(d: dict[str, Any]) -> Header:
    check_version(d)
    missing = [k for k in _HEADER_FIELDS if k not in d]
    if missing:
        raise ValueError(f"fields are missing: {', '.join(missing)}")
    if not isinstance(d["config"], dict):
        raise TypeError("config")
    return Header(
        source=_endpoint_from_dict(d["source"]),
        dest=_endpoint_from_dict(d["dest"]),
        config=dict(d["config"]),
        config_hash=str(d["config_hash"]),
        state_serial=int(d["state_serial"]),
        created_at=str(d["created_at"]),
        tool_version=str(d["tool_version"]),
        format_version=int(d["format_version"]),
    )


def step_to_dict(s: Step) -> dict[str, Any]:
    """A step record: the common part, ``dest``, then its kind's own fields."""
    record: dict[str, Any] = {
        "record": "step",
        "id": s.id,
        "kind": s.kind.value,
        "address": s.address,
        "level": s.level.value,
        "depends_on": list(s.depends_on),
        "reason": s.reason,
        "dest": s.dest.as_dict(),
    }
    for name in _own_fields(type(s)):
        value = getattr(s, name)
        record[name] = list(value) if isinstance(value, tuple) else value
    if s.completed_before is not None:
        record["completed_before"] = s.completed_before
    return record


_COMMON = frozenset(f.name for f in fields(Step))


def _own_fields(cls: type[Step]) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if f.name not in _COMMON)


def _dest_from_dict(d: dict[str, Any]) -> Dest:
    known = {f.name for f in fields(Dest)}
    extra = set(d) - known
    if extra:
        raise ValueError(f"its dest names {sorted(extra)[0]!r}, which no step has")
    return Dest(**{k: _text(d[k]) for k in d})


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


# How a kind's own field is read back, by its type in ``planner.plan``.
_READERS: dict[str, Any] = {
    "str": _text,
    "int": lambda v: v if isinstance(v, int) and not isinstance(v, bool) else _wrong(v),
    "bool": lambda v: v if isinstance(v, bool) else _wrong(v),
    "Level": Level,
    "dict[str, str]": lambda v: {_text(k): _text(x) for k, x in v.items()},
    "dict[str, dict[str, str]]": lambda v: {
        _text(k): {_text(a): _text(b) for a, b in x.items()} for k, x in v.items()
    },
    "tuple[str, ...]": lambda v: tuple(_text(x) for x in v),
}


def _wrong(value: Any) -> Any:
    raise TypeError(value)


def step_from_dict(d: dict[str, Any]) -> Step:
    kind = StepKind(d["kind"])
    cls = STEP_CLASSES[kind]
    own = {f.name: _READERS[str(f.type)](d[f.name]) for f in fields(cls) if f.name not in _COMMON}
    completed = d.get("completed_before")
    step = cls(
        id=_text(d["id"]),
        kind=kind,
        address=_text(d["address"]),
        level=Level(d["level"]),
        dest=_dest_from_dict(d["dest"]),
        depends_on=tuple(_text(x) for x in d["depends_on"]),
        reason=_text(d.get("reason", "")),
        completed_before=None if completed is None else _READERS["int"](completed),
        **own,
    )
    Address.parse(step.address)  # a BadAddress is a ValueError
    return step


def change_to_dict(c: Change) -> dict[str, Any]:
    return {
        "record": "change",
        "address": c.address,
        "level": c.level.value,
        "status": c.status.value,
        "why": c.why.value,
        "reason": c.reason,
        "differences": list(c.differences),
        "bytes": c.bytes,
        "files": c.files,
    }


# The enums by value: a dictionary look-up, where calling the enum is slow over a million
# records; an unknown value is read by the enum, which raises its ``ValueError``.
_LEVELS = {m.value: m for m in Level}
_STATUSES = {m.value: m for m in ChangeStatus}
_WHYS = {m.value: m for m in ChangeReason}


def change_from_dict(d: dict[str, Any]) -> Change:
    level, status, why = d["level"], d["status"], d["why"]
    return Change(
        address=str(d["address"]),
        level=_LEVELS.get(level) or Level(level),
        status=_STATUSES.get(status) or ChangeStatus(status),
        differences=tuple(str(x) for x in d.get("differences", ())),
        reason=str(d.get("reason", "")),
        bytes=int(d.get("bytes", 0)),
        files=int(d.get("files", 0)),
        why=_WHYS[why] if why in _WHYS else ChangeReason(why),
    )


def end_to_dict(e: End) -> dict[str, Any]:
    return {"record": "end", "summary": asdict(e.summary), "changes": e.changes, "steps": e.steps}


def _summary_from_dict(d: dict[str, Any]) -> Summary:
    known = {f.name for f in fields(Summary)}
    return Summary(**{k: int(v) for k, v in d.items() if k in known})


def end_from_dict(d: dict[str, Any]) -> End:
    return End(_summary_from_dict(d["summary"]), int(d["changes"]), int(d["steps"]))


def check_version(data: Any) -> None:
    """Raise ``ValueError`` unless ``data`` is a plan header of the format this code reads."""
    if not isinstance(data, dict):
        raise ValueError("it is not a JSON object")
    if "format_version" not in data:
        raise ValueError("it has no format_version; it is not a plan file")
    version = data["format_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise ValueError(f"its format_version {version!r} is not a whole number")
    if version > PLAN_FORMAT_VERSION:
        raise ValueError(
            f"it has format version {version}, newer than this xnatctl reads "
            f"({PLAN_FORMAT_VERSION}); upgrade xnatctl or make a new plan"
        )
    if 1 <= version < PLAN_FORMAT_VERSION:
        raise ValueError(OLDER_FORMAT.format(version=version))
    if version != PLAN_FORMAT_VERSION:
        raise ValueError(f"format version {version} is not supported; make a new plan")


# -- the one-document form, for ``-o json`` and scripts -------------------------------------


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The whole plan as one JSON object (the ``-o json`` output): the header's fields, the
    summary, and the change and step records, in a fixed key order."""
    head = header_to_dict(header_of(plan))
    del head["record"]
    changes = [change_to_dict(c) for c in plan.changes]
    steps = [step_to_dict(s) for s in plan.steps]
    for record in (*changes, *steps):
        del record["record"]
    return {**head, "summary": asdict(plan.summary), "changes": changes, "steps": steps}


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The live plan from ``plan_to_dict``'s object; raises ``ValueError``/``KeyError``/
    ``TypeError`` on a bad layout."""
    h = header_from_dict(data)
    missing = [k for k in ("summary", "changes", "steps") if k not in data]
    if missing:
        raise ValueError(f"fields are missing: {', '.join(missing)}")
    changes = tuple(change_from_dict(c) for c in data["changes"])
    steps = tuple(step_from_dict(s) for s in data["steps"])
    return _plan(h, changes, steps, _summary_from_dict(data["summary"]))


def header_of(plan: Plan) -> Header:
    """The header record of ``plan``: what the file says before its records."""
    return Header(
        source=plan.source,
        dest=plan.dest,
        config=plan.config,
        config_hash=plan.config_hash,
        state_serial=plan.state_serial,
        created_at=plan.created_at,
        tool_version=plan.tool_version,
        format_version=plan.format_version,
    )


def _plan(h: Header, changes: Any, steps: Any, s: Summary) -> Plan:
    return Plan(
        source=h.source,
        dest=h.dest,
        steps=steps,
        changes=changes,
        summary=s,
        config=h.config,
        config_hash=h.config_hash,
        state_serial=h.state_serial,
        created_at=h.created_at,
        tool_version=h.tool_version,
        format_version=h.format_version,
    )


# -- writing, one record at a time -----------------------------------------------------------


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


class PlanWriter:
    """Writes a plan file record by record; the file appears (by atomic rename) only when
    ``close`` has written the end record, so a failed or abandoned write leaves the old file.

    ``with PlanWriter(path) as w: w.header(h); w.change(c); w.step(s); ...; w.close(summary)``
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._cm = replacing(path)
        self._fh: TextIO | None = None
        self._written: set[str] = set()
        self._changes = 0
        self._closed = False

    def __enter__(self) -> PlanWriter:
        self._fh = self._cm.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None and not self._closed:
            error = ValueError("the plan was not closed with its summary")
            self._cm.__exit__(ValueError, error, None)  # drops the temporary file
            raise error
        self._cm.__exit__(kind, exc, tb)

    def _put(self, record: dict[str, Any]) -> None:
        if self._fh is None or self._closed:
            raise ValueError("the plan writer is not open")
        self._fh.write(_line(record))

    def header(self, h: Header) -> None:
        self._put(header_to_dict(h))

    def change(self, c: Change) -> None:
        self._put(change_to_dict(c))
        self._changes += 1

    def step(self, s: Step) -> None:
        """Write one step; every step it depends on must have been written already."""
        missing = [d for d in s.depends_on if d not in self._written]
        if missing:
            raise ValueError(f"step {s.id} depends on {missing[0]}, not written before it")
        if s.id in self._written:
            raise ValueError(f"step {s.id} is written twice")
        self._put(step_to_dict(s))
        self._written.add(s.id)

    def close(self, summary: Summary) -> None:
        self._put(end_to_dict(End(summary, self._changes, len(self._written))))
        self._closed = True


def walk_order(plan: Plan) -> Iterator[Change | Step]:
    """The records of a plan held in memory in file order (``ordered``)."""
    return ordered(plan.changes, plan.steps)


def ordered(changes: Iterable[Change], steps: Iterable[Step]) -> Iterator[Change | Step]:
    """Records in file order: grouped by subject, then experiment (the project's own
    resources first), each group's changes then its steps, a step after those it depends
    on. The diff hands it one subject's or experiment's records at a time."""
    groups: dict[tuple[str, str], tuple[list[Change], list[Step]]] = {}
    for c in changes:
        groups.setdefault(group_key(c.address), ([], []))[0].append(c)
    for s in steps:
        groups.setdefault(group_key(s.address), ([], []))[1].append(s)
    for key in sorted(groups):
        group_changes, group_steps = groups[key]
        yield from group_changes
        yield from _dependency_order(group_steps)


def group_key(address: str) -> tuple[str, str]:
    at = Address.parse(address)
    return (at.subject or "", at.experiment or "")


def _dependency_order(steps: list[Step]) -> list[Step]:
    """``steps`` in their order, except that a step comes after the steps (of this group) it
    depends on."""
    ids = {s.id for s in steps}
    out: list[Step] = []
    placed: set[str] = set()
    pending = list(steps)
    while pending:
        ready = [s for s in pending if all(d in placed or d not in ids for d in s.depends_on)]
        if not ready:  # a cycle: leave the rest in order; the writer will say which
            ready = pending[:1]
        for s in ready:
            out.append(s)
            placed.add(s.id)
        pending = [s for s in pending if s.id not in placed]
    return out


def save_plan(plan: Plan, path: Path | str) -> Path:
    """Write ``plan`` to ``path`` atomically (through a symlink; never over anything but a
    regular file, ``planner.safewrite``) and return the path. A plan over a file (the
    diff's spool, or a loaded plan) is copied, a block at a time."""
    steps = plan.steps
    if isinstance(steps, FileRecords):
        with replacing(path) as dst:
            steps.handle.copy_to(dst)
        return Path(path)
    with PlanWriter(path) as w:
        w.header(header_of(plan))
        for record in walk_order(plan):
            if isinstance(record, Change):
                w.change(record)
            else:
                w.step(record)
        w.close(plan.summary)
    return Path(path)


def file_plan(handle: PlanHandle, head: Header, end: End, owner: Spool | None = None) -> Plan:
    """The plan whose steps and changes are views over the file open in ``handle`` (checked
    already, through that handle)."""
    changes: FileRecords[Change] = FileRecords(handle, Change, end.changes, _changes, owner)
    steps: FileRecords[Step] = FileRecords(handle, Step, end.steps, _steps, owner)
    return _plan(head, changes, steps, end.summary)


def _changes(path: Path, lines: Iterator[str]) -> Iterator[Change]:
    return _read_kind(path, lines, "change", change_from_dict)


def _steps(path: Path, lines: Iterator[str]) -> Iterator[Step]:
    return _read_kind(path, lines, "step", step_from_dict)


def _read_kind(path: Path, lines: Iterator[str], kind: str, make: Any) -> Iterator[Any]:
    """The records of one kind of a file checked whole before (``load_plan`` or the diff's
    writer; ``FileRecords`` makes sure it is unchanged): the other kinds' lines are passed
    over unparsed where they have the compact form this module writes."""
    own, compact = f'{{"record":"{kind}"', '{"record":"'
    try:
        for number, line in enumerate(lines, start=1):
            if line.startswith(compact):
                if not line.startswith(own):
                    continue
                record = json.loads(line)
            else:
                record = json.loads(line)
                if not isinstance(record, dict) or record.get("record") != kind:
                    continue
            yield _decode(path, number, lambda r=record: make(r), kind)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusablePlan(path, f"it cannot be read ({exc})") from None


def dumps(plan: Plan) -> str:
    """The file's text: the same plan always gives the same bytes."""
    lines = [_line(header_to_dict(header_of(plan)))]
    for record in walk_order(plan):
        as_dict = change_to_dict(record) if isinstance(record, Change) else step_to_dict(record)
        lines.append(_line(as_dict))
    lines.append(_line(end_to_dict(End(plan.summary, len(plan.changes), len(plan.steps)))))
    return "".join(lines)


# -- reading, one record at a time ----------------------------------------------------------


def iter_plan(path: Path | str) -> Iterator[Header | Change | Step | End]:
    """The plan file's header, then its changes and steps as they are read, then its end;
    each record is checked as it comes (a step may depend only on steps above it; the end
    record must be there and count what came before it). Any problem is ``UnusablePlan``."""
    return _checked_records(open_plan_file(Path(path)))


def open_plan_file(source: Path) -> PlanHandle:
    """The plan file, open for reading; ``UnusablePlan`` when it cannot be."""
    try:
        return PlanHandle(source)
    except FileNotFoundError:
        raise UnusablePlan(source, "the file does not exist") from None
    except OSError as exc:
        raise UnusablePlan(source, f"it cannot be read ({exc})") from None


def _checked_records(handle: PlanHandle) -> Iterator[Header | Change | Step | End]:
    try:
        yield from _records(handle.path, handle.lines())
    except (UnicodeDecodeError, OSError) as exc:
        raise UnusablePlan(handle.path, f"it cannot be read ({exc})") from None


def _records(source: Path, lines: Iterable[str]) -> Iterator[Header | Change | Step | End]:
    it = iter(lines)
    first = next(it, "")
    head = _parse_line(source, first, 1, it)
    if isinstance(head, dict) and "format_version" in head and head.get("record") != "header":
        _refuse_document(source, first + "".join(it))  # a whole plan of an older format?
    yield _decode(source, 1, lambda: header_from_dict(head), "header")
    seen: set[str] = set()
    changes = 0
    for number, text in enumerate(it, start=2):
        record = _parse_line(source, text, number, None)
        kind = record.get("record") if isinstance(record, dict) else None
        if kind == "change":
            changes += 1
            yield _decode(source, number, lambda r=record: change_from_dict(r), "change")
        elif kind == "step":
            step = _decode(source, number, lambda r=record: step_from_dict(r), "step")
            _check_step(source, number, step, seen)
            seen.add(step.id)
            yield step
        elif kind == "end":
            end = _decode(source, number, lambda r=record: end_from_dict(r), "end")
            if (end.changes, end.steps) != (changes, len(seen)):
                raise UnusablePlan(
                    source, f"its end record counts other records than it holds (line {number})"
                )
            if next(it, None) is not None:
                raise UnusablePlan(source, f"it goes on after its end record (line {number})")
            yield end
            return
        else:
            raise UnusablePlan(source, f"line {number} is not a plan record")
    raise UnusablePlan(source, "it ends before its end record; truncated?")


def _check_step(source: Path, number: int, step: Step, seen: set[str]) -> None:
    if step.id in seen:
        raise UnusablePlan(source, "it lists a step twice")
    later = [d for d in step.depends_on if d not in seen]
    if later:
        raise UnusablePlan(
            source, f"the step on line {number} depends on {later[0]}, not listed above it"
        )


def _decode(source: Path, number: int, make: Any, what: str) -> Any:
    try:
        return make()
    except KeyError as exc:
        raise UnusablePlan(
            source, f"the field {exc.args[0]!r} is missing (line {number}, {what})"
        ) from None
    except ValueError as exc:
        raise UnusablePlan(source, f"{exc} (line {number})" if number > 1 else str(exc)) from None
    except (TypeError, AttributeError):
        raise UnusablePlan(source, f"a field has the wrong type (line {number}, {what})") from None


def _parse_line(source: Path, text: str, number: int, rest: Iterator[str] | None) -> Any:
    """One record. A first line that is not a whole JSON object may begin a plan of format
    1 (one indented JSON document): it is read whole, to say so."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if rest is not None:
            _refuse_document(source, text + "".join(rest))
        cut = "" if text.endswith("\n") else "; truncated?"
        raise UnusablePlan(source, f"line {number} is not valid JSON ({exc.msg}){cut}") from None


def _refuse_document(source: Path, text: str) -> None:
    """Raise the one ``UnusablePlan`` a file that is not JSON Lines earns."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnusablePlan(
            source, f"it is not valid JSON (line {exc.lineno}: {exc.msg}); truncated?"
        ) from None
    try:
        check_version(data)
    except ValueError as exc:
        raise UnusablePlan(source, str(exc)) from None
    raise UnusablePlan(source, "it is not in JSON Lines, one record a line")


def load_plan(path: Path | str) -> Plan:
    """Check a saved plan in one pass and return it, its steps and changes views over the
    file; any problem is one ``UnusablePlan``.

    The pass checks every record (``iter_plan``: fields, dependencies written above, no step
    listed twice), every step against the header (``planner.planguard``), and that the
    summary is the count of the records. What it keeps: the step IDs (a hash set, for the
    duplicate and dependency checks), one source experiment ID per experiment, the counts.
    """
    from planner.planguard import PlanGuard, PlanMismatch

    source = Path(path)
    handle = open_plan_file(source)  # checked and then read through this one descriptor
    head: Header | None = None
    guard: PlanGuard | None = None
    counter = SummaryCounter()
    end: End | None = None
    for record in _checked_records(handle):
        if isinstance(record, Change):
            counter.change(record)
        elif isinstance(record, Step):
            counter.step(record)
            assert guard is not None
            try:
                guard.check(record)  # every step writes and reads only where the header says
            except PlanMismatch as exc:
                raise UnusablePlan(source, str(exc)) from None
        elif isinstance(record, Header):
            head, guard = record, PlanGuard(record.dest.project)
        else:
            end = record
    assert head is not None and end is not None
    if counter.summary() != end.summary:
        # Shown above its steps, a summary that disagrees ("No changes" above 29 steps)
        # would mislead: the file was edited by hand or damaged.
        raise UnusablePlan(source, "its summary does not match its steps (edited or damaged?)")
    if not handle.unchanged():
        raise UnusablePlan(source, "it was written to while it was being checked; load it again")
    return file_plan(handle, head, end)


# -- the one-document form, written piece by piece -----------------------------------------


def write_json(plan: Plan, out: Any, indent: int = 2) -> None:
    """Write ``plan_to_dict(plan)`` as one JSON document to ``out`` (``write(str)``), a
    record at a time: the same document ``json.dumps(plan_to_dict(plan), indent=indent)``
    gives, without the whole plan in memory."""
    head = header_to_dict(header_of(plan))
    del head["record"]
    top = {**head, "summary": asdict(plan.summary)}
    pad = " " * indent
    out.write("{\n")
    for key, value in top.items():
        text = json.dumps(value, indent=indent).replace("\n", "\n" + pad)
        out.write(f"{pad}{json.dumps(key)}: {text},\n")
    _write_list(out, "changes", (change_to_dict(c) for c in plan.changes), pad, indent)
    out.write(",\n")
    _write_list(out, "steps", (step_to_dict(s) for s in plan.steps), pad, indent)
    out.write("\n}\n")


def _write_list(out: Any, key: str, records: Iterable[dict[str, Any]], pad: str, n: int) -> None:
    out.write(f'{pad}"{key}": [')
    first = True
    for record in records:
        del record["record"]
        text = json.dumps(record, indent=n).replace("\n", "\n" + pad * 2)
        out.write(("\n" if first else ",\n") + pad * 2 + text)
        first = False
    out.write("]" if first else "\n" + pad + "]")
