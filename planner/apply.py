"""Apply a plan: lock, refuse a stale plan, run the steps, record each one, verify, unlock.

A fixed sequence, like a saved Terraform plan. Subjects and experiments are created in plan
order by the coordinator (the calling thread); scan imports and resource uploads go to a
pool with ``workers`` transfer slots, and the coordinator keeps feeding it from the next
experiments while earlier ones finish, with at most ``2 x workers`` steps in flight so memory
and temp disk stay bounded. Writes to one destination session never overlap
(``planner.gates``): at most two steps of a session are in flight, one writing to it while
the other downloads, and the coordinator moves on to other sessions for the rest.

Every finished step is recorded in the state DB by the thread that ran it, so a run killed
at any moment resumes at the next unfinished step; steps the state DB shows as done with the
same facts are skipped.

A subject's result is known once all its steps (and its experiments' verifications) are
finished; after ``max_failures`` consecutive failed subjects the circuit breaker stops the
run. Cancelling (``cancel`` set, or Ctrl-C in the coordinator) stops submitting, lets the
steps in flight end at their next attempt boundary, and records the run as interrupted.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner import address as A
from planner import walk as W
from planner.address import Address
from planner.backend import XnatBackend, quote_segment
from planner.compare import completion_fingerprint, files_digest
from planner.errors import NotFound
from planner.filters import filter_experiment, filter_inventory
from planner.gates import SessionWindow, TransferSlots, session_key
from planner.homes import home_conflict
from planner.inventory import Experiment, Inventory, Resource, Scan, Subject, content_fingerprint
from planner.plan import ChangeStatus, Level, Plan, Step, StepKind
from planner.planfile import UnusablePlan
from planner.planguard import PlanMismatch, check_plan, check_source_ids
from planner.progress import (
    STEP_FAILED,
    STEP_OK,
    STEP_SKIPPED,
    NullReporter,
    Reporter,
    step_bytes,
)
from planner.rows import get_listing
from planner.sameness import ScanMemory
from planner.snapshot import snapshot_experiment
from planner.staleness import StalePlan, find_staleness
from planner.state import PairKey, StateDB
from planner.steps import (
    FAILED,
    OK,
    StepContext,
    StepOutcome,
    describe,
    import_handler_for,
    is_fatal,
    run_step,
)
from planner.verify import ExperimentVerification, VerificationSummary, verify_experiment

__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "Counts",
    "StalePlan",
    "apply_plan",
]

COMPLETED = "completed"
FAILED_RUN = "failed"
INTERRUPTED = "interrupted"
ABORTED = "aborted"
STOPPED = "stopped"

_INLINE = (StepKind.CREATE_SUBJECT, StepKind.CREATE_EXPERIMENT)
_PROJECT_KEY = A.PROJECT


@dataclass
class ApplyOptions:
    workers: int = 4
    retry_count: int = 3
    retry_delay: float = 5.0
    max_failures: int = 5
    verify: bool = True
    work_dir: Path = field(default_factory=lambda: Path("."))
    failed_dir: Path = field(default_factory=lambda: Path("failed"))
    source_profile: str = ""
    dest_profile: str = ""
    plan_file: str = ""  # recorded with the run, for history
    # The source inventory (as snapshotted, unfiltered) when the caller has a fresh one; used
    # to verify and to fingerprint completed subjects. With check_stale, the stale check's
    # own snapshot is used; with neither, each experiment is read again to verify it.
    source_inventory: Inventory | None = None


@dataclass
class Counts:
    synced: int = 0
    failed: int = 0
    skipped: int = 0  # nothing to do this run: in sync, or done by an earlier run
    pending: int = 0  # left for the next run (interrupted or aborted before it finished)

    def as_dict(self) -> dict[str, int]:
        return {
            "synced": self.synced,
            "failed": self.failed,
            "skipped": self.skipped,
            "pending": self.pending,
        }


@dataclass
class ApplyResult:
    run_id: str
    status: str
    subjects: Counts = field(default_factory=Counts)
    experiments: Counts = field(default_factory=Counts)
    scans_moved: int = 0
    resources_moved: int = 0
    bytes_moved: int = 0
    duration: float = 0.0
    throughput: float = 0.0  # bytes per second
    steps_run: int = 0
    steps_skipped: int = 0
    verification: VerificationSummary = field(default_factory=VerificationSummary)
    failed_steps: list[tuple[str, str]] = field(default_factory=list)
    kept_zips: list[Path] = field(default_factory=list)
    circuit_breaker_tripped: bool = False
    # Entities the plan found in conflict: never overwritten, so never transferred. Their
    # subjects are not recorded as completed, so later runs look at them again.
    conflicts: list[tuple[str, str]] = field(default_factory=list)
    # A second Ctrl-C left steps running in worker threads: the caller should exit at once
    # rather than wait for them (they are redone, safely, by the next run).
    abandoned_steps: bool = False
    # The error that stopped the run at once (``planner.steps.is_fatal``): the caller reports
    # it (a session that expired with nothing to renew it needs a new login).
    stopped_by: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.status == COMPLETED

    def summary(self) -> dict[str, Any]:
        """The numbers the state DB keeps for the run and scripts read as JSON."""
        return {
            "status": self.status,
            "subjects": self.subjects.as_dict(),
            "experiments": self.experiments.as_dict(),
            "scans_moved": self.scans_moved,
            "resources_moved": self.resources_moved,
            "bytes_moved": self.bytes_moved,
            "duration": round(self.duration, 3),
            "throughput": round(self.throughput, 1),
            "steps_run": self.steps_run,
            "steps_skipped": self.steps_skipped,
            "verification": {
                "checked": self.verification.checked,
                "passed": self.verification.passed,
                "failed": self.verification.failed,
                "digests_unavailable": self.verification.digests_unavailable,
            },
            "failed_steps": [list(x) for x in self.failed_steps],
            "kept_zips": [str(p) for p in self.kept_zips],
            "circuit_breaker_tripped": self.circuit_breaker_tripped,
            "conflicts": [list(x) for x in self.conflicts],
            "stopped_by": describe(self.stopped_by) if self.stopped_by is not None else "",
        }


def _subject_key(address: str) -> str:
    """The subject an address belongs to, or the project's key for project resources."""
    subject = Address.parse(address).subject
    return subject if subject is not None else _PROJECT_KEY


