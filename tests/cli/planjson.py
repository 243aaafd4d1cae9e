"""A saved plan file (plan format 2, JSON Lines) as one editable dict, and back.

The tests that edit a plan by hand, as a user might, read its records into the ``-o json``
shape (header fields, ``changes``, ``steps``, ``summary``) and write them back in the same
record order, so what they check is apply's reading of the edited file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_plan(path: Path) -> dict[str, Any]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    head, end = records[0], records[-1]
    assert head["record"] == "header" and end["record"] == "end"
    return {
        **{k: v for k, v in head.items() if k != "record"},
        "summary": end["summary"],
        "changes": [r for r in records[1:-1] if r["record"] == "change"],
        "steps": [r for r in records[1:-1] if r["record"] == "step"],
        "_order": [r for r in records[1:-1]],
    }


def write_plan(path: Path, plan: dict[str, Any]) -> None:
    """Write ``read_plan``'s dict back (edits to its records are the same objects)."""
    head = {"record": "header"} | {
        k: v for k, v in plan.items() if k not in ("summary", "changes", "steps", "_order")
    }
    body = plan["_order"]
    end = {
        "record": "end",
        "summary": plan["summary"],
        "changes": len(plan["changes"]),
        "steps": len(plan["steps"]),
    }
    path.write_text("".join(json.dumps(r) + "\n" for r in (head, *body, end)))
