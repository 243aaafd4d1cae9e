"""The operations behind ``xnatctl project ...``: connect, snapshot, plan, apply, report.

Commands stay thin: they parse options and call one function here; this module joins the
pieces (clients, the planner, the state DB, the views) and turns outcomes into exit codes.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import typer

from planner.config import TransferConfig, load_config
from planner.diff import diff_inventories
from planner.errors import BackendError
from planner.inventory import Inventory
from planner.plan import ChangeStatus, Plan
from planner.planfile import save_plan
from planner.preflight import may_write
from planner.sameness import ScanMemory
from planner.snapshot import take_snapshot
from planner.state import PairKey, StateDB
from xnatctl import __version__
from xnatctl.client import XnatClient
from xnatctl.connect import DestOptions, client_for_profile, dest_client
from xnatctl.context import AppContext
from xnatctl.errors import CliError, ExitCode, UsageError
from xnatctl.fileio import ensure_private_dir

# -- config and connections ------------------------------------------------------------------


def effective_config(
    path: Path | None,
    project: str,
    dest_project: str,
    workers: int | None,
    *,
    copy_shared: bool | None = None,
) -> TransferConfig:
    """The transfer config with the command line's projects and worker count applied.

    A config that names other projects than the command line is refused: applying a config
    written for one study to another is a mistake worth stopping.
    """
    cfg = load_config(path) if path is not None else TransferConfig()
    for field_name, given in (("source_project", project), ("dest_project", dest_project)):
        in_file = getattr(cfg, field_name)
        if in_file and in_file != given:
            raise UsageError(
                f"{path} sets {field_name}: {in_file}, but the command line says {given}",
                hint=f"make them agree, or remove {field_name} from the config",
            )
    return cfg.with_overrides(
        source_project=project,
        dest_project=dest_project,
        scan_workers=workers,
        copy_shared=copy_shared,
    )


def config_from_plan(plan: Plan, workers: int | None) -> TransferConfig:
    """The config a saved plan was made with (it is recorded in the plan), plus --workers."""
    cfg = TransferConfig.from_dict(plan.config) if plan.config else TransferConfig()
    return cfg.with_overrides(
        source_project=plan.source.project,
        dest_project=plan.dest.project,
        scan_workers=workers,
    )


def connect_pair(
    ctx: AppContext, dest: DestOptions, *, workers: int
) -> tuple[XnatClient, XnatClient]:
    src = client_for_profile(ctx, ctx.profile, workers=workers)
    return src, dest_client(ctx, dest, workers=workers)


def connect_for_plan(
    ctx: AppContext,
    plan: Plan,
    dest: DestOptions,
    *,
    source_profile: str | None,
    workers: int,
) -> tuple[XnatClient, XnatClient]:
    """Clients for the servers a plan names; a profile pointing elsewhere is refused."""
    src_profile = source_profile or plan.source.profile or None
    if not src_profile:
        raise UsageError(
            "the plan does not name a source profile", hint="give the source profile with -p NAME"
        )
    src = client_for_profile(ctx, src_profile, workers=workers)
    dst_profile = dest.profile or (None if dest.inline else plan.dest.profile or None)
    if not dst_profile and not dest.inline:
        raise UsageError(
            "the plan does not name a destination profile (it was made with --dest-url)",
            hint="give --dest-profile NAME or --dest-url/--dest-user again",
        )
    dst = dest_client(ctx, replace(dest, profile=dst_profile), workers=workers)
    for side, client, endpoint_url in (
        ("source", src, plan.source.url),
        ("destination", dst, plan.dest.url),
    ):
        if client.url.rstrip("/") != endpoint_url.rstrip("/"):
            # A plan that cannot be used exits 1, whatever the reason (planner.planfile).
            raise CliError(
                f"the plan's {side} is {endpoint_url}, but the {side} given now is {client.url}",
                hint="apply a plan with the servers it was made for, or make a new plan",
            )
    return src, dst


# -- snapshots and plans ---------------------------------------------------------------------


@dataclass(frozen=True)
class MadePlan:
    plan: Plan
    source: Inventory
    dest: Inventory


def snapshot_pair(
    ctx: AppContext, src: XnatClient, dst: XnatClient, src_project: str, dst_project: str
) -> tuple[Inventory, Inventory]:
    """Both inventories, read at the same time (each side in its own bounded pool)."""
    done = {"source": (0, 0), "destination": (0, 0)}
    lock = threading.Lock()
    status = None
    if not ctx.quiet and ctx.err.is_terminal:
        status = ctx.err.status("Reading both servers...")
        status.start()

    def progress(side: str):
        def report(n: int, total: int) -> None:
            with lock:
                done[side] = (n, total)
                if status is not None:
                    s, d = done["source"], done["destination"]
                    status.update(
                        f"Reading both servers: source {s[0]}/{s[1]}, destination {d[0]}/{d[1]}"
                    )

        return report

    ctx.note(f"Reading {src_project} on {src.url} and {dst_project} on {dst.url}")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            fs = pool.submit(_snapshot_side, "source", src, src_project, progress("source"))
            fd = pool.submit(
                _snapshot_side, "destination", dst, dst_project, progress("destination")
            )
            source, dest = fs.result(), fd.result()
    finally:
        if status is not None:
            status.stop()
    ctx.note(
        f"Read {len(source.subjects)} source subjects ({source.requests} requests) and "
        f"{len(dest.subjects)} destination subjects ({dest.requests} requests)"
    )
    return source, dest


def _snapshot_side(
    side: str, client: XnatClient, project: str, on_progress: Callable[[int, int], None]
) -> Inventory:
    """One side's inventory; a failure names the side, since both may use one project ID."""
    try:
        return take_snapshot(client, project, on_progress=on_progress)
    except BackendError as exc:
        named = type(exc)(f"{side} {client.url}: {exc}", status=exc.status, reason=exc.reason)
        raise named from exc


def _pair(src_url: str, src_project: str, dst_url: str, dst_project: str) -> PairKey:
    return PairKey(src_url, src_project, dst_url, dst_project)


def make_transfer_plan(
    ctx: AppContext,
    src: XnatClient,
    dst: XnatClient,
    cfg: TransferConfig,
    *,
    dest_profile: str,
) -> MadePlan:
    source, dest = snapshot_pair(ctx, src, dst, cfg.source_project, cfg.dest_project)
    with StateDB(ctx.state_db_path) as state:
        pair = _pair(src.url, cfg.source_project, dst.url, cfg.dest_project)
        completed = state.completed_subjects(pair)
        serial = state.serial(pair)
        found = diff_inventories(
            source,
            dest,
            cfg,
            completed_subjects=completed,
            state_serial=serial,
            source_profile=getattr(src, "profile", "") or "",
            dest_profile=dest_profile,
            created_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            tool_version=__version__,
            memory=state.remembered_scans(pair),
        )
        # Scans found equal now are remembered (locally), so a later change on either
        # side still shows although DICOM is compared by names.
        state.remember_scans(pair, found.equal_scans)
    return MadePlan(found.plan, source, dest)


def check_local_dirs(ctx: AppContext) -> None:
    """Refuse an unusable state DB or work directory before any server is read: a snapshot
    can take minutes, and apply needs both to record steps and hold downloads."""
    from planner.state import StateError

    work = ctx.state_dir / "work"
    for directory in (ctx.state_dir, work, ctx.state_dir / "failed"):
        try:
            ensure_private_dir(directory)
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")
        except OSError as exc:
            raise CliError(
                f"the work directory {directory} cannot be used: {exc.strerror or exc}",
                hint="fix its permissions, or point XDG_STATE_HOME elsewhere",
            ) from None
    try:
        StateDB(ctx.state_db_path).close()
    except StateError as exc:
        raise CliError(
            str(exc), hint="fix it, or point XNATCTL_CONFIG_DIR at another directory"
        ) from None


def check_plan_out(path: Path | None) -> None:
    """Refuse an unwritable --plan-out before spending minutes on a snapshot."""
    if path is None:
        return
    from planner.safewrite import NotARegularFile, write_target

    if path.exists() and path.is_dir():
        raise UsageError(f"--plan-out {path} is a directory", hint="give a file name")
    try:
        path = write_target(path)  # a symlink is written through: check its target's directory
    except NotARegularFile as exc:
        raise UsageError(f"--plan-out {exc}") from None
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(
            f"--plan-out {path}: the directory {parent} does not exist",
            hint="create it first, or save the plan elsewhere",
        )
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--plan-out {path}: cannot write in {parent}", hint="choose another path")