def _keys(address: str) -> tuple[str, str | None]:
    """(subject key, experiment key or None) of a step address."""
    experiment = Address.parse(address).up_to(Level.EXPERIMENT)
    return _subject_key(address), (str(experiment) if experiment is not None else None)


@dataclass
class _Group:
    """Bookkeeping for one subject or experiment, touched by the coordinator only."""

    key: str
    outstanding: int = 0  # steps (and the verification) not finished yet
    ran: int = 0
    skipped: int = 0
    failed: bool = False
    closed: bool = False
    verified_pending: bool = False  # its verification was skipped by a cancel


def facts_digest(step: Step) -> str:
    """What the state DB records with a finished step: a step planned again from different
    facts (the source changed) or for another target is not "already done"."""
    return content_fingerprint({"kind": str(step.kind), "facts": step.facts, "target": step.target})


def pair_key(plan: Plan) -> PairKey:
    return PairKey(plan.source.url, plan.source.project, plan.dest.url, plan.dest.project)


def dest_experiment(
    backend: XnatBackend, project: str, subject: str, label: str
) -> Experiment | None:
    """Read one destination experiment by its labels (one listing, then the snapshot)."""
    path = f"/data/projects/{quote_segment(project)}/subjects/{quote_segment(subject)}/experiments"
    try:
        rows = get_listing(backend, path, {"columns": "ID,label,xsiType,date,project"})
    except NotFound:
        return None
    row = next((r for r in rows if r.get("label") == label), None)
    if row is None:
        row = next((r for r in rows if str(r.get("label", "")).lower() == label.lower()), None)
    if row is None:
        return None
    return snapshot_experiment(backend, project, subject, row)


def dest_scan_for(step: Step, exp: Experiment) -> Scan | None:
    """The destination scan a scan step's source scan pairs with, by the walk's pairing (ID
    when the series UIDs agree, else series UID): DICOM import numbers a scan by its
    SeriesNumber, which need not be the source scan's ID."""
    f = step.facts
    source = Scan(id=str(f.get("scan_id") or step.target.get("scan")), uid=str(f.get("uid") or ""))
    pairs, _conflicts, _src_only, _dst_only = W.pair_scans({source.id: source}, exp.scans)
    return pairs[0][1] if pairs else None


