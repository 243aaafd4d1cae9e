"""How results read for people: apply summaries, run history, pre-flight checks, drift.

Each view has a table form (rich, for people) and the command prints ``*_json`` data with
``-o json`` instead. Views only format; they never decide an outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from planner.drift import DRIFT_CLASSES, IN_SYNC, DriftReport
from planner.preflight import Check
from planner.statuses import CheckStatus
from xnatctl.views.summary import human_bytes

if TYPE_CHECKING:
    from planner.accounting import Counts
    from planner.apply import ApplyResult

_MARKS = {
    CheckStatus.PASS: "[green]✔[/]",
    CheckStatus.FAIL: "[red]✘[/]",
    CheckStatus.INFO: "[blue]i[/]",
}
_PLAIN_MARKS = {CheckStatus.PASS: "ok", CheckStatus.FAIL: "FAIL", CheckStatus.INFO: "info"}


# -- apply -----------------------------------------------------------------------------------


def _counts_line(name: str, counts: Counts) -> str:
    text = f"{name}: {counts.synced} synced, {counts.failed} failed, {counts.skipped} skipped"
    if counts.pending:
        text += f", {counts.pending} left for the next run"
    return text


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def render_apply_summary(result: ApplyResult, console: Console) -> None:
    """The end-of-run summary: what moved, how fast, what failed, what was verified (read
    from the run's typed tally; scripts get ``result.summary()`` as JSON instead)."""
    conflicts = result.conflicts
    ok = result.ok and not result.failed_steps and not conflicts
    headline = f"Transfer {result.status}"
    if result.ok and conflicts:
        headline += f", but {_n(len(conflicts), 'conflict')} could not be transferred"
    console.print(f"[bold {'green' if ok else 'red'}]{headline}[/]", highlight=False)
    console.print(_counts_line("Subjects", result.subjects), highlight=False)
    console.print(_counts_line("Experiments", result.experiments), highlight=False)
    console.print(
        f"Moved {_n(result.scans_moved, 'scan')} and "
        f"{_n(result.resources_moved, 'resource')}: "
        f"{human_bytes(result.bytes_moved)} downloaded in {round(result.duration, 3):.1f} s "
        f"({human_bytes(int(round(result.throughput, 1)))}/s)",
        highlight=False,
    )
    verification = result.verification
    if verification.checked:
        line = (
            f"Verified {_n(verification.checked, 'experiment')}: "
            f"{verification.passed} passed, {verification.failed} failed"
        )
        if verification.digests_unavailable:
            line += " (sizes only: a server gave no MD5 digests)"
        console.print(line, highlight=False)
    if result.circuit_breaker_tripped:
        console.print(
            "[red]Stopped by the circuit breaker: too many subjects in a row failed "
            "(max_failures). Fix the cause and run again: it resumes.[/]"
        )
    _render_failed_steps(result.failed_steps, result.steps_not_run, console)
    if conflicts:
        render_conflicts(conflicts, console)


def _render_failed_steps(
    failed: list[tuple[str, str]], not_run: set[str], console: Console
) -> None:
    """The failures that are causes; steps that never ran because of them are only counted."""
    roots = [(step, error) for step, error in failed if step not in not_run]
    if failed:
        blocked = len(failed) - len(roots)
        line = f"[red]{_n(len(roots), 'step')} failed[/]"
        if blocked:
            line += f" ({blocked} more not run because a step they depend on failed)"
        console.print(line + ":")
        for step_id, error in roots[:50]:
            console.print(f"  {step_id}: {error}", highlight=False, markup=False, soft_wrap=True)
        if len(roots) > 50:
            console.print(f"  ... and {len(roots) - 50} more (see transfer-status)")


def render_conflicts(conflicts: list[tuple[str, str]], console: Console) -> None:
    console.print(
        f"[red]{_n(len(conflicts), 'conflict')} not transferred[/] (never overwritten; "
        "resolve them on the destination, then run again):"
    )
    for address, why in conflicts[:50]:
        console.print(f"  {address}: {why}", highlight=False, markup=False, soft_wrap=True)


# -- state DB --------------------------------------------------------------------------------


def run_to_json(run: dict[str, Any], failed_steps: list[dict[str, Any]] | None = None) -> dict:
    data = {
        "run_id": run.get("id"),
        "status": run.get("status"),
        "started_at": run.get("started_at"),
        "ended_at": run.get("ended_at"),
        "source": {"url": run.get("source_url"), "project": run.get("source_project")},
        "destination": {"url": run.get("dest_url"), "project": run.get("dest_project")},
        "plan_file": run.get("plan_file") or "",
        "counts": run.get("counts") or {},
        "verification": run.get("verification"),
        "steps": run.get("steps") or {},
        "host": run.get("host"),
        "pid": run.get("pid"),
        "user": run.get("user"),
    }
    if failed_steps is not None:
        data["failed_steps"] = [
            {
                "step_id": s.get("step_id"),
                "address": s.get("address"),
                "attempts": s.get("attempts"),
                "error": s.get("error"),
            }
            for s in failed_steps
        ]
    return data


def _count(run: dict[str, Any], group: str, key: str) -> int:
    return int(((run.get("counts") or {}).get(group) or {}).get(key, 0))


def render_history(runs: list[dict[str, Any]], console: Console) -> None:
    """One row per run; counts read synced/failed/skipped."""
    table = Table(title="Transfer runs (subjects and experiments: synced/failed/skipped)")
    for column in ("run", "status", "started", "ended", "to", "subjects", "experiments"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            str(run.get("id")),
            str(run.get("status")),
            _short_time(run.get("started_at")),
            _short_time(run.get("ended_at")),
            f"{run.get('dest_project')} @ {run.get('dest_url')}",
            _synced_failed_skipped(run, "subjects", compact=True),
            _synced_failed_skipped(run, "experiments", compact=True),
        )
    console.print(table)


def _short_time(value: Any) -> str:
    """``2026-11-27T18:24:01.123456+00:00`` reads as ``2026-11-27 18:24:01``."""
    text = str(value or "")
    return text.replace("T", " ")[:19]


def _synced_failed_skipped(run: dict[str, Any], group: str, *, compact: bool = False) -> str:
    synced, failed, skipped = (_count(run, group, k) for k in ("synced", "failed", "skipped"))
    if compact:
        return f"{synced}/{failed}/{skipped}"
    text = f"{synced} synced, {failed} failed, {skipped} skipped"
    pending = _count(run, group, "pending")
    return text + (f", {pending} left for the next run" if pending else "")


def render_status(run: dict[str, Any], failed: list[dict[str, Any]], console: Console) -> None:
    console.print(
        f"Run {run.get('id')}: [bold]{run.get('status')}[/] "
        f"(started {run.get('started_at')}, ended {run.get('ended_at') or '-'})"
    )
    console.print(
        f"From {run.get('source_project')} @ {run.get('source_url')} to "
        f"{run.get('dest_project')} @ {run.get('dest_url')}",
        highlight=False,
    )
    console.print(f"Subjects: {_synced_failed_skipped(run, 'subjects')}", highlight=False)
    console.print(f"Experiments: {_synced_failed_skipped(run, 'experiments')}", highlight=False)
    counts = run.get("counts") or {}
    if counts.get("circuit_breaker_tripped"):
        console.print("[red]Stopped by the circuit breaker: too many subjects in a row failed.[/]")
    conflicts = counts.get("conflicts") or []
    if conflicts:
        console.print(f"[red]{_n(len(conflicts), 'conflict')} not transferred.[/]")
    steps = run.get("steps") or {}
    if steps:
        listed = ", ".join(f"{n} {status}" for status, n in sorted(steps.items()))
        console.print(f"Steps recorded: {listed}", highlight=False)
    if failed:
        console.print(f"[red]{len(failed)} failed step(s):[/]")
        for step in failed:
            console.print(
                f"  {step.get('step_id')} (after {step.get('attempts')} attempt(s)): "
                f"{step.get('error')}",
                highlight=False,
                markup=False,
                soft_wrap=True,  # one line per step, so grep finds a step with its zip path
            )


# -- pre-flight checks -----------------------------------------------------------------------


def checks_to_json(checks: list[Check]) -> dict[str, Any]:
    return {
        "ok": all(c.ok for c in checks),
        "checks": [
            {"name": c.name, "status": c.status, "detail": c.detail, "hint": c.hint} for c in checks
        ],
    }


def render_checks(checks: list[Check], console: Console) -> None:
    for check in checks:
        mark = _MARKS.get(check.status, "[dim]-[/]")
        if console.no_color or not console.is_terminal:
            mark = _PLAIN_MARKS.get(check.status, "--")
        line = f"{mark} {check.name}"
        if check.detail:
            line += f": {check.detail}"
        console.print(line, highlight=False)
        if check.status == CheckStatus.FAIL and check.hint:
            console.print(f"    what to do: {check.hint}", highlight=False)
        elif check.status == CheckStatus.INFO and check.hint:
            console.print(f"    note: {check.hint}", highlight=False)
    failed = sum(1 for c in checks if c.status == CheckStatus.FAIL)
    if failed:
        console.print(f"[red]{failed} check(s) failed.[/]")
    else:
        console.print("[green]All checks passed.[/]")


# -- drift -----------------------------------------------------------------------------------


def render_drift(report: DriftReport, console: Console, *, show_in_sync: bool = False) -> None:
    rows = [e for e in report.entries if show_in_sync or e.drift_class != IN_SYNC]
    rows = [e for e in rows if e.drift_class in (*DRIFT_CLASSES, IN_SYNC)]
    if rows:
        table = Table(title="Drift", title_justify="left")
        table.add_column("class")
        table.add_column("level")
        table.add_column("address")
        table.add_column("how")
        for e in rows:
            table.add_row(e.drift_class, e.level, e.address, "; ".join(e.differences) or e.note)
        console.print(table)
    counts = ", ".join(f"{report.counts.get(c, 0)} {c}" for c in (*DRIFT_CLASSES, IN_SYNC))
    if report.checksums_note:
        console.print(f"Note: {report.checksums_note}", highlight=False)
    verdict = "[green]In sync.[/]" if report.in_sync else "[yellow]Drift found.[/]"
    console.print(f"{verdict} {counts}.", highlight=False)
