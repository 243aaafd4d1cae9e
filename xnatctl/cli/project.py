"""``xnatctl project ...``: transfer, plan, apply, status, history, drift, checks.

Each command parses its options, calls one operation in ``xnatctl.operations`` (which calls
the planner), and hands the result to a view: a table for people, JSON with ``-o json``.
Asking before a change and ending the process are the command's too. Errors travel up to
``xnatctl.cli.main``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from xnatctl.connect import DestOptions
from xnatctl.errors import CliError, ExitCode, UsageError, describe
from xnatctl.options import OutputOpt, ProfileOpt, app_context, with_dest_options

if TYPE_CHECKING:
    from planner.apply import ApplyResult
    from planner.plan import Plan
    from xnatctl.context import AppContext
    from xnatctl.views.progress import SnapshotStatus

app = typer.Typer(help="Transfer, compare and inspect XNAT projects.", no_args_is_help=True)

ProjectOpt = Annotated[str, typer.Option("-P", "--project", help="Source project ID.")]
DestProjectOpt = Annotated[str, typer.Option("--dest-project", help="Destination project ID.")]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Transfer config (YAML) with filters and retry settings; see transfer-init.",
        dir_okay=False,
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(
        "--workers", min=1, help="Scans transferred in parallel (overrides scan_workers)."
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")]
ShowInSyncOpt = Annotated[
    bool, typer.Option("--show-in-sync", help="Also list entities that are already in sync.")
]
CopySharedOpt = Annotated[
    bool,
    typer.Option(
        "--copy-shared",
        help="Copy subjects and experiments shared in from other projects as the "
        "destination's own (sets copy_shared; default: report and skip them).",
    ),
]


# -- what the commands share: views, questions, the end of a run ------------------------------


def _show_plan(
    app_ctx: AppContext, plan: Plan, *, show_in_sync: bool = False, summary_only: bool = False
) -> None:
    """The plan as a tree and a summary line, only the line, or (``-o json``) the plan file's
    JSON (nothing at all for the summary alone, which scripts read from apply's JSON)."""
    from xnatctl.views.plan import render_plan, write_plan_json
    from xnatctl.views.summary import summary_line

    if app_ctx.json_output:
        if not summary_only:
            write_plan_json(plan, sys.stdout)  # a record at a time, never one big string
            sys.stdout.flush()
        return
    if summary_only:
        app_ctx.out.print(summary_line(plan), highlight=False)
    else:
        render_plan(plan, app_ctx.out, show_in_sync=show_in_sync)


def _nothing_to_apply(app_ctx: AppContext, plan: Plan) -> NoReturn:
    """End a plan with no steps: exit 0, unless conflicts keep data from moving, which a
    script rerunning the transfer must not read as success (exit 1)."""
    from xnatctl import operations as ops
    from xnatctl.views.report import render_conflicts

    ops.record_killed_runs(app_ctx)
    conflicts = ops.plan_conflicts(plan)
    if app_ctx.json_output:
        app_ctx.print_json(
            {"status": "no_changes", "conflicts": [list(c) for c in conflicts], "steps_run": 0}
        )
    elif conflicts:
        render_conflicts(conflicts, app_ctx.out)
    raise typer.Exit(int(ExitCode.FAILED) if conflicts else int(ExitCode.OK))


def _confirm(question: str, *, refusing: str, hint: str, declined: CliError) -> None:
    """Ask on the terminal (default no); without a terminal, refuse and say what to add."""
    if not sys.stdin.isatty():
        raise UsageError(
            f"refusing to {refusing} without confirmation, and there is no terminal to ask on",
            hint=hint,
        )
    if not typer.confirm(question, default=False, err=True):
        raise declined


def _confirm_apply(plan: Plan, *, yes: bool) -> None:
    """Ask before writing to the destination; without a terminal, insist on --yes."""
    if yes:
        return
    _confirm(
        f"Apply this plan to {plan.dest.project} on {plan.dest.url}?",
        refusing="change the destination",
        hint="review the plan, then run again with --yes",
        declined=CliError("nothing applied", code=ExitCode.FAILED, hint="the plan was declined"),
    )


def _end_process(message: str) -> NoReturn:
    """End at once, skipping every cleanup: worker threads still run abandoned steps, and
    must not record them (the state DB stays open for them until then)."""
    sys.stdout.flush()
    if message:
        sys.stderr.write(message)
    sys.stderr.flush()
    os._exit(int(ExitCode.INTERRUPTED))


def _apply(app_ctx: AppContext, run: Callable[..., ApplyResult]) -> int:
    """Apply (``run``: ``operations.run_apply`` but for its reporter) with progress on
    stderr, show the summary, and give the exit code."""
    from xnatctl import operations as ops
    from xnatctl.views.progress import progress_reporter
    from xnatctl.views.report import render_apply_summary

    reporter = progress_reporter(sys.stderr, force_terminal=None if not app_ctx.quiet else False)
    try:
        result = run(reporter=reporter)
    except ops.StepsAbandoned as exc:
        _end_process(f"{exc}\n")
    summary = result.summary()
    if app_ctx.json_output:
        app_ctx.print_json({"run_id": result.run_id, **summary})
    else:
        render_apply_summary(result, app_ctx.out)
    if result.abandoned_steps:
        _end_process("")
    return ops.apply_exit_code(result)


def _snapshot_status(app_ctx: AppContext) -> SnapshotStatus:
    """The status line shown on a terminal while both servers are read."""
    from xnatctl.views.progress import SnapshotStatus

    return SnapshotStatus(app_ctx.err, enabled=not app_ctx.quiet and app_ctx.err.is_terminal)


@app.command("transfer-init")
def transfer_init(
    ctx: typer.Context,
    project: ProjectOpt,
    dest_project: DestProjectOpt,
    file: Annotated[
        Path, typer.Option("-f", "--file", help="Where to write the config.", dir_okay=False)
    ] = Path("transfer.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write a commented transfer config with every field at its default."""
    from planner.template import write_template

    app_ctx = app_context(ctx)
    write_template(file, project, dest_project, force=force)
    app_ctx.note(f"Wrote {file}: edit its filters, then pass it with --config {file}")


@app.command("transfer")
@with_dest_options
def transfer(
    ctx: typer.Context,
    project: ProjectOpt,
    dest_project: DestProjectOpt,
    profile: ProfileOpt = None,
    dest: DestOptions = DestOptions(),
    config: ConfigOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the plan; change nothing.")
    ] = False,
    plan_out: Annotated[
        Path | None,
        typer.Option("--plan-out", help="Save the plan to this file.", dir_okay=False),
    ] = None,
    yes: YesOpt = False,
    workers: WorkersOpt = None,
    show_in_sync: ShowInSyncOpt = False,
    copy_shared: CopySharedOpt = False,
    output: OutputOpt = None,
) -> None:
    """Snapshot both servers, plan, confirm, apply scan by scan, verify, and summarise.

    With --dry-run it stops after showing (and, with --plan-out, saving) the plan.
    """
    from xnatctl import operations as ops

    app_ctx = app_context(ctx, profile=profile, output=output)
    cfg = ops.effective_config(
        config, project, dest_project, workers, copy_shared=copy_shared or None
    )
    ops.check_plan_out(plan_out)
    ops.check_local_dirs(app_ctx)  # a plan spools to the state directory too
    src, dst = ops.connect_pair(app_ctx, dest, workers=cfg.scan_workers)
    with src, dst:
        with _snapshot_status(app_ctx) as status:
            made = ops.make_transfer_plan(
                app_ctx, src, dst, cfg, dest_profile=dest.profile or "", on_progress=status
            )
        if plan_out is not None:
            ops.save(made.plan, plan_out)
            app_ctx.note(f"Saved the plan to {plan_out}")
        if dry_run:
            _show_plan(app_ctx, made.plan, show_in_sync=show_in_sync)
            return
        _show_plan(app_ctx, made.plan, show_in_sync=show_in_sync, summary_only=True)
        if not made.plan.steps:
            _nothing_to_apply(app_ctx, made.plan)
        _confirm_apply(made.plan, yes=yes)
        run = partial(ops.run_apply, app_ctx, made.plan, src, dst, cfg, made=made)
        code = _apply(app_ctx, partial(run, check_stale=False))
    raise typer.Exit(code)


@app.command("apply")
@with_dest_options
def apply(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(help="A plan saved with --plan-out.")],
    yes: YesOpt = False,
    workers: WorkersOpt = None,
    profile: ProfileOpt = None,
    dest: DestOptions = DestOptions(),
    output: OutputOpt = None,
) -> None:
    """Apply a saved plan, after checking it still describes both servers (else refuse).

    The plan names its servers by URL and profile; it logs in with those profiles (or the
    ones given here, which must point at the same URLs). It never holds credentials.
    """
    from planner.planfile import load_plan
    from xnatctl import operations as ops

    app_ctx = app_context(ctx, profile=profile, output=output)
    plan = load_plan(plan_file)
    ops.check_local_dirs(app_ctx)
    cfg = ops.config_from_plan(plan, workers)
    src, dst = ops.connect_for_plan(
        app_ctx, plan, dest, source_profile=profile, workers=cfg.scan_workers
    )
    with src, dst:
        _show_plan(app_ctx, plan, summary_only=True)
        if not plan.steps:
            _nothing_to_apply(app_ctx, plan)
        _confirm_apply(plan, yes=yes)
        run = partial(ops.run_apply, app_ctx, plan, src, dst, cfg, plan_file=str(plan_file))
        code = _apply(app_ctx, partial(run, check_stale=True))
    raise typer.Exit(code)


@app.command("show-plan")
def show_plan(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(help="A plan saved with --plan-out.")],
    show_in_sync: ShowInSyncOpt = False,
    output: OutputOpt = None,
) -> None:
    """Show a saved plan as a tree and a summary line (or as JSON with -o json)."""
    from planner.planfile import load_plan

    app_ctx = app_context(ctx, output=output)
    _show_plan(app_ctx, load_plan(plan_file), show_in_sync=show_in_sync)


