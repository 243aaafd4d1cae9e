"""``xnatctl project ...``: transfer, plan, apply, status, history, drift, checks.

Each command parses its options, calls one operation in ``xnatctl.operations`` (which calls
the planner), and hands the result to a view. Errors travel up to ``xnatctl.cli.main``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from xnatctl.connect import DestOptions
from xnatctl.errors import CliError, ExitCode, describe
from xnatctl.options import OutputOpt, ProfileOpt, app_context, with_dest_options

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
    if not dry_run:
        ops.check_local_dirs(app_ctx)
    src, dst = ops.connect_pair(app_ctx, dest, workers=cfg.scan_workers)
    with src, dst:
        made = ops.make_transfer_plan(app_ctx, src, dst, cfg, dest_profile=dest.profile or "")
        if plan_out is not None:
            ops.save(made.plan, plan_out)
            app_ctx.note(f"Saved the plan to {plan_out}")
        if dry_run:
            ops.show_plan(app_ctx, made.plan, show_in_sync=show_in_sync)
            return
        ops.show_plan(app_ctx, made.plan, show_in_sync=show_in_sync, summary_only=True)
        if not made.plan.steps:
            raise typer.Exit(ops.nothing_to_apply(app_ctx, made.plan))
        ops.confirm(app_ctx, made.plan, yes=yes)
        code = ops.run_apply(app_ctx, made.plan, src, dst, cfg, check_stale=False, made=made)
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
        ops.show_plan(app_ctx, plan, summary_only=True)
        if not plan.steps:
            raise typer.Exit(ops.nothing_to_apply(app_ctx, plan))
        ops.confirm(app_ctx, plan, yes=yes)
        code = ops.run_apply(
            app_ctx, plan, src, dst, cfg, check_stale=True, plan_file=str(plan_file)
        )
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
    from xnatctl import operations as ops

    app_ctx = app_context(ctx, output=output)
    ops.show_plan(app_ctx, load_plan(plan_file), show_in_sync=show_in_sync)


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

    app_ctx = app_context(ctx, output=output)
    ops.transfer_status(app_ctx, project)


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

    app_ctx = app_context(ctx, output=output)
    ops.transfer_history(app_ctx, project, limit)


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
    from xnatctl import operations as ops

    app_ctx = app_context(ctx, output=output)
    ops.unlock_project(app_ctx, project, dest_url=dest_url, yes=yes)


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

    app_ctx = app_context(ctx, profile=profile, output=output)
    ok = ops.transfer_check(app_ctx, project, dest_project, dest, probe=probe)
    if not ok:
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

    app_ctx = app_context(ctx, profile=profile, output=output)
    cfg = ops.effective_config(config, project, dest_project, None, copy_shared=copy_shared or None)
    try:
        src, dst = ops.connect_pair(app_ctx, dest, workers=cfg.scan_workers)
        with src, dst:
            in_sync = ops.drift_check(app_ctx, src, dst, cfg, checksums, show_in_sync=show_in_sync)
    except BackendError as exc:
        # Drift speaks three codes to scripts: 0 in sync, 2 drift, 1 could not tell.
        cause = describe(exc).removeprefix("error: ")
        raise CliError(f"drift check could not run: {cause}", code=ExitCode.FAILED) from exc
    if not in_sync:
        raise typer.Exit(int(ExitCode.DRIFT))
