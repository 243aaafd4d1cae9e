"""Apply a plan: lock, refuse a stale plan, run the steps, record each one, verify, unlock.

A fixed sequence, like a saved Terraform plan (``apply_plan``). The run itself is three
parts wired together here:

- ``planner.scheduler`` walks the steps: subjects and experiments are created in plan order
  on the calling thread; scan imports and resource uploads go to a pool with ``workers``
  transfer slots and at most ``2 x workers`` steps in flight, so memory and temp disk stay
  bounded. Writes to one destination session never overlap (``planner.gates``): at most
  two steps of a session are in flight, one writing to it while the other downloads.
- ``planner.statehook`` records every step in the state DB as it starts and ends, on the
  thread that ran it, so a run killed at any moment resumes at the next unfinished step;
  steps the state DB shows as done with the same facts are skipped.
- ``planner.accounting`` keeps the one tally of the run (``ApplyResult`` is that tally):
  a subject's result is known once all its steps (and its experiments' verifications) are
  finished; after ``max_failures`` consecutive failed subjects the circuit breaker stops
  the run.

Cancelling (``cancel`` set, or Ctrl-C in the coordinator) stops submitting, lets the steps
in flight end at their next attempt boundary, and records the run as interrupted. Apply
decides on a step's ``Ending``, never on its note text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from planner import restpaths as rest
from planner import walk as W
from planner.accounting import Accounting, Counts, Listeners, Tally, group_keys, subject_key
from planner.address import Address
from planner.backend import XnatBackend
from planner.compare import completion_fingerprint
from planner.errors import NotFound
from planner.filters import filter_experiment, filter_inventory
from planner.gates import TransferSlots, session_key
from planner.homes import home_conflict
from planner.inventory import Experiment, Inventory, Resource, Scan, Subject
from planner.plan import (
    ChangeStatus,
    CreateExperiment,
    CreateScan,
    Dest,
    ImportScan,
    Level,
    Plan,
    Step,
    StepKind,
    UpdateDocument,
)
from planner.planfile import UnusablePlan
from planner.planguard import PlanMismatch, check_plan, check_source_ids
from planner.planstream import by_subject, groups, ordered_steps
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
from planner.scheduler import Hooks, Job, Scheduler, Settled
from planner.snapshot import snapshot_experiment
from planner.staleness import StalePlan, find_staleness
from planner.state import Lock, StateDB
from planner.statehook import RecordedSteps, StateHook, facts_digest, pair_key
from planner.statuses import RunStatus, StepStatus
from planner.steps import (
    FAILED,
    Ending,
    StepContext,
    StepOutcome,
    describe,
    import_handler_for,
    is_fatal,
    run_step,
)
from planner.verify import ExperimentVerification, verify_experiment

__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "Counts",
    "StalePlan",
    "apply_plan",
    "facts_digest",
    "pair_key",
]

COMPLETED = RunStatus.COMPLETED
FAILED_RUN = RunStatus.FAILED
INTERRUPTED = RunStatus.INTERRUPTED
ABORTED = RunStatus.ABORTED
STOPPED = RunStatus.STOPPED

_INLINE = (StepKind.CREATE_SUBJECT, StepKind.CREATE_EXPERIMENT)


@dataclass
class ApplyOptions:
    workers: int = 4
    retry_count: int = 3
    retry_delay: float = 5.0
    max_failures: int = 5
    verify: bool = True
    work_dir: Path = field(default_factory=lambda: Path("."))
    failed_dir: Path = field(default_factory=lambda: Path("failed"))
    store_dir: Path | None = None  # the stale check's inventories (planner.invstore)
    source_profile: str = ""
    dest_profile: str = ""
    plan_file: str = ""  # recorded with the run, for history
    # The source inventory (as snapshotted, unfiltered) when the caller has a fresh one; used
    # to verify and to fingerprint completed subjects. With check_stale, the stale check's
    # own snapshot is used; with neither, each experiment is read again to verify it.
    source_inventory: Inventory | None = None


@dataclass(kw_only=True)
class ApplyResult(Tally):
    """A run's outcome: its ``Tally`` (the counts, kept by ``planner.accounting``) and how
    it ended."""

    run_id: str
    status: str
    duration: float = 0.0
    throughput: float = 0.0  # bytes per second
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


def dest_experiment(
    backend: XnatBackend, project: str, subject: str, label: str
) -> Experiment | None:
    """Read one destination experiment by its labels (one listing, then the snapshot)."""
    path = rest.subject_experiments(project, subject)
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
    scan_id = step.scan_id if isinstance(step, ImportScan | CreateScan) else str(step.dest.scan)
    source = Scan(id=scan_id, uid=step.uid if isinstance(step, ImportScan) else "")
    pairs, _conflicts, _src_only, _dst_only = W.pair_scans({source.id: source}, exp.scans)
    return pairs[0][1] if pairs else None


class _StepRunner:
    """Runs one step on the thread given it: slot, start record, whose-experiment check, the
    executor, end record, report. The state hook observes; it decides nothing."""

    def __init__(
        self,
        plan: Plan,
        dst: XnatBackend,
        ctx: StepContext,
        slots: TransferSlots,
        hook: StateHook,
        reporter: Reporter,
        conflicts: list[tuple[str, str]],
    ) -> None:
        self.plan = plan
        self.dst = dst
        self.ctx = ctx
        self.slots = slots
        self.hook = hook
        self.reporter = reporter
        self.conflicts = conflicts
        self.homes: dict[str, str] = {}  # "subject/experiment" -> conflict, "" when none
        self.home_locks: dict[str, threading.Lock] = {}
        self.homes_lock = threading.Lock()

    def execute(self, step: Step, resumed: bool) -> StepOutcome:
        """Run one step and record it at once; runs in a worker (or the coordinator).

        A pool step first waits for a transfer slot, so only steps that really started are
        recorded as running (a run killed now resumes exactly those)."""
        if step.kind in _INLINE:
            return self._execute_now(step, resumed)
        with self.slots.running():
            return self._execute_now(step, resumed)

    def _execute_now(self, step: Step, resumed: bool) -> StepOutcome:
        self.reporter.step_started(step)
        unrecorded = self.hook.step_started(step)
        if unrecorded is not None:
            self.reporter.step_finished(step, STEP_FAILED, unrecorded.error)
            return unrecorded
        outcome = self._guarded(step, resumed)
        if outcome.ending == Ending.CANCELLED:
            # Left 'running' in the state DB: the next run treats it as resumed.
            self.reporter.step_finished(step, STEP_SKIPPED, outcome.note)
            return outcome
        outcome = self.hook.step_ended(step, outcome)
        self.reporter.step_finished(step, STEP_OK if outcome.ok else STEP_FAILED, outcome.error)
        return outcome

    def _guarded(self, step: Step, resumed: bool) -> StepOutcome:
        """Run a step unless the experiment it writes into now belongs to another subject."""
        try:
            why = self._home_conflict(step)
        except Exception as exc:  # no answer: writing blind could touch another subject
            return StepOutcome(FAILED, f"could not check whose experiment it is: {describe(exc)}")
        if why:
            self.conflicts.append((step.address, why))
            return StepOutcome(FAILED, why)
        return self._run_in_slot(step, resumed)

    def _home_conflict(self, step: Step) -> str:
        """Asked once per experiment and run, before the first write into it
        (``planner.homes``); later steps of the experiment reuse the answer."""
        d = step.dest
        if not d.experiment or not d.subject:
            return ""
        key = f"{d.subject}/{d.experiment}"
        with self.homes_lock:
            lock = self.home_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self.homes:
                self.homes[key] = home_conflict(
                    self.dst, self.plan.dest.project, d.subject, d.experiment
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


@dataclass
class ExperimentFacts:
    """What verifying an experiment needs of its steps, noted as the steps are read (so the
    steps themselves are not kept): where it went, its source ID and the scans imported."""

    dest: Dest | None = None
    source_id: str = ""
    imported: set[str] = field(default_factory=set)

    def note(self, step: Step) -> None:
        if self.dest is None and step.dest.experiment:
            self.dest = step.dest
        if step.kind == StepKind.IMPORT_SCAN:
            self.imported.add(step.address)
        if self.source_id:
            return
        if isinstance(step, ImportScan) or (
            isinstance(step, UpdateDocument) and step.owner_level == Level.EXPERIMENT
        ):
            self.source_id = step.source_experiment_id
        elif isinstance(step, CreateExperiment):
            self.source_id = step.source_id


class _Verifier:
    """Verifies one experiment after its steps end, on a thread of its own."""

    def __init__(
        self,
        plan: Plan,
        src: XnatBackend,
        dst: XnatBackend,
        hook: StateHook,
        raw_source: Inventory | None,
        memory: Callable[[str], dict[str, ScanMemory]],
    ) -> None:
        self.plan = plan
        self.src = src
        self.dst = dst
        self.hook = hook
        self.source = filter_inventory(raw_source, plan.config) if raw_source else None
        self.digests = raw_source.digests if raw_source is not None else True
        self.memory = memory  # the remembered scan pairs under an address prefix

    def verify(self, exp_key: str, facts: ExperimentFacts) -> ExperimentVerification:
        at = Address.parse(exp_key)
        subject, label = str(at.subject), str(at.experiment)
        try:
            src_exp = self._source_experiment(subject, label, facts.source_id)
            if src_exp is None:
                return ExperimentVerification(
                    exp_key, False, False, False, None, ("the source experiment is gone",)
                )
            dest = facts.dest
            dst_exp = dest_experiment(
                self.dst,
                self.plan.dest.project,
                dest.subject or subject if dest else subject,
                dest.experiment or label if dest else label,
            )
            if dst_exp is not None:
                dst_exp = filter_experiment(dst_exp, self.plan.config)
            verdict = verify_experiment(
                exp_key,
                src_exp,
                dst_exp,
                digests=self.digests,
                memory=self._memory_for(exp_key, facts),
            )
            if verdict.ok and verdict.equal_scans:
                self.hook.scans_verified(exp_key, verdict.equal_scans)
            return verdict
        except Exception as exc:
            if is_fatal(exc):
                raise
            return ExperimentVerification(
                exp_key, False, False, False, None, (f"verification failed: {describe(exc)}",)
            )

    def _memory_for(self, exp_key: str, facts: ExperimentFacts) -> dict[str, ScanMemory]:
        """The experiment's remembered scan pairs that still hold (read for this experiment
        alone): a scan this run imported is made anew (verified by names, then remembered
        again), every other one as remembered."""
        mine = self.memory(f"{exp_key}/")
        return {k: v for k, v in mine.items() if k not in facts.imported}

    def _source_experiment(self, subject: str, label: str, exp_id: str) -> Experiment | None:
        if self.source is not None:
            subj = self.source.subjects.get(subject)
            return subj.experiments.get(label) if subj else None
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


@dataclass
class _Parts:
    """What one run is wired from: the servers, the state DB, the caller's options and
    reporter, the cancel flag, the run's id and the fresh source inventory (if any)."""

    src: XnatBackend
    dst: XnatBackend
    state: StateDB
    options: ApplyOptions
    reporter: Reporter
    cancel: threading.Event
    run_id: int
    raw_source: Inventory | None