def save(plan: Plan, path: Path) -> None:
    from planner.safewrite import NotARegularFile

    try:
        save_plan(plan, path)
    except NotARegularFile as exc:
        raise UsageError(f"--plan-out {exc}") from None
    except OSError as exc:
        raise CliError(
            f"could not save the plan to {path}: {exc.strerror or exc}",
            hint="choose another path with --plan-out",
        ) from None


def show_plan(
    ctx: AppContext, plan: Plan, *, show_in_sync: bool = False, summary_only: bool = False
) -> None:
    from xnatctl.views.plan import plan_to_json, render_plan
    from xnatctl.views.summary import summary_line

    if ctx.json_output:
        if not summary_only:
            ctx.print_json(plan_to_json(plan))
        return
    if summary_only:
        ctx.out.print(summary_line(plan), highlight=False)
    else:
        render_plan(plan, ctx.out, show_in_sync=show_in_sync)


def nothing_to_apply(ctx: AppContext, plan: Plan) -> int:
    """The exit code of a plan with no steps: 0, unless conflicts keep data from moving,
    which a script rerunning the transfer must not read as success."""
    from xnatctl.views.report import render_conflicts

    conflicts = [
        (c.address, "; ".join(c.differences) or c.reason)
        for c in plan.changes
        if c.status == ChangeStatus.CONFLICT
    ]
    if ctx.json_output:
        ctx.print_json(
            {"status": "no_changes", "conflicts": [list(c) for c in conflicts], "steps_run": 0}
        )
    elif conflicts:
        render_conflicts(conflicts, ctx.out)
    return int(ExitCode.FAILED) if conflicts else int(ExitCode.OK)