class _Run:
    """One run of the steps: the coordinator's loop and its bookkeeping."""

    def __init__(
        self,
        plan: Plan,
        src: XnatBackend,
        dst: XnatBackend,
        state: StateDB,
        options: ApplyOptions,
        reporter: Reporter,
        cancel: threading.Event,
        run_id: int,
        raw_source: Inventory | None,
    ) -> None:
        self.plan = plan
        self.src = src
        self.dst = dst
        self.state = state
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.run_id = run_id
        self.pair = pair_key(plan)
        self.raw_source = raw_source
        self.source = filter_inventory(raw_source, plan.config) if raw_source else None
        self.digests = raw_source.digests if raw_source is not None else True
        self.memory = state.remembered_scans(self.pair)
        self.result = ApplyResult(run_id=str(run_id), status=COMPLETED)
        self.result.conflicts = [
            (c.address, "; ".join(c.differences) or c.reason)
            for c in plan.changes
            if c.status == ChangeStatus.CONFLICT
        ]
        self.conflicted_subjects = {_subject_key(address) for address, _ in self.result.conflicts}
        self.finished: dict[str, str] = {}  # step id -> OK / FAILED / STEP_SKIPPED
        self.inflight: dict[Future[Any], tuple[str, Any]] = {}
        self.inflight_steps: set[str] = set()
        self.deferred: list[tuple[Step, bool]] = []
        self.planned = {s.id for s in plan.steps}
        self.subjects: dict[str, _Group] = {}
        self.experiments: dict[str, _Group] = {}
        self.exp_steps: dict[str, list[Step]] = defaultdict(list)
        self.consecutive_failed = 0
        self.stop = False
        self.stopped_by: BaseException | None = None
        self.window: SessionWindow[tuple[Step, bool]] = SessionWindow()
        self.slots = TransferSlots(options.workers)
        self.homes: dict[str, str] = {}  # "subject/experiment" -> conflict, "" when none
        self.home_locks: dict[str, threading.Lock] = {}
        self.homes_lock = threading.Lock()
        self.ctx = StepContext(
            src=src,
            dst=dst,
            work_dir=options.work_dir,
            failed_dir=options.failed_dir,
            run_id=str(run_id),
            retry_count=options.retry_count,
            retry_delay=options.retry_delay,
            reporter=reporter,
            cancel=cancel,
            dest_scan=self._dest_scan,
            files_digest=files_digest,
            import_handler=import_handler_for(plan.dest.server_version),
            prevent_anon=bool((plan.config or {}).get("prevent_anon", False)),
            exclusive=self.slots.exclusive,
        )

    # -- worker side ---------------------------------------------------------------------

    def _record(self, step: Step, status: str, outcome: StepOutcome | None = None) -> None:
        o = outcome or StepOutcome(status)
        self.state.record_step(
            self.run_id,
            self.pair,
            step.id,
            str(step.kind),
            step.address,
            status,
            attempts=o.attempts,
            bytes=o.bytes_moved,
            error=o.error,
            facts_digest=facts_digest(step),
        )

    def _execute(self, step: Step, resumed: bool) -> StepOutcome:
        """Run one step and record it at once; runs in a worker (or the coordinator).

        A pool step first waits for a transfer slot, so only steps that really started are
        recorded as running (a run killed now resumes exactly those)."""
        if step.kind in _INLINE:
            return self._execute_now(step, resumed)
        with self.slots.running():
            return self._execute_now(step, resumed)

    def _execute_now(self, step: Step, resumed: bool) -> StepOutcome:
        self.reporter.step_started(step)
        try:
            self._record(step, "running")
        except Exception as exc:
            error = f"could not record the step in the state DB: {describe(exc)}"
            self.reporter.step_finished(step, STEP_FAILED, error)
            return StepOutcome(FAILED, error)
        outcome = self._guarded(step, resumed)
        if outcome.note == "cancelled":
            # Left 'running' in the state DB: the next run treats it as resumed.
            self.reporter.step_finished(step, STEP_SKIPPED, "cancelled")
            return outcome
        try:
            self._record(step, "done" if outcome.ok else "failed", outcome)
            if outcome.ok and step.kind in _INLINE and outcome.dest_id:
                level = "subject" if step.kind == StepKind.CREATE_SUBJECT else "experiment"
                source_id = str(step.facts.get("source_id", ""))
                self.state.record_mapping(
                    self.pair, level, step.address, source_id, outcome.dest_id
                )
        except Exception as exc:  # an unrecorded step would be redone: say so, count it failed
            outcome = StepOutcome(
                FAILED, f"could not record the step in the state DB: {describe(exc)}"
            )
        status = STEP_OK if outcome.ok else STEP_FAILED
        self.reporter.step_finished(step, status, outcome.error)
        return outcome

    def _guarded(self, step: Step, resumed: bool) -> StepOutcome:
        """Run a step unless the experiment it writes into now belongs to another subject."""
        try:
            why = self._home_conflict(step)
        except Exception as exc:  # no answer: writing blind could touch another subject
            return StepOutcome(FAILED, f"could not check whose experiment it is: {describe(exc)}")
        if why:
            self.result.conflicts.append((step.address, why))
            return StepOutcome(FAILED, why)
        return self._run_in_slot(step, resumed)

    def _home_conflict(self, step: Step) -> str:
        """Asked once per experiment and run, before the first write into it
        (``planner.homes``); later steps of the experiment reuse the answer."""
        t = step.target
        if not t.get("experiment") or not t.get("subject"):
            return ""
        key = f"{t['subject']}/{t['experiment']}"
        with self.homes_lock:
            lock = self.home_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self.homes:
                self.homes[key] = home_conflict(
                    self.dst, self.plan.dest.project, str(t["subject"]), str(t["experiment"])
                )
            return self.homes[key]

    def _run_in_slot(self, step: Step, resumed: bool) -> StepOutcome:
        """Pool steps writing to a session other than by import hold the session for the
        whole step; an import's executor holds it only around the import request, so its
        download overlaps the session's other imports."""
        if step.kind in _INLINE or step.kind == StepKind.IMPORT_SCAN:
            return run_step(step, self.ctx, resumed=resumed)
        with self.slots.exclusive(session_key(step)):
            return run_step(step, self.ctx, resumed=resumed)

    def _dest_scan(self, step: Step) -> Resource | None:
        t = step.target
        exp = dest_experiment(self.dst, t["project"], t["subject"], t["experiment"])
        scan = dest_scan_for(step, exp) if exp else None
        if scan is None:
            return None
        return scan.resources.get(step.facts.get("resource") or "DICOM")

    def _verify(self, exp_key: str, steps: list[Step]) -> ExperimentVerification:
        subject, label = exp_key.split("/", 1)
        try:
            src_exp = self._source_experiment(subject, label, steps)
            if src_exp is None:
                return ExperimentVerification(
                    exp_key, False, False, False, None, ("the source experiment is gone",)
                )
            target = next((s.target for s in steps if s.target.get("experiment")), {})
            dst_exp = dest_experiment(
                self.dst,
                self.plan.dest.project,
                target.get("subject", subject),
                target.get("experiment", label),
            )
            if dst_exp is not None:
                dst_exp = filter_experiment(dst_exp, self.plan.config)
            verdict = verify_experiment(
                exp_key, src_exp, dst_exp, digests=self.digests, memory=self._memory_for(steps)
            )
            if verdict.ok and verdict.equal_scans:
                try:
                    self.state.remember_scans(self.pair, verdict.equal_scans)
                except Exception as exc:  # the transfer is fine; only the memory is lost
                    self.reporter.warning(
                        f"could not remember the scans of {exp_key}: {describe(exc)}"
                    )
            return verdict
        except Exception as exc:
            if is_fatal(exc):
                raise
            return ExperimentVerification(
                exp_key, False, False, False, None, (f"verification failed: {describe(exc)}",)
            )

    def _memory_for(self, steps: list[Step]) -> dict[str, ScanMemory]:
        """The remembered scan pairs that still hold: a scan this run imported is made anew
        (verified by names, then remembered again), every other one as remembered."""
        imported = {s.address for s in steps if s.kind == StepKind.IMPORT_SCAN}
        return {k: v for k, v in self.memory.items() if k not in imported}

    def _source_experiment(self, subject: str, label: str, steps: list[Step]) -> Experiment | None:
        if self.source is not None:
            subj = self.source.subjects.get(subject)
            return subj.experiments.get(label) if subj else None
        exp_id = next(
            (
                str(s.facts.get("source_experiment_id") or s.facts.get("source_id"))
                for s in steps
                if s.kind in (StepKind.IMPORT_SCAN, StepKind.CREATE_EXPERIMENT)
                or (
                    s.kind == StepKind.UPDATE_EXPERIMENT
                    and s.facts.get("owner_level") == "experiment"
                )
            ),
            "",
        )
        if not exp_id:
            return None
        exp = snapshot_experiment(self.src, self.plan.source.project, subject, exp_id)
        one = Inventory(
            server_url=self.src.url,
            project=self.plan.source.project,
            subjects={subject: Subject(label=subject, experiments={exp.label: exp})},
        )
        kept = filter_inventory(one, self.plan.config).subjects.get(subject)
        return kept.experiments.get(exp.label) if kept else None

    # -- coordinator side ----------------------------------------------------------------

    def run(self) -> ApplyResult:
        plan = self.plan
        started = time.monotonic()
        done_before = self.state.done_steps(self.pair)
        seen_before = self.state.step_statuses(self.pair)
        todo: list[Step] = []
        for step in plan.steps:
            _subj, exp = _keys(step.address)
            if exp:
                self.exp_steps[exp].append(step)
            if done_before.get(step.id) == facts_digest(step):
                self.finished[step.id] = STEP_SKIPPED
                self.result.steps_skipped += 1
            else:
                todo.append(step)
        self._build_groups(plan.steps)
        self.reporter.run_started(len(todo), sum(step_bytes(s) for s in todo))
        if self.result.steps_skipped:
            self.reporter.info(
                f"{self.result.steps_skipped} steps already done by an earlier run: skipped"
            )
        workers = max(1, self.options.workers)
        limit = 2 * workers
        # A thread per step in flight; the transfer slots keep ``workers`` of them moving.
        pool = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="apply")
        abandon = False
        try:
            try:
                for step in plan.steps:
                    if step.id in self.finished:
                        self._step_done(step, StepOutcome(STEP_SKIPPED), skipped=True)
                for step in todo:
                    if self._stopping():
                        break
                    self._release_waiting(pool, limit)
                    self._release_deferred(pool, limit)
                    self._dispatch(step, step.id in seen_before, pool, limit)
                while self._pending() and not self._stopping():
                    self._release_waiting(pool, limit)
                    if not self.inflight:
                        self._fail_orphans()
                        break
                    self._collect(block=True)
                    self._release_deferred(pool, limit)
                while self.inflight:
                    self._collect(block=True)
            except KeyboardInterrupt:
                self.cancel.set()
                self.reporter.warning("interrupted: letting the steps in flight finish")
                try:
                    while self.inflight:
                        self._collect(block=True)
                except KeyboardInterrupt:
                    abandon = True
                    self.reporter.warning("interrupted again: abandoning the steps in flight")
        finally:
            pool.shutdown(wait=not abandon, cancel_futures=True)

        self._close_counts()
        result = self.result
        result.abandoned_steps = abandon
        result.duration = time.monotonic() - started
        result.throughput = result.bytes_moved / result.duration if result.duration else 0.0
        result.stopped_by = self.stopped_by
        if self.stopped_by is not None:
            result.status = STOPPED
        elif self.cancel.is_set():
            result.status = INTERRUPTED
        elif result.circuit_breaker_tripped:
            result.status = ABORTED
        elif result.failed_steps or result.verification.failed:
            result.status = FAILED_RUN
        if result.status == COMPLETED:
            self._record_subjects_already_complete()
        return result

    def _record_subjects_already_complete(self) -> None:
        """Subjects the plan compared and found with nothing to do are complete too: record
        them with this config, so ``sync_new_only`` notes stop once their data is in place
        (a subject completed under narrower filters, then found whole under wider ones)."""
        with_steps = set(self.subjects)
        pending = {
            _subject_key(c.address)
            for c in self.plan.changes
            if c.status in (ChangeStatus.CREATE, ChangeStatus.DIFFERS, ChangeStatus.CONFLICT)
        }
        for c in self.plan.changes:
            if c.level != Level.SUBJECT or c.status != ChangeStatus.IN_SYNC:
                continue
            if c.address in with_steps or c.address in pending:
                continue
            fingerprint = self._subject_fingerprint(c.address)
            if not fingerprint:
                continue
            try:
                self.state.mark_subject_done(self.pair, c.address, self.run_id, fingerprint)
            except Exception as exc:
                self.reporter.warning(f"could not mark subject {c.address} done: {describe(exc)}")

    def _stopping(self) -> bool:
        return self.stop or self.cancel.is_set()

    def _pending(self) -> bool:
        return bool(self.inflight or self.deferred or self.window.waiting())

    def _release_waiting(self, pool: ThreadPoolExecutor, limit: int) -> None:
        """Submit the steps whose session has room again (the session window's rule)."""
        if self._stopping():
            return
        for step, resumed in self.window.ready():
            self._dispatch(step, resumed, pool, limit, admitted=True)

    def _dispatch(
        self,
        step: Step,
        resumed: bool,
        pool: ThreadPoolExecutor,
        limit: int,
        *,
        admitted: bool = False,
    ) -> None:
        """Run, submit, defer or fail one step, by the state of its dependencies and of its
        session's window (``admitted``: the window let it through already)."""
        failed_dep = next((d for d in step.depends_on if self.finished.get(d) == FAILED), None)
        if failed_dep is not None:
            self._not_run(step, f"not run: {failed_dep} failed")
            return
        if any(d in self.planned and d not in self.finished for d in step.depends_on):
            self.deferred.append((step, resumed))
            return
        if step.kind in _INLINE:
            self._collect(block=False)
            self._step_done(step, self._execute(step, resumed))
            return
        key = session_key(step)
        if key is not None and not admitted and not self.window.admit(key, (step, resumed)):
            return  # its session has enough in flight: it goes when one of them ends
        while len(self.inflight) >= limit:
            self._collect(block=True)
        fut = pool.submit(self._execute, step, resumed)
        self.inflight[fut] = ("step", step)
        self.inflight_steps.add(step.id)

    def _fail_orphans(self) -> None:
        """Deferred steps whose dependencies can no longer run (a plan out of order)."""
        for step, _resumed in self.deferred + self.window.drain():
            self._not_run(step, "not run: its dependencies never ran")
        self.deferred = []

    def _not_run(self, step: Step, why: str) -> None:
        """A step that cannot run this time: recorded as failed, so history shows why."""
        outcome = StepOutcome(FAILED, why)
        try:
            self._record(step, "failed", outcome)
        except Exception as exc:
            self.reporter.warning(f"could not record {step.id} in the state DB: {describe(exc)}")
        self.reporter.step_finished(step, STEP_FAILED, why)
        self._step_done(step, outcome)

    def _release_deferred(self, pool: ThreadPoolExecutor, limit: int) -> None:
        if not self.deferred or self._stopping():
            return
        waiting, self.deferred = self.deferred, []
        for step, resumed in waiting:
            self._dispatch(step, resumed, pool, limit)

    def _build_groups(self, steps: tuple[Step, ...]) -> None:
        for step in steps:
            subj, exp = _keys(step.address)
            self.subjects.setdefault(subj, _Group(subj)).outstanding += 1
            if exp:
                group = self.experiments.get(exp)
                if group is None:
                    group = self.experiments[exp] = _Group(exp)
                    if self.options.verify:
                        group.outstanding += 1  # its verification
                        self.subjects[subj].outstanding += 1
                group.outstanding += 1

    def _collect(self, *, block: bool) -> None:
        if not self.inflight:
            return
        done, _ = wait(
            list(self.inflight), timeout=0.5 if block else 0, return_when=FIRST_COMPLETED
        )
        for fut in done:
            kind, item = self.inflight.pop(fut)
            if kind == "step":
                self.inflight_steps.discard(item.id)
                key = session_key(item)
                if key is not None:
                    self.window.finished(key)
                try:
                    outcome = fut.result()
                except Exception as exc:  # run_step never raises; belt and braces
                    outcome = StepOutcome(FAILED, describe(exc))
                self._step_done(item, outcome)
            else:
                try:
                    verdict = fut.result()
                except Exception as exc:
                    if is_fatal(exc):
                        self._halt(exc)
                        self._verified(item, None)
                        continue
                    verdict = ExperimentVerification(
                        item, False, False, False, None, (describe(exc),)
                    )
                self._verified(item, verdict)

    def _halt(self, exc: BaseException) -> None:
        """Stop the run for an error every later step would meet too: submit nothing more,
        let the steps in flight end at their next attempt boundary, report the error."""
        if self.stopped_by is None:
            self.stopped_by = exc
            self.reporter.warning(f"stopping the run: {describe(exc)}")
        self.stop = True
        self.cancel.set()

    def _step_done(self, step: Step, outcome: StepOutcome, *, skipped: bool = False) -> None:
        subj, exp = _keys(step.address)
        if outcome.note == "fatal" and outcome.fatal is not None:
            self._halt(outcome.fatal)
        if outcome.note in ("cancelled", "fatal"):
            return  # its groups stay open: pending for the next run
        sgroup = self.subjects[subj]
        egroup = self.experiments.get(exp) if exp else None
        if not skipped:
            self.finished[step.id] = OK if outcome.ok else FAILED
            self.result.steps_run += 1
            if outcome.ok:
                self.result.bytes_moved += outcome.bytes_moved
                if step.kind in (StepKind.IMPORT_SCAN, StepKind.CREATE_SCAN):
                    self.result.scans_moved += 1
                elif step.kind == StepKind.UPLOAD_RESOURCE:
                    self.result.resources_moved += 1
            else:
                self.result.failed_steps.append((step.id, outcome.error))
                if outcome.kept_zip is not None:
                    self.result.kept_zips.append(outcome.kept_zip)
        for group in (sgroup, egroup):
            if group is None:
                continue
            group.outstanding -= 1
            if skipped:
                group.skipped += 1
            else:
                group.ran += 1
                group.failed |= not outcome.ok
        if egroup is not None:
            self._maybe_finish_experiment(egroup)
        self._maybe_finish_subject(sgroup)

    def _maybe_finish_experiment(self, group: _Group) -> None:
        verifying = 1 if self.options.verify else 0
        if group.closed or group.outstanding != verifying:
            return
        group.closed = True
        if not verifying:
            return
        if group.failed or self.cancel.is_set():
            # A failed experiment is failed already; a cancelled run verifies next time.
            self._verified(group.key, None)
            return
        fut = _in_thread(self._verify, group.key, list(self.exp_steps.get(group.key, [])))
        self.inflight[fut] = ("verify", group.key)

    def _verified(self, exp_key: str, verdict: ExperimentVerification | None) -> None:
        group = self.experiments[exp_key]
        sgroup = self.subjects[exp_key.split("/", 1)[0]]
        group.outstanding -= 1
        sgroup.outstanding -= 1
        if verdict is not None:
            self.result.verification.add(verdict)
            if not verdict.ok:
                group.failed = True
                sgroup.failed = True
                self.reporter.warning(
                    f"verification of {exp_key} failed: {'; '.join(verdict.problems)}"
                )
            elif verdict.tier3 is None:
                self.reporter.info(f"verified {exp_key}: file counts match (digests unavailable)")
        elif self.cancel.is_set() and not group.failed:
            group.verified_pending = True
        self._maybe_finish_subject(sgroup)

    def _maybe_finish_subject(self, group: _Group) -> None:
        if group.closed or group.outstanding != 0:
            return
        group.closed = True
        if group.key == _PROJECT_KEY:
            return
        if group.failed:
            if group.ran == 0:
                return
            self.consecutive_failed += 1
            limit = self.options.max_failures
            if limit > 0 and self.consecutive_failed >= limit and not self.stop:
                self.result.circuit_breaker_tripped = True
                self.stop = True
                self.reporter.warning(
                    f"circuit breaker: {self.consecutive_failed} subjects in a row failed; "
                    "stopping the run (fix the cause and run again: it resumes)"
                )
            return
        if any(self.experiments[e].verified_pending for e in self._experiments_of(group.key)):
            group.closed = False  # unverified because the run was cancelled: pending
            return
        if group.ran:
            self.consecutive_failed = 0
        if group.key in self.conflicted_subjects:
            return  # not complete: something of it could not be transferred
        try:
            self.state.mark_subject_done(
                self.pair, group.key, self.run_id, self._subject_fingerprint(group.key)
            )
        except Exception as exc:
            self.reporter.warning(f"could not mark subject {group.key} done: {describe(exc)}")

    def _experiments_of(self, subject: str) -> list[str]:
        return [k for k in self.experiments if k.split("/", 1)[0] == subject]

    def _subject_fingerprint(self, subject: str) -> str:
        if self.raw_source is None:
            return ""
        s = self.raw_source.subjects.get(subject)
        return completion_fingerprint(s, self.plan.config) if s is not None else ""

    def _close_counts(self) -> None:
        r = self.result
        for groups, counts in ((self.subjects, r.subjects), (self.experiments, r.experiments)):
            for key, group in groups.items():
                if key == _PROJECT_KEY:
                    continue
                conflicted = groups is self.subjects and key in self.conflicted_subjects
                if group.failed or conflicted:  # a subject with a conflict is not synced
                    counts.failed += 1
                elif not group.closed:
                    counts.pending += 1
                elif group.ran == 0:
                    counts.skipped += 1
                else:
                    counts.synced += 1
        r.subjects.skipped += _unplanned(self.plan, Level.SUBJECT, set(self.subjects))
        r.experiments.skipped += _unplanned(self.plan, Level.EXPERIMENT, set(self.experiments))