@app.command("transfer-status")
def transfer_status(
    ctx: typer.Context,
    project: Annotated[
        str, typer.Option("-P", "--project", help="Project ID (source or destination).")
    ],
    output: OutputOpt = None,
) -> None:
    """The latest transfer of a project, from the local state DB (no network, no login)."""
    from xnatctl import operations as ops
    from xnatctl.views.report import render_status, run_to_json

    app_ctx = app_context(ctx, output=output)
    run, failed = ops.transfer_status(app_ctx, project)
    if app_ctx.json_output:
        app_ctx.print_json(run_to_json(run, failed))
    else:
        render_status(run, failed, app_ctx.out)


@app.command("transfer-history")
def transfer_history(
    ctx: typer.Context,
    project: Annotated[
        str, typer.Option("-P", "--project", help="Project ID (source or destination).")
    ],
    limit: Annotated[int, typer.Option("--limit", min=1, help="Most recent runs shown.")] = 20,
    output: OutputOpt = None,
) -> None:
    """Past transfers of a project, newest first, from the local state DB (no network)."""
    from xnatctl import operations as ops
    from xnatctl.views.report import render_history, run_to_json

    app_ctx = app_context(ctx, output=output)
    runs = ops.transfer_history(app_ctx, project, limit)
    if app_ctx.json_output:
        app_ctx.print_json({"project": project, "runs": [run_to_json(r) for r in runs]})
    elif not runs:
        app_ctx.out.print(f"No transfers of project {project} recorded.", highlight=False)
    else:
        render_history(runs, app_ctx.out)