class _Run:
    """One run of the steps: wires the scheduler, the accounting and the state hook, and
    turns a step's end into what each of them needs."""

    def __init__(self, plan: Plan, parts: _Parts) -> None:
        self.plan = plan
        self.parts = parts
        self.reporter = parts.reporter
        self.cancel = parts.cancel
        pair = pair_key(plan)
        self.hook = StateHook(parts.state, pair, parts.run_id, parts.reporter)
        self.result = ApplyResult(run_id=str(parts.run_id), status=COMPLETED)
        self.result.conflicts = [
            (c.address, "; ".join(c.differences) or c.reason)
            for c in plan.changes
            if c.status == ChangeStatus.CONFLICT
        ]
        self.stopped_by: BaseException | None = None
        # Noted as the steps are read, dropped when the experiment is counted.
        self.exp_facts: dict[str, ExperimentFacts] = {}
        self.accounting = Accounting(
            self.result,
            verify=parts.options.verify,
            max_failures=parts.options.max_failures,
            cancel=parts.cancel,
            reporter=parts.reporter,
            listeners=Listeners(
                verify=self._start_verify,
                subject_complete=self._subject_complete,
                halted=lambda: self.stopped_by is not None,
                experiment_done=lambda key: self.exp_facts.pop(key, None),
            ),
            conflicted_subjects={subject_key(a) for a, _ in self.result.conflicts},
        )
        workers = max(1, parts.options.workers)
        slots = TransferSlots(workers)
        self.runner = _StepRunner(
            plan,
            parts.dst,
            self._step_context(slots),
            slots,
            self.hook,
            parts.reporter,
            self.result.conflicts,
        )
        self.verifier = _Verifier(
            plan,
            parts.src,
            parts.dst,
            self.hook,
            parts.raw_source,
            partial(parts.state.remembered_scans_under, pair),
        )
        # A thread per step in flight; the transfer slots keep ``workers`` of them moving.
        self.scheduler: Scheduler[tuple[Step, bool]] = Scheduler(
            Hooks(
                settle=self._settle,
                orphan=self._orphan,
                stopping=lambda: self.result.circuit_breaker_tripped,
                interrupted=self._interrupted,
            ),
            limit=2 * workers,
            cancel=parts.cancel,
        )

    def _step_context(self, slots: TransferSlots) -> StepContext:
        p = self.parts
        return StepContext(
            src=p.src,
            dst=p.dst,
            work_dir=p.options.work_dir,
            failed_dir=p.options.failed_dir,
            run_id=str(p.run_id),
            retry_count=p.options.retry_count,
            retry_delay=p.options.retry_delay,
            reporter=p.reporter,
            cancel=p.cancel,
            dest_scan=self._dest_scan,
            import_handler=import_handler_for(self.plan.dest.server_version),
            prevent_anon=bool((self.plan.config or {}).get("prevent_anon", False)),
            source_project=self.plan.source.project,
            cross_modality_as_files=bool(
                (self.plan.config or {}).get("cross_modality_as_files", False)
            ),
            exclusive=slots.exclusive,
        )

    def _dest_scan(self, step: Step) -> Resource | None:
        d = step.dest
        exp = dest_experiment(self.parts.dst, d.project, str(d.subject), str(d.experiment))
        scan = dest_scan_for(step, exp) if exp else None
        if scan is None:
            return None
        return scan.resources.get(step.resource if isinstance(step, ImportScan) else "DICOM")

    # -- the walk ------------------------------------------------------------------------

    def run(self) -> ApplyResult:
        started = time.monotonic()
        todo = nbytes = skipped = 0
        for step, record in self._records():  # a first pass, to count
            if self._done_before(step, record):
                skipped += 1
            else:
                todo += 1
                nbytes += step_bytes(step)
        self.reporter.run_started(todo, nbytes)
        self.result.steps_skipped = skipped
        if skipped:
            self.reporter.info(f"{skipped} steps already done by an earlier run: skipped")
        abandoned = self.scheduler.run(self._jobs())
        self.accounting.close(self.plan)
        return self._finish(started, abandoned)

    def _records(self) -> Iterator[tuple[Step, tuple[str, str] | None]]:
        """The plan's steps in walk order, each with its latest record in the state DB
        (status, facts digest), looked up one experiment's steps at a time."""
        for _key, steps in groups(ordered_steps(self.plan)):
            records = self.hook.records(steps)
            for step in steps:
                yield step, records.get(step.id)

    @staticmethod
    def _done_before(step: Step, record: tuple[str, str] | None) -> bool:
        """Done by an earlier run with the same facts."""
        return record is not None and record == (StepStatus.DONE, facts_digest(step))

    def _jobs(self) -> Iterator[Job[tuple[Step, bool]]]:
        """The jobs of the steps not done yet, read as the scheduler asks for them; each
        step read is told to accounting, and a step done before ends at once as skipped."""
        verify = self.parts.options.verify
        for step, record in self._records():
            self.accounting.read(step)
            _subj, exp = group_keys(step.address)
            if verify and exp:
                self.exp_facts.setdefault(exp, ExperimentFacts()).note(step)
            if self._done_before(step, record):
                self.accounting.step_ended(step, StepOutcome(STEP_SKIPPED), skipped=True)
            else:
                yield self._job(step, record is not None)
        self.accounting.all_read()

    def _job(self, step: Step, resumed: bool) -> Job[tuple[Step, bool]]:
        return Job(
            id=step.id,
            item=(step, resumed),
            run=partial(self.runner.execute, step, resumed),
            depends_on=tuple(step.depends_on),
            session=None if step.kind in _INLINE else session_key(step),
            inline=step.kind in _INLINE,
        )

    def _settle(
        self, job: Job[tuple[Step, bool]], outcome: Any, error: BaseException | None
    ) -> Settled:
        step = job.item[0]
        if error is not None:  # run_step never raises; belt and braces
            outcome = StepOutcome(FAILED, describe(error))
        return self._step_done(step, outcome)

    def _orphan(self, job: Job[tuple[Step, bool]], failed_dep: str) -> Settled:
        step = job.item[0]
        why = (
            f"not run: {failed_dep} failed" if failed_dep else "not run: its dependencies never ran"
        )
        outcome = StepOutcome(FAILED, why, not_run=True)
        self.hook.step_not_run(step, outcome)
        self.reporter.step_finished(step, STEP_FAILED, why)
        return self._step_done(step, outcome)

    def _step_done(self, step: Step, outcome: StepOutcome) -> Settled:
        if outcome.ending == Ending.FATAL and outcome.fatal is not None:
            self._halt(outcome.fatal)
        if outcome.ending != Ending.FINISHED:
            return Settled.OPEN  # its groups stay open: pending for the next run
        self.accounting.step_ended(step, outcome)
        return Settled.OK if outcome.ok else Settled.FAILED

    def _halt(self, exc: BaseException) -> None:
        """Stop the run for an error every later step would meet too: submit nothing more,
        let the steps in flight end at their next attempt boundary, report the error."""
        if self.stopped_by is None:
            self.stopped_by = exc
            self.reporter.warning(f"stopping the run: {describe(exc)}")
        self.cancel.set()

    def _interrupted(self, again: bool) -> None:
        if again:
            self.reporter.warning("interrupted again: abandoning the steps in flight")
        else:
            self.reporter.warning("interrupted: letting the steps in flight finish")

    def _start_verify(self, exp_key: str) -> None:
        facts = self.exp_facts.pop(exp_key, None) or ExperimentFacts()
        fut = _in_thread(self.verifier.verify, exp_key, facts)
        self.scheduler.watch(fut, partial(self._verify_done, exp_key))

    def _verify_done(self, exp_key: str, fut: Future[Any]) -> None:
        try:
            verdict = fut.result()
        except Exception as exc:
            if is_fatal(exc):
                self._halt(exc)
                self.accounting.verified(exp_key, None)
                return
            verdict = ExperimentVerification(exp_key, False, False, False, None, (describe(exc),))
        self.accounting.verified(exp_key, verdict)

    def _subject_complete(self, subject: str) -> None:
        self.hook.subject_complete(subject, self._subject_fingerprint(subject))

    def _subject_fingerprint(self, subject: str) -> str:
        raw = self.parts.raw_source
        if raw is None:
            return ""
        s = raw.subjects.get(subject)
        return completion_fingerprint(s, self.plan.config) if s is not None else ""

    # -- the end -------------------------------------------------------------------------

    def _finish(self, started: float, abandoned: bool) -> ApplyResult:
        result = self.result
        result.abandoned_steps = abandoned
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
        for part in by_subject(self.plan):
            c = part.change
            if c is None or c.status != ChangeStatus.IN_SYNC or part.has_steps or part.has_work:
                continue
            fingerprint = self._subject_fingerprint(c.address)
            if fingerprint:
                self.hook.subject_complete(c.address, fingerprint)


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
    lock = state.acquire_lock(plan.dest.url, plan.dest.project, operation="apply")
    try:
        _after_lock(lock, state, reporter)
        raw_source = options.source_inventory
        if check_stale:
            raw_source = _refuse_stale(plan, src, dst, state, reporter, options.store_dir)
        _refuse_mismatch(plan, options, raw_source)
        options.work_dir.mkdir(parents=True, exist_ok=True)
        run_id = state.start_run(
            pair_key(plan), config_hash=plan.config_hash, plan_file=options.plan_file
        )
        parts = _Parts(src, dst, state, options, reporter, cancel, run_id, raw_source)
        result: ApplyResult | None = None
        try:
            result = _Run(plan, parts).run()
        finally:
            _record_run(state, run_id, result, cancel)
        if result.circuit_breaker_tripped:
            reporter.warning(
                f"the run was aborted by the circuit breaker after "
                f"{options.max_failures} failed subjects in a row"
            )
        return result
    finally:
        state.release_lock(lock)