def _unplanned(plan: Plan, level: Level, planned: set[str]) -> int:
    """Entities the plan has nothing to do for (in sync, or skipped by a filter or the state)."""
    quiet = (ChangeStatus.IN_SYNC, ChangeStatus.SKIPPED)
    return sum(
        1
        for c in plan.changes
        if c.level == level and c.status in quiet and c.address not in planned
    )


def _in_thread(fn: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run ``fn`` on a thread of its own. Verifications (one per experiment, a few requests)
    must not wait behind a pool full of transfers, nor hold a transfer slot."""
    fut: Future[Any] = Future()

    def target() -> None:
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:
            fut.set_exception(exc)

    threading.Thread(target=target, name="apply-verify", daemon=True).start()
    return fut


def _refuse_mismatch(plan: Plan, options: ApplyOptions, source: Inventory | None) -> None:
    """Raise ``UnusablePlan`` when a step would write or read anywhere the plan's header (or
    the source inventory at its address) does not say (``planner.planguard``)."""
    try:
        if source is None:
            check_plan(plan)
        else:
            check_source_ids(plan, source)
    except PlanMismatch as exc:
        raise UnusablePlan(options.plan_file or "(not saved)", str(exc)) from None


def apply_plan(
    plan: Plan,
    src: XnatBackend,
    dst: XnatBackend,
    state: StateDB,
    options: ApplyOptions,
    *,
    reporter: Reporter | None = None,
    cancel: threading.Event | None = None,
    check_stale: bool = True,
) -> ApplyResult:
    """Apply ``plan`` from ``src`` to ``dst``; see the module docstring for the sequence.

    Raises ``StalePlan`` (before anything is changed) when the servers moved on since the
    plan was made, and ``planner.state.LockHeld`` when another live process is working on the
    same destination project.
    """
    reporter = reporter or NullReporter()
    cancel = cancel or threading.Event()
    _refuse_mismatch(plan, options, None)
    pair = pair_key(plan)
    lock = state.acquire_lock(plan.dest.url, plan.dest.project, operation="apply")
    try:
        if lock.took_over is not None:
            reporter.warning(
                f"took over the lock on {plan.dest.project} left by a process that is gone: "
                f"{lock.took_over.describe()}"
            )
        try:  # runs of dead processes here end as interrupted (reports only show them so)
            state.reap_dead_runs()
        except Exception as exc:
            reporter.warning(f"could not close the records of dead runs: {describe(exc)}")
        raw_source = options.source_inventory
        if check_stale:
            reporter.info("checking that the plan is still current")
            settled = set(state.step_statuses(pair))
            report = find_staleness(plan, src, dst, settled)
            if report.what_changed:
                raise StalePlan(report.what_changed)
            raw_source = report.raw_source_inventory
        _refuse_mismatch(plan, options, raw_source)
        options.work_dir.mkdir(parents=True, exist_ok=True)
        run_id = state.start_run(pair, config_hash=plan.config_hash, plan_file=options.plan_file)
        run = _Run(plan, src, dst, state, options, reporter, cancel, run_id, raw_source)
        result: ApplyResult | None = None
        try:
            result = run.run()
        finally:
            if result is None:  # an unexpected error or a third Ctrl-C: keep the record honest
                state.end_run(run_id, INTERRUPTED if cancel.is_set() else FAILED_RUN, {})
            else:
                summary = result.summary()
                verification = summary.pop("verification")
                state.end_run(run_id, result.status, summary, verification)
        if result.circuit_breaker_tripped:
            reporter.warning(
                f"the run was aborted by the circuit breaker after "
                f"{options.max_failures} failed subjects in a row"
            )
        return result
    finally:
        state.release_lock(lock)
