"""Plans as a first run makes them: fresh snapshots of both servers, no earlier state."""

from __future__ import annotations

from typing import Any

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.plan import Plan
from planner.snapshot import take_snapshot


def plan_between(src: Any, dst: Any, config: TransferConfig) -> Plan:
    """The plan from ``src`` to ``dst`` under ``config``, with no completed subjects."""
    return make_plan(
        take_snapshot(src, config.source_project),
        take_snapshot(dst, config.dest_project),
        config,
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )
