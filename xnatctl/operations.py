"""The operations behind ``xnatctl project ...``: connect, snapshot, plan, apply, report.

Commands stay thin: they parse options, call one function here, and hand what it returns to
a view. This module joins the pieces (clients, the planner, the state DB) and returns
results and exit codes; it never renders, asks, or ends the process.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from planner.config import TransferConfig, load_config
from planner.diff import diff_inventories
from planner.errors import BackendError
from planner.inventory import Inventory
from planner.plan import ChangeStatus, Plan
from planner.planfile import save_plan
from planner.planviews import remove_orphaned_spools
from planner.preflight import may_write
from planner.sameness import ScanMemory
from planner.snapshot import take_snapshot
from planner.state import LockInfo, PairKey, StateDB
from planner.statuses import RunStatus, StepStatus
from xnatctl import __version__
from xnatctl.client import XnatClient
from xnatctl.connect import DestOptions, client_for_profile, dest_client
from xnatctl.context import AppContext
from xnatctl.errors import CliError, ExitCode, UsageError
from xnatctl.fileio import ensure_private_dir

if TYPE_CHECKING:  # the modules themselves load with the commands that need them
    from planner.apply import ApplyResult
    from planner.drift import DriftReport
    from planner.preflight import Check
    from planner.progress import Reporter

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


# Told (side, items read, items known) while both servers are read; side is "source" or
# "destination". Called from two threads.
SnapshotProgress = Callable[[str, int, int], None]


def _no_progress(_side: str, _n: int, _total: int) -> None:
    pass


def snapshot_pair(
    ctx: AppContext,
    src: XnatClient,
    dst: XnatClient,
    src_project: str,
    dst_project: str,
    on_progress: SnapshotProgress = _no_progress,
) -> tuple[Inventory, Inventory]:
    """Both inventories, read at the same time (each side in its own bounded pool)."""

    def progress(side: str) -> Callable[[int, int], None]:
        return lambda n, total: on_progress(side, n, total)

    ctx.note(f"Reading {src_project} on {src.url} and {dst_project} on {dst.url}")
    with ThreadPoolExecutor(max_workers=2) as pool:
        stores = ctx.paths.store_dir
        fs = pool.submit(_snapshot_side, "source", src, src_project, progress("source"), stores)
        fd = pool.submit(
            _snapshot_side, "destination", dst, dst_project, progress("destination"), stores
        )
        source, dest = fs.result(), fd.result()
    ctx.note(
        f"Read {len(source.subjects)} source subjects ({source.requests} requests) and "
        f"{len(dest.subjects)} destination subjects ({dest.requests} requests)"
    )
    return source, dest


def _snapshot_side(
    side: str,
    client: XnatClient,
    project: str,
    on_progress: Callable[[int, int], None],
    store_dir: Path,
) -> Inventory:
    """One side's inventory; a failure names the side, since both may use one project ID."""
    try:
        return take_snapshot(client, project, on_progress=on_progress, store_dir=store_dir)
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
    on_progress: SnapshotProgress = _no_progress,
) -> MadePlan:
    source, dest = snapshot_pair(ctx, src, dst, cfg.source_project, cfg.dest_project, on_progress)
    with StateDB(ctx.state_db_path) as state:
        pair = _pair(src.url, cfg.source_project, dst.url, cfg.dest_project)
        completed = state.completed_subjects(pair)
        serial = state.serial(pair)
        # Scans found equal now are remembered (locally), so a later change on either side
        # still shows although DICOM is compared by names: written a batch at a time as the
        # walk finds them, never held for the whole project.
        equal = _Batched(lambda batch: state.remember_scans(pair, batch))
        # The plan is written to a spool file under the work directory as the walk goes (in
        # a folder of its own, which apply's clean-up of old downloads leaves alone); the
        # plan's steps and changes read it, and it is removed when the plan is dropped.
        spool_dir = ctx.state_dir / "work" / "plans"
        ensure_private_dir(spool_dir.parent)
        ensure_private_dir(spool_dir)
        remove_orphaned_spools(spool_dir)
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
            memory=state.scan_memory(pair),
            on_equal_scan=equal.add,
            spool_dir=spool_dir,
        )
        equal.flush()
    return MadePlan(found.plan, source, dest)


