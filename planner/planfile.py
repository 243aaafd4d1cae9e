"""The saved plan file: the only code that knows its layout.

A plan file is versioned JSON. Reading checks the version and every required field and turns
any problem (missing file, bad JSON, a wrong or newer format, missing fields) into one
``UnusablePlan`` error, so callers have exactly one thing to catch. Writing is atomic: a
temporary file in the same directory, flushed to disk, then renamed over the target, so a
crash never leaves half a plan behind. Plans carry no credentials: ``Endpoint`` has none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from planner.plan import (
    COMPLETED_TEXT,
    NEW_DATA_TEXT,
    OTHER_FILTERS_TEXT,
    PLAN_FORMAT_VERSION,
    SERIES_UID_DIFFERS_TEXT,
    Change,
    ChangeReason,
    ChangeStatus,
    Endpoint,
    Level,
    Plan,
    Step,
    StepKind,
    Summary,
    summarize,
)
from planner.safewrite import replace_file


class UnusablePlan(Exception):
    """A plan file that cannot be used, and why."""

    def __init__(self, path: Path | str, why: str) -> None:
        super().__init__(f"cannot use the plan file {path}: {why}")
        self.path = Path(path)
        self.why = why


# -- live form <-> saved form ----------------------------------------------------------------


def _endpoint_to_dict(e: Endpoint) -> dict[str, Any]:
    return {
        "url": e.url,
        "project": e.project,
        "profile": e.profile,
        "server_version": e.server_version,
        "inventory_fingerprint": e.inventory_fingerprint,
    }


def _step_to_dict(s: Step) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind.value,
        "address": s.address,
        "level": s.level.value,
        "facts": s.facts,
        "target": s.target,
        "depends_on": list(s.depends_on),
        "reason": s.reason,
    }


def _change_to_dict(c: Change) -> dict[str, Any]:
    return {
        "address": c.address,
        "level": c.level.value,
        "status": c.status.value,
        "differences": list(c.differences),
        "reason": c.reason,
        "bytes": c.bytes,
        "files": c.files,
    }


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The saved layout, in a fixed key order."""
    return {
        "format_version": plan.format_version,
        "tool_version": plan.tool_version,
        "created_at": plan.created_at,
        "source": _endpoint_to_dict(plan.source),
        "dest": _endpoint_to_dict(plan.dest),
        "config": plan.config,
        "config_hash": plan.config_hash,
        "state_serial": plan.state_serial,
        "summary": asdict(plan.summary),
        "changes": [_change_to_dict(c) for c in plan.changes],
        "steps": [_step_to_dict(s) for s in plan.steps],
    }


_REQUIRED = (
    "format_version",
    "tool_version",
    "created_at",
    "source",
    "dest",
    "config",
    "config_hash",
    "state_serial",
    "summary",
    "changes",
    "steps",
)


def _endpoint_from_dict(d: dict[str, Any]) -> Endpoint:
    return Endpoint(
        url=d["url"],
        project=d["project"],
        profile=d.get("profile", ""),
        server_version=d.get("server_version", ""),
        inventory_fingerprint=d["inventory_fingerprint"],
    )


def _step_from_dict(d: dict[str, Any]) -> Step:
    return Step(
        id=d["id"],
        kind=StepKind(d["kind"]),
        address=d["address"],
        level=Level(d["level"]),
        facts=dict(d.get("facts", {})),
        target=dict(d.get("target", {})),
        depends_on=tuple(d.get("depends_on", ())),
        reason=d.get("reason", ""),
    )


def _change_from_dict(d: dict[str, Any]) -> Change:
    level, status = Level(d["level"]), ChangeStatus(d["status"])
    differences = tuple(d.get("differences", ()))
    reason = d.get("reason", "")
    return Change(
        address=d["address"],
        level=level,
        status=status,
        differences=differences,
        reason=reason,
        bytes=int(d.get("bytes", 0)),
        files=int(d.get("files", 0)),
        why=reason_from_text(level, status, reason, differences),
    )