@app.command("unlock")
def unlock(
    ctx: typer.Context,
    project: Annotated[str, typer.Option("-P", "--project", help="Destination project ID.")],
    dest_url: Annotated[
        str | None,
        typer.Option("--dest-url", help="The destination server, when locks on several exist."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Release without asking.")] = False,
    output: OutputOpt = None,
) -> None:
    """Release a destination project's lock whose holder is gone (e.g. on another host).

    Shows who holds it (user, host, pid, operation, since when); refuses while the holder is
    a process running on this host; asks before releasing unless --yes.
    """
    from planner.state import lock_info_dict
    from xnatctl import operations as ops

    app_ctx = app_context(ctx, output=output)
    found = ops.find_lock(app_ctx, project, dest_url=dest_url)
    if found is None:
        if app_ctx.json_output:
            app_ctx.print_json({"project": project, "released": False, "holder": None})
        else:
            app_ctx.out.print(f"No lock is held on project {project}.", highlight=False)
        return
    url, holder = found
    app_ctx.note(f"Project {project} on {url} is locked by {holder.describe()}")
    ops.refuse_live_holder(app_ctx, project, holder)
    if not yes:
        _confirm(
            f"Release it? Only if process {holder.pid} on {holder.host} is gone",
            refusing="release a lock",
            hint="make sure that process is gone, then run again with --yes",
            declined=CliError("the lock was kept", hint="nothing was changed"),
        )
    ops.release_lock(app_ctx, url, project)
    if app_ctx.json_output:
        app_ctx.print_json(
            {
                "project": project,
                "dest_url": url,
                "released": True,
                "holder": lock_info_dict(holder),
            }
        )
    else:
        app_ctx.out.print(f"Released the lock on {project} at {url}.", highlight=False)


@app.command("transfer-check")
@with_dest_options
def transfer_check(
    ctx: typer.Context,
    project: ProjectOpt,
    dest_project: DestProjectOpt,
    profile: ProfileOpt = None,
    dest: DestOptions = DestOptions(),
    probe: Annotated[
        bool,
        typer.Option(
            "--probe",
            help="Also import a tiny scratch session into the destination project as a "
            "transfer would, read and download it, report what the server changes, then "
            "delete it. Writes nothing else.",
        ),
    ] = False,
    output: OutputOpt = None,
) -> None:
    """Check both servers before a transfer: reachable, logins, projects, write rights, import.

    With --probe, also try a real import on a scratch subject and remove it again.
    Exits 1 when any check fails; each failure says what to do.
    """
    from xnatctl import operations as ops
    from xnatctl.views.report import checks_to_json, render_checks

    app_ctx = app_context(ctx, profile=profile, output=output)
    checks = ops.transfer_check(app_ctx, project, dest_project, dest, probe=probe)
    if app_ctx.json_output:
        app_ctx.print_json(checks_to_json(checks))
    else:
        render_checks(checks, app_ctx.out)
    if not all(c.ok for c in checks):
        raise typer.Exit(int(ExitCode.FAILED))


@app.command("drift")
@with_dest_options
def drift(
    ctx: typer.Context,
    project: ProjectOpt,
    dest_project: DestProjectOpt,
    profile: ProfileOpt = None,
    dest: DestOptions = DestOptions(),
    config: ConfigOpt = None,
    checksums: Annotated[
        bool | None,
        typer.Option(
            "--checksums/--no-checksums",
            help="Compare MD5 digests too (default: when both servers give them).",
            show_default=False,
        ),
    ] = None,
    show_in_sync: ShowInSyncOpt = False,
    copy_shared: CopySharedOpt = False,
    output: OutputOpt = None,
) -> None:
    """Compare the two servers, read-only. Exit 0 in sync, 2 drift found, 1 error."""
    from planner.errors import BackendError
    from xnatctl import operations as ops
    from xnatctl.views.report import render_drift

    app_ctx = app_context(ctx, profile=profile, output=output)
    cfg = ops.effective_config(config, project, dest_project, None, copy_shared=copy_shared or None)
    try:
        src, dst = ops.connect_pair(app_ctx, dest, workers=cfg.scan_workers)
        with src, dst, _snapshot_status(app_ctx) as status:
            report = ops.drift_check(app_ctx, src, dst, cfg, checksums, on_progress=status)
    except BackendError as exc:
        # Drift speaks three codes to scripts: 0 in sync, 2 drift, 1 could not tell.
        cause = describe(exc).removeprefix("error: ")
        raise CliError(f"drift check could not run: {cause}", code=ExitCode.FAILED) from exc
    if app_ctx.json_output:
        app_ctx.print_json(report.to_dict(include_in_sync=show_in_sync))
    else:
        render_drift(report, app_ctx.out, show_in_sync=show_in_sync)
    if not report.in_sync:
        raise typer.Exit(int(ExitCode.DRIFT))
