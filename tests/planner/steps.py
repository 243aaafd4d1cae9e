"""Typed steps for unit tests, with every field a test does not care about filled in."""

from __future__ import annotations

from typing import Any

from planner.address import Address
from planner.plan import STEP_CLASSES, Dest, Level, Step, StepKind

_DEFAULTS: dict[str, Any] = {
    "source_id": "",
    "source_experiment_id": "",
    "scan_id": "",
    "xsi_type": "",
    "type": "",
    "uid": "",
    "date": "",
    "fields": {},
    "dest_state": "",
    "file_count": 0,
    "bytes": 0,
    "files_digest": "",
    "names_digest": "",
    "resource": "DICOM",
    "repair": False,
    "series_description": "",
    "label": "",
    "format": "",
    "content": "",
}


def make_step(kind: StepKind, address: str, dest: Dest, **fields: Any) -> Step:
    """A step of ``kind`` at ``address`` (its id is ``kind:address``), writing to ``dest``."""
    cls = STEP_CLASSES[kind]
    at = Address.parse(address)
    names = {f for f in cls.__dataclass_fields__}
    values = {k: v for k, v in _DEFAULTS.items() if k in names}
    if "owner_level" in names:
        values["owner_level"] = at.parent.level if kind == StepKind.UPLOAD_RESOURCE else at.level
    values.update(fields)
    values.setdefault("id", f"{kind.value}:{address}")
    return cls(kind=kind, address=address, level=at.level, dest=dest, **values)


__all__ = ["Dest", "Level", "Step", "make_step"]