def _after_lock(lock: Lock, state: StateDB, reporter: Reporter) -> None:
    """Say whose stale lock was taken over, and end the records of dead runs as interrupted
    (reports only show them so)."""
    if lock.took_over is not None:
        reporter.warning(
            f"took over the lock on {lock.dest_project} left by a process that is gone: "
            f"{lock.took_over.describe()}"
        )
    try:
        state.reap_dead_runs()
    except Exception as exc:
        reporter.warning(f"could not close the records of dead runs: {describe(exc)}")


def _refuse_stale(
    plan: Plan,
    src: XnatBackend,
    dst: XnatBackend,
    state: StateDB,
    reporter: Reporter,
    store_dir: Path | None,
) -> Inventory | None:
    """Raise ``StalePlan`` when the servers moved on since the plan; else the source
    inventory the check read (unfiltered), for verification and fingerprints."""
    reporter.info("checking that the plan is still current")
    report = find_staleness(
        plan, src, dst, RecordedSteps(state, pair_key(plan)), store_dir=store_dir
    )
    if report.what_changed:
        raise StalePlan(report.what_changed)
    return report.raw_source_inventory


def _record_run(
    state: StateDB, run_id: int, result: ApplyResult | None, cancel: threading.Event
) -> None:
    """End the run's record: its summary, or (an unexpected error or a third Ctrl-C) an
    honest interrupted or failed status."""
    if result is None:
        state.end_run(run_id, INTERRUPTED if cancel.is_set() else FAILED_RUN, {})
        return
    summary = result.summary()
    verification = summary.pop("verification")
    state.end_run(run_id, result.status, summary, verification)