def reason_from_text(
    level: Level, status: ChangeStatus, reason: str, differences: tuple[str, ...]
) -> ChangeReason:
    """The typed reason of a saved change, from the text the plan file keeps.

    Plan format 1 stores a change's reason as display text only; this is the one place that
    reads it back, so the rest of the code decides on ``Change.why`` alone. It gives what
    ``planner.diff`` records for the same change.
    """
    skipped_subject = status == ChangeStatus.SKIPPED and level == Level.SUBJECT
    if skipped_subject and reason.startswith(COMPLETED_TEXT):
        news = reason[len(COMPLETED_TEXT) :]
        stale = NEW_DATA_TEXT in news or OTHER_FILTERS_TEXT in news
        return ChangeReason.COMPLETED_STALE if stale else ChangeReason.COMPLETED
    conflict_scan = status == ChangeStatus.CONFLICT and level == Level.SCAN
    if conflict_scan and SERIES_UID_DIFFERS_TEXT in differences:
        return ChangeReason.SERIES_UID_DIFFERS
    return ChangeReason.NONE


def _summary_from_dict(d: dict[str, Any]) -> Summary:
    known = {f.name for f in fields(Summary)}
    return Summary(**{k: int(v) for k, v in d.items() if k in known})


def _check_consistent(plan: Plan) -> None:
    """A plan's summary is derived from its steps and changes; one that disagrees was edited
    by hand or damaged, and showing "No changes" above 29 steps would mislead."""
    if summarize(plan.steps, plan.changes) != plan.summary:
        raise ValueError("its summary does not match its steps (edited or damaged?)")
    ids = [s.id for s in plan.steps]
    if len(set(ids)) != len(ids):
        raise ValueError("it lists a step twice")
    from planner.planguard import check_plan

    check_plan(plan)  # every step writes and reads only where the header says


def check_version(data: Any) -> None:
    """Raise ``ValueError`` unless ``data`` is a plan dict of a format this code reads."""
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
    if version != PLAN_FORMAT_VERSION:
        raise ValueError(f"format version {version} is not supported; make a new plan")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"fields are missing: {', '.join(missing)}")


def plan_from_dict(data: dict[str, Any]) -> Plan:
    """The live plan; raises ``ValueError``/``KeyError``/``TypeError`` on a bad layout."""
    check_version(data)
    return Plan(
        source=_endpoint_from_dict(data["source"]),
        dest=_endpoint_from_dict(data["dest"]),
        steps=tuple(_step_from_dict(s) for s in data["steps"]),
        changes=tuple(_change_from_dict(c) for c in data["changes"]),
        summary=_summary_from_dict(data["summary"]),
        config=dict(data["config"]),
        config_hash=str(data["config_hash"]),
        state_serial=int(data["state_serial"]),
        created_at=str(data["created_at"]),
        tool_version=str(data["tool_version"]),
        format_version=int(data["format_version"]),
    )


# -- files -----------------------------------------------------------------------------------


def dumps(plan: Plan) -> str:
    """The file's text: the same plan always gives the same bytes."""
    return json.dumps(plan_to_dict(plan), indent=1, ensure_ascii=False) + "\n"


def save_plan(plan: Plan, path: Path | str) -> Path:
    """Write ``plan`` to ``path`` atomically (through a symlink; never over anything but a
    regular file, ``planner.safewrite``) and return the path."""
    replace_file(path, dumps(plan))
    return Path(path)


def load_plan(path: Path | str) -> Plan:
    """Read a saved plan; any problem is one ``UnusablePlan``."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnusablePlan(source, "the file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnusablePlan(source, f"it cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnusablePlan(
            source, f"it is not valid JSON (line {exc.lineno}: {exc.msg}); truncated?"
        ) from None
    try:
        plan = plan_from_dict(data)
        _check_consistent(plan)
        return plan
    except KeyError as exc:
        raise UnusablePlan(source, f"the field {exc.args[0]!r} is missing") from None
    except (ValueError, TypeError, AttributeError) as exc:
        why = str(exc) if isinstance(exc, ValueError) else "a field has the wrong type"
        raise UnusablePlan(source, why) from None