class _Batched:
    """Hands items on a thousand at a time."""

    def __init__(self, write: Callable[[list[ScanMemory]], object]) -> None:
        self.write = write
        self.items: list[ScanMemory] = []

    def add(self, item: ScanMemory) -> None:
        self.items.append(item)
        if len(self.items) >= 1000:
            self.flush()

    def flush(self) -> None:
        if self.items:
            self.write(self.items)
            self.items = []


def check_local_dirs(ctx: AppContext) -> None:
    """Refuse an unusable state DB or work directory before any server is read: a snapshot
    can take minutes, and apply needs both to record steps and hold downloads."""
    from planner.state import StateError

    work = ctx.state_dir / "work"
    for directory in (ctx.state_dir, work, ctx.state_dir / "failed", ctx.paths.store_dir):
        try:
            ensure_private_dir(directory)
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(13, "not writable")
        except OSError as exc:
            stores = directory == ctx.paths.store_dir
            raise CliError(
                f"the {'inventory' if stores else 'work'} directory {directory} cannot be used: "
                f"{exc.strerror or exc}",
                hint="fix its permissions, or point "
                f"{'XNATCTL_STORE_DIR' if stores else 'XDG_STATE_HOME'} elsewhere",
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


def record_killed_runs(ctx: AppContext) -> int:
    """Record runs whose process is gone as interrupted. A run killed after its last step
    (SIGKILL cannot be caught) is still marked running when the next one finds nothing to
    apply, and nothing else would record it."""
    with StateDB(ctx.state_db_path) as state:
        return state.reap_dead_runs()


def plan_conflicts(plan: Plan) -> list[tuple[str, str]]:
    """The conflicts that keep a plan's data from moving, as (address, why)."""
    return [
        (c.address, "; ".join(c.differences) or c.reason)
        for c in plan.changes
        if c.status == ChangeStatus.CONFLICT
    ]


# -- apply -----------------------------------------------------------------------------------


class StepsAbandoned(Exception):
    """Ctrl-C a second time while applying: apply recorded the run as interrupted and released
    its lock, but worker threads still run the steps in flight. The process must end now,
    before they record anything (the next run redoes them safely)."""


def run_apply(
    ctx: AppContext,
    plan: Plan,
    src: XnatClient,
    dst: XnatClient,
    cfg: TransferConfig,
    *,
    reporter: Reporter,
    check_stale: bool,
    made: MadePlan | None = None,
    plan_file: str = "",
) -> ApplyResult:
    """Apply a plan, reporting progress to ``reporter``.

    Raises ``StepsAbandoned`` on a second Ctrl-C. A result with ``abandoned_steps`` leaves
    the state DB open for the worker threads still running them: the caller shows the result
    and ends the process at once. Otherwise ``apply_exit_code`` gives the exit code.
    """
    from planner.apply import ApplyOptions, apply_plan

    options = ApplyOptions(
        workers=cfg.scan_workers,
        retry_count=cfg.scan_retry_count,
        retry_delay=cfg.scan_retry_delay,
        max_failures=cfg.max_failures,
        verify=cfg.verify_after_transfer,
        work_dir=ctx.state_dir / "work",
        failed_dir=ctx.state_dir / "failed",
        store_dir=ctx.paths.store_dir,
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
                raise StepsAbandoned("interrupted: run the same command again to resume") from None
    except StepsAbandoned:
        raise  # the state DB stays open for the abandoned steps until the process ends
    except BaseException:
        state.close()
        raise
    if not result.abandoned_steps:
        state.close()
    return result


def apply_exit_code(result: ApplyResult) -> int:
    """The exit code of a finished apply: 1 if anything failed, 130 if interrupted.

    An error that stopped the run at once (a session that expired with nothing to renew it)
    would have met every later step: it is raised, to end the command with its own code and
    hint.
    """
    if result.stopped_by is not None:
        raise result.stopped_by
    if result.status == RunStatus.INTERRUPTED:
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
            if run is not None and run.get("status") == RunStatus.RUNNING:
                continue
            if path.is_file():
                path.unlink(missing_ok=True)
                ctx.note(f"Removed a temporary download left by an interrupted run: {path.name}")


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


@contextmanager
def _remembered_scans(
    ctx: AppContext, src_url: str, src_project: str, dst_url: str, dst_project: str
) -> Iterator[Mapping[str, ScanMemory]]:
    """The scan pairs the state DB remembers, read one experiment at a time while the check
    walks (``StateDB.scan_memory``), from a DB opened read only; none when there is no state
    DB (drift never creates one)."""
    state = _open_state_readonly(ctx, src_project)
    if state is None:
        yield {}
        return
    try:
        yield state.scan_memory(_pair(src_url, src_project, dst_url, dst_project))
    finally:
        state.close()


def _open_state_readonly(ctx: AppContext, project: str) -> StateDB | None:
    """The state DB opened for reading only: reports never change what runs recorded."""
    if not ctx.state_db_path.exists():
        return None
    return StateDB(ctx.state_db_path, readonly=True)


def transfer_status(ctx: AppContext, project: str) -> tuple[dict, list[dict]]:
    """The latest run of a project (with its step counts) and its failed steps."""
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
    run["steps"] = _step_counts(steps, finished=run.get("status") != RunStatus.RUNNING)
    return run, failed


def _step_counts(steps: list[dict], *, finished: bool) -> dict[str, int]:
    """Latest status of each step of a run: a run killed before its end has no counts, but
    its steps were recorded one by one. A step still "running" in a run that ended was cut
    off; the next run redoes it."""
    latest: dict[str, str] = {}
    for step in steps:
        status = str(step.get("status"))
        if finished and status == StepStatus.RUNNING:
            status = str(RunStatus.INTERRUPTED)  # cut off with its run
        latest[str(step.get("step_id"))] = status
    counts: dict[str, int] = {}
    for status in latest.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def transfer_history(ctx: AppContext, project: str, limit: int) -> list[dict]:
    """A project's runs, newest first (none when there is no state DB)."""
    state = _open_state_readonly(ctx, project)
    if state is None:
        return []
    with state:
        return state.runs(project=project, limit=limit)


# -- checks and drift ------------------------------------------------------------------------


def transfer_check(
    ctx: AppContext,
    project: str,
    dest_project: str,
    dest: DestOptions,
    *,
    probe: bool = False,
) -> list[Check]:
    """The pre-flight checks of both servers (a server that cannot be reached is a check that
    fails, not an error)."""
    from planner.preflight import run_preflight

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
        return run_preflight(src, project, dst, dest_project, probe=probe)
    finally:
        for client in (src, dst):
            if isinstance(client, XnatClient):
                client.close()


def drift_check(
    ctx: AppContext,
    src: XnatClient,
    dst: XnatClient,
    cfg: TransferConfig,
    checksums: bool | None,
    *,
    on_progress: SnapshotProgress = _no_progress,
) -> DriftReport:
    from planner.drift import check_drift

    source, dest = snapshot_pair(ctx, src, dst, cfg.source_project, cfg.dest_project, on_progress)
    with _remembered_scans(ctx, src.url, cfg.source_project, dst.url, cfg.dest_project) as memory:
        return check_drift(
            source,
            dest,
            cfg.filtering,
            checksums=checksums,
            copy_shared=cfg.copy_shared,
            memory=memory,
        )


# -- locks -----------------------------------------------------------------------------------


def find_lock(
    ctx: AppContext, project: str, *, dest_url: str | None
) -> tuple[str, LockInfo] | None:
    """The lock held on a destination project, as (server URL, holder); None when there is
    none. Refuses when several servers hold one (``dest_url`` says which)."""
    locks: list = []
    if ctx.state_db_path.exists():
        with StateDB(ctx.state_db_path) as state:
            locks = state.locks(project)
    if dest_url:
        locks = [(url, info) for url, info in locks if url.rstrip("/") == dest_url.rstrip("/")]
    if not locks:
        return None
    if len(locks) > 1:
        urls = ", ".join(url for url, _info in locks)
        raise UsageError(
            f"project {project} is locked on more than one server ({urls})",
            hint="say which with --dest-url URL",
        )
    return locks[0]


def refuse_live_holder(ctx: AppContext, project: str, holder: LockInfo) -> None:
    """A lock held by a process still running on this host is never released under it: the
    process releases it itself."""
    with StateDB(ctx.state_db_path) as state:
        if state.held_by_live_local_process(holder):
            raise CliError(
                f"the lock on {project} is held by process {holder.pid} running on this host",
                hint="wait for it to finish, or stop it (Ctrl-C, or kill "
                f"{holder.pid}): it releases the lock itself",
            )


def release_lock(ctx: AppContext, url: str, project: str) -> None:
    """Release a destination project's lock (one ``find_lock`` found, whose holder is gone)."""
    with StateDB(ctx.state_db_path) as state:
        state.break_lock(url, project)