def confirm(ctx: AppContext, plan: Plan, *, yes: bool) -> None:
    """Ask before writing to the destination; without a terminal, insist on --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            "refusing to change the destination without confirmation, and there is no "
            "terminal to ask on",
            hint="review the plan, then run again with --yes",
        )
    question = f"Apply this plan to {plan.dest.project} on {plan.dest.url}?"
    if not typer.confirm(question, default=False, err=True):
        raise CliError("nothing applied", code=ExitCode.FAILED, hint="the plan was declined")


# -- apply -----------------------------------------------------------------------------------


def run_apply(
    ctx: AppContext,
    plan: Plan,
    src: XnatClient,
    dst: XnatClient,
    cfg: TransferConfig,
    *,
    check_stale: bool,
    made: MadePlan | None = None,
    plan_file: str = "",
) -> int:
    """Apply, show the summary, and give the exit code (1 if anything failed)."""
    from planner.apply import ApplyOptions, apply_plan
    from xnatctl.views.progress import progress_reporter
    from xnatctl.views.report import render_apply_summary

    options = ApplyOptions(
        workers=cfg.scan_workers,
        retry_count=cfg.scan_retry_count,
        retry_delay=cfg.scan_retry_delay,
        max_failures=cfg.max_failures,
        verify=cfg.verify_after_transfer,
        work_dir=ctx.state_dir / "work",
        failed_dir=ctx.state_dir / "failed",
        source_profile=plan.source.profile,
        dest_profile=plan.dest.profile,
        plan_file=plan_file,
        source_inventory=made.source if made is not None else None,
    )
    check_writable(dst, plan.dest.project)
    for directory in (ctx.state_dir, options.work_dir, options.failed_dir):
        ensure_private_dir(directory)  # kept zips hold patient data: owner only
    _remove_orphaned_downloads(ctx, options.work_dir)
    cancel = threading.Event()
    reporter = progress_reporter(sys.stderr, force_terminal=None if not ctx.quiet else False)
    state = StateDB(ctx.state_db_path)
    try:
        with reporter, sigterm_as_interrupt():
            try:
                result = apply_plan(
                    plan,
                    src,
                    dst,
                    state,
                    options,
                    reporter=reporter,
                    cancel=cancel,
                    check_stale=check_stale,
                )
            except KeyboardInterrupt:
                # Ctrl-C once more: apply has recorded the run as interrupted and released
                # its lock; steps in flight are abandoned (the next run redoes them safely).
                cancel.set()
                _exit_now("interrupted: run the same command again to resume\n")
    except BaseException:
        state.close()
        raise
    summary = result.summary()
    if ctx.json_output:
        ctx.print_json({"run_id": result.run_id, **summary})
    else:
        render_apply_summary(summary, ctx.out)
    if result.abandoned_steps:
        # Worker threads still run abandoned steps: end the process before they record
        # anything (the state DB stays open for them until then; the next run redoes them).
        _exit_now("")
    state.close()
    if result.stopped_by is not None:
        # Every later step would have met the same error (a session that expired with
        # nothing to renew it): it ends the command with its own code and hint.
        raise result.stopped_by
    if result.status == "interrupted":
        return int(ExitCode.INTERRUPTED)
    complete = result.ok and not result.failed_steps and not result.conflicts
    return int(ExitCode.OK) if complete else int(ExitCode.FAILED)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While applying, SIGTERM (a service manager stopping us, ``kill``) is a Ctrl-C: steps end
    at an attempt boundary, the lock is released and the run is recorded as interrupted."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _remove_orphaned_downloads(ctx: AppContext, work_dir: Path) -> None:
    """Delete temporary zips left by runs that were killed: they can be gigabytes each.

    Work files are named after their run (``{run_id}-...``); a file of a run that is not
    running any more (the state DB marks runs of dead processes interrupted) is an orphan.
    """
    with StateDB(ctx.state_db_path) as state:
        state.reap_dead_runs()
        for path in work_dir.glob("*"):
            run_id = path.name.split("-", 1)[0]
            run = state.run(int(run_id)) if run_id.isdigit() else None
            if run is not None and run.get("status") == "running":
                continue
            if path.is_file():
                path.unlink(missing_ok=True)
                ctx.note(f"Removed a temporary download left by an interrupted run: {path.name}")


def _exit_now(message: str) -> None:
    sys.stdout.flush()
    if message:
        sys.stderr.write(message)
    sys.stderr.flush()
    os._exit(int(ExitCode.INTERRUPTED))


def check_writable(dst: XnatClient, project: str) -> None:
    """Fail at once, not after every step has met a 403, when the user may not write."""
    if not may_write(dst, project):
        raise CliError(
            f"the user may not write to project {project} on {dst.url}",
            code=ExitCode.PERMISSION,
            hint="the user must be an owner or member of the destination project "
            "(see 'xnatctl project transfer-check')",
        )


# -- state DB reports ------------------------------------------------------------------------


def _remembered_scans(
    ctx: AppContext, src_url: str, src_project: str, dst_url: str, dst_project: str
) -> dict[str, ScanMemory]:
    """The scan pairs the state DB remembers, read only; none when there is no state DB
    (drift never creates one)."""
    if not ctx.state_db_path.exists():
        return {}
    with StateDB(ctx.state_db_path) as state:
        return state.remembered_scans(_pair(src_url, src_project, dst_url, dst_project))


def _open_state_readonly(ctx: AppContext, project: str) -> StateDB | None:
    """The state DB opened for reading only: reports never change what runs recorded."""
    if not ctx.state_db_path.exists():
        return None
    return StateDB(ctx.state_db_path, readonly=True)


def transfer_status(ctx: AppContext, project: str) -> None:
    from xnatctl.views.report import render_status, run_to_json

    state = _open_state_readonly(ctx, project)
    runs = [] if state is None else state.runs(project=project, limit=1)
    if not runs:
        if state is not None:
            state.close()
        raise CliError(
            f"no transfer of project {project} is recorded in {ctx.state_db_path}",
            code=ExitCode.NOT_FOUND,
            hint="run 'xnatctl project transfer' first, or check the project ID",
        )
    with state:
        run = runs[0]
        failed = state.failed_steps(int(run["id"]))
        steps = state.run_steps(int(run["id"]))
    run = dict(run)
    run["steps"] = _step_counts(steps, finished=run.get("status") != "running")
    if ctx.json_output:
        ctx.print_json(run_to_json(run, failed))
    else:
        render_status(run, failed, ctx.out)


def _step_counts(steps: list[dict], *, finished: bool) -> dict[str, int]:
    """Latest status of each step of a run: a run killed before its end has no counts, but
    its steps were recorded one by one. A step still "running" in a run that ended was cut
    off; the next run redoes it."""
    latest: dict[str, str] = {}
    for step in steps:
        status = str(step.get("status"))
        if finished and status == "running":
            status = "interrupted"
        latest[str(step.get("step_id"))] = status
    counts: dict[str, int] = {}
    for status in latest.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def transfer_history(ctx: AppContext, project: str, limit: int) -> None:
    from xnatctl.views.report import render_history, run_to_json

    state = _open_state_readonly(ctx, project)
    runs: list[dict] = []
    if state is not None:
        with state:
            runs = state.runs(project=project, limit=limit)
    if ctx.json_output:
        ctx.print_json({"project": project, "runs": [run_to_json(r) for r in runs]})
        return
    if not runs:
        ctx.out.print(f"No transfers of project {project} recorded.", highlight=False)
        return
    render_history(runs, ctx.out)


# -- checks and drift ------------------------------------------------------------------------


def transfer_check(
    ctx: AppContext,
    project: str,
    dest_project: str,
    dest: DestOptions,
    *,
    probe: bool = False,
) -> bool:
    from planner.preflight import run_preflight
    from xnatctl.views.report import checks_to_json, render_checks

    src: XnatClient | BackendError
    dst: XnatClient | BackendError
    try:
        src = client_for_profile(ctx, ctx.profile)
    except BackendError as exc:
        src = exc
    try:
        dst = dest_client(ctx, dest)
    except BackendError as exc:
        dst = exc
    try:
        checks = run_preflight(src, project, dst, dest_project, probe=probe)
    finally:
        for client in (src, dst):
            if isinstance(client, XnatClient):
                client.close()
    if ctx.json_output:
        ctx.print_json(checks_to_json(checks))
    else:
        render_checks(checks, ctx.out)
    return all(c.ok for c in checks)


def drift_check(
    ctx: AppContext,
    src: XnatClient,
    dst: XnatClient,
    cfg: TransferConfig,
    checksums: bool | None,
    *,
    show_in_sync: bool = False,
) -> bool:
    from planner.drift import check_drift
    from xnatctl.views.report import render_drift

    source, dest = snapshot_pair(ctx, src, dst, cfg.source_project, cfg.dest_project)
    report = check_drift(
        source,
        dest,
        cfg.filtering,
        checksums=checksums,
        copy_shared=cfg.copy_shared,
        memory=_remembered_scans(ctx, src.url, cfg.source_project, dst.url, cfg.dest_project),
    )
    if ctx.json_output:
        ctx.print_json(report.to_dict(include_in_sync=show_in_sync))
    else:
        render_drift(report, ctx.out, show_in_sync=show_in_sync)
    return report.in_sync


# -- locks -----------------------------------------------------------------------------------


def unlock_project(ctx: AppContext, project: str, *, dest_url: str | None, yes: bool) -> None:
    """Release a destination project's lock left by a process that cannot release it itself
    (killed on another host, or a machine that crashed). Shows the holder first; a process
    still running on this host is never unlocked under it."""
    from planner.state import lock_info_dict

    locks: list = []
    if ctx.state_db_path.exists():
        with StateDB(ctx.state_db_path) as state:
            locks = state.locks(project)
    if dest_url:
        locks = [(url, info) for url, info in locks if url.rstrip("/") == dest_url.rstrip("/")]
    if not locks:
        if ctx.json_output:
            ctx.print_json({"project": project, "released": False, "holder": None})
        else:
            ctx.out.print(f"No lock is held on project {project}.", highlight=False)
        return
    if len(locks) > 1:
        urls = ", ".join(url for url, _info in locks)
        raise UsageError(
            f"project {project} is locked on more than one server ({urls})",
            hint="say which with --dest-url URL",
        )
    url, holder = locks[0]
    ctx.note(f"Project {project} on {url} is locked by {holder.describe()}")
    with StateDB(ctx.state_db_path) as state:
        if state.held_by_live_local_process(holder):
            raise CliError(
                f"the lock on {project} is held by process {holder.pid} running on this host",
                hint="wait for it to finish, or stop it (Ctrl-C, or kill "
                f"{holder.pid}): it releases the lock itself",
            )
        if not yes:
            if not sys.stdin.isatty():
                raise UsageError(
                    "refusing to release a lock without confirmation, and there is no "
                    "terminal to ask on",
                    hint="make sure that process is gone, then run again with --yes",
                )
            question = f"Release it? Only if process {holder.pid} on {holder.host} is gone"
            if not typer.confirm(question, default=False, err=True):
                raise CliError("the lock was kept", hint="nothing was changed")
        state.break_lock(url, project)
    if ctx.json_output:
        ctx.print_json(
            {
                "project": project,
                "dest_url": url,
                "released": True,
                "holder": lock_info_dict(holder),
            }
        )
    else:
        ctx.out.print(f"Released the lock on {project} at {url}.", highlight=False)
