"""Executors for the kinds of plan step, with their retries.

Each executor does one step from start to end and returns a ``StepOutcome``; it never raises
for a failure of the step itself, so the coordinator only has to count outcomes. Retries
follow one rule (``planner.errors``): transient errors (5xx, network, truncated or damaged
downloads) are retried with a doubling delay; anything else fails at once.

Scan imports must be idempotent, because a reply can be lost after the server archived the
files and a process can die between the import and its record in the state DB. A retried,
resumed or repairing import therefore asks XNAT to replace same-named files
(``overwrite_files=true``): the same files replace themselves, nothing is duplicated. A first
attempt refused with 409 is checked against the destination and counted as done only when
the destination already holds exactly the planned files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from planner import fields as F
from planner import modalitymerge
from planner import restpaths as rest
from planner import walk as W
from planner.backend import XnatBackend
from planner.errors import BackendError, BadRequest, Conflict, MalformedReply, NotFound
from planner.gates import session_key
from planner.inventory import Resource, Scan
from planner.plan import (
    CreateAssessor,
    CreateExperiment,
    CreateScan,
    CreateSubject,
    ImportScan,
    Level,
    Step,
    StepKind,
    UpdateDocument,
    UpdateSubject,
    UploadResource,
)
from planner.prearchive import ImportWatch, answered_by_xnat
from planner.progress import Reporter
from planner.sameness import dest_holds, planned_files
from planner.xmldoc import Destination, DocumentError, rewrite, scan_uids
from planner.zipcheck import repack_relative, validate_zip

OK = "ok"
FAILED = "failed"

T = TypeVar("T")
# Looks up what the destination holds for a scan step: its DICOM resource, or None.
DestScanLookup = Callable[[Step], Resource | None]
# Makes the caller the only writer to a destination session (``planner.gates``).
SessionExclusive = Callable[[str | None], AbstractContextManager[None]]


def _no_gate(_key: str | None) -> AbstractContextManager[None]:
    return nullcontext()


class Cancelled(Exception):
    """The run was asked to stop before this step started its next attempt."""


@dataclass
class StepContext:
    """Everything an executor needs; shared (read-only) by all workers of one run."""

    src: XnatBackend
    dst: XnatBackend
    work_dir: Path
    failed_dir: Path
    run_id: str
    retry_count: int
    retry_delay: float
    reporter: Reporter
    cancel: threading.Event
    dest_scan: DestScanLookup | None = None
    import_handler: str = "DICOM-zip"
    # Ask the destination not to run its site anonymization script (the config's
    # ``prevent_anon``); sent only when set.
    prevent_anon: bool = False
    # Upload the DICOM of a scan refused by XNAT's cross-modality rule as plain files (the
    # config's ``cross_modality_as_files``); without it such a scan fails with what to do.
    cross_modality_as_files: bool = False
    # Held around each import request: no two imports into one session at the same time.
    exclusive: SessionExclusive = _no_gate
    # The plan's source project: project and subject resources are read by its labels.
    source_project: str = ""


class Ending(Enum):
    """How a step's run ended, for apply to decide on (``StepOutcome.note`` is its text)."""

    FINISHED = "finished"  # ran to an end, ok or failed
    CANCELLED = "cancelled"  # stopped by a cancel: neither done nor failed
    FATAL = "fatal"  # met an error that ends the whole run (``is_fatal``)


@dataclass
class StepOutcome:
    status: str
    error: str = ""
    dest_id: str = ""  # accession ID the destination gave a created subject or experiment
    bytes_moved: int = 0
    attempts: int = 0
    kept_zip: Path | None = None
    note: str = ""
    # The error that ends the whole run (``is_fatal``), with ending FATAL.
    fatal: BaseException | None = None
    ending: Ending = Ending.FINISHED
    # Failed without running: a step it depends on failed or never ran (``error`` says which).
    not_run: bool = False

    @property
    def ok(self) -> bool:
        return self.status == OK


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, BackendError) and exc.transient


def is_fatal(exc: BaseException) -> bool:
    """An error no later step can avoid (a session that cannot be renewed): stop the run."""
    return isinstance(exc, BackendError) and exc.fatal


def describe(exc: BaseException) -> str:
    """One line for a failed request: the server's reason when it gave one."""
    if isinstance(exc, BackendError):
        text = str(exc)
        if exc.reason and exc.reason not in text:
            text = f"{text}: {exc.reason}"
        return text
    return f"{type(exc).__name__}: {exc}"


def with_retries(
    attempt: Callable[[int], T],
    *,
    retry_count: int,
    retry_delay: float,
    cancel: threading.Event,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> tuple[T, int]:
    """Call ``attempt(n)`` (n = 1, 2, ...) until it succeeds; return its result and ``n``.

    Retries transient errors only, at most ``retry_count`` times, waiting ``retry_delay``
    doubling each time; the wait ends early (and no further attempt starts) on ``cancel``.
    """

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None:
            exc = state.outcome.exception()
            wait = state.next_action.sleep if state.next_action else 0.0
            if exc is not None:
                on_retry(state.attempt_number, exc, wait)

    retrying = Retrying(
        stop=stop_after_attempt(max(0, retry_count) + 1),
        wait=wait_exponential(multiplier=retry_delay, exp_base=2, min=0, max=3600),
        retry=retry_if_exception(is_transient),
        sleep=cancel.wait,
        before_sleep=before_sleep,
        reraise=True,
    )
    for state in retrying:
        with state:
            n = state.retry_state.attempt_number
            if cancel.is_set():
                raise Cancelled("stopped before the next attempt")
            result = attempt(n)
        if not state.retry_state.outcome or not state.retry_state.outcome.failed:
            return result, n
    raise AssertionError("unreachable: tenacity either returns or re-raises")


# -- destination paths -------------------------------------------------------------------


subject_path = rest.subject
experiment_path = rest.experiment


owner_path = rest.dest_owner


def zip_name(address: str) -> str:
    """A file name for a step's zip: the address with ``/`` as ``__``."""
    return address.replace("/", "__") + ".zip"


def private_file(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) before anything writes into it: temporary
    zips hold patient data like kept ones, whatever the umask."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _clean_params(values: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in values.items() if v not in (None, "")}


# -- executors ---------------------------------------------------------------------------


def run_step(step: Step, ctx: StepContext, *, resumed: bool = False) -> StepOutcome:
    """Run any step; ``resumed`` says an earlier run started it without finishing it."""
    runner = _RUNNERS.get(str(step.kind))
    if runner is None:
        return StepOutcome(FAILED, f"unknown step kind {step.kind!r}: upgrade xnatctl")
    try:
        return runner(step, ctx, resumed)
    except Cancelled as exc:
        return StepOutcome(FAILED, f"cancelled: {exc}", note="cancelled", ending=Ending.CANCELLED)
    except Exception as exc:  # one broken step must not take the run down with it
        if is_fatal(exc):
            return StepOutcome(FAILED, describe(exc), note="fatal", fatal=exc, ending=Ending.FATAL)
        return StepOutcome(FAILED, describe(exc))


def _retry_note(ctx: StepContext, step: Step) -> Callable[[int, BaseException, float], None]:
    def note(n: int, exc: BaseException, wait: float) -> None:
        ctx.reporter.warning(
            f"{step.address}: attempt {n} failed ({describe(exc)}); retrying in {wait:.1f}s"
        )

    return note


def _run_attempts(
    step: Step,
    ctx: StepContext,
    attempt: Callable[[int], T],
    *,
    done: Callable[[T, int], StepOutcome],
    failed: Callable[[Exception], StepOutcome] | None = None,
) -> StepOutcome:
    """Every step's attempts, under the run's retry rule (``with_retries``, each retry told
    to the reporter). ``done`` makes the outcome from the result and the number of attempts;
    ``failed`` words an error that ends this step only (by default ``describe``). A
    cancellation or a fatal error propagates: ``run_step`` turns it into the outcome that
    stops the run."""
    try:
        result, n = with_retries(
            attempt,
            retry_count=ctx.retry_count,
            retry_delay=ctx.retry_delay,
            cancel=ctx.cancel,
            on_retry=_retry_note(ctx, step),
        )
    except Cancelled:
        raise
    except Exception as exc:
        if is_fatal(exc):
            raise
        return failed(exc) if failed is not None else StepOutcome(FAILED, describe(exc))
    return done(result, n)


def _create(
    step: Step,
    ctx: StepContext,
    path: str,
    params: dict[str, str],
    *,
    on_conflict: Callable[[Conflict], str] | None = None,
) -> StepOutcome:
    """One idempotent PUT under the retry rule; ``on_conflict`` words a 409 for people."""

    def attempt(_n: int) -> str:
        return ctx.dst.request_text("PUT", path, params).strip()

    def done(dest_id: str, n: int) -> StepOutcome:
        return StepOutcome(OK, dest_id=dest_id.splitlines()[0] if dest_id else "", attempts=n)

    def failed(exc: Exception) -> StepOutcome:
        if isinstance(exc, Conflict) and on_conflict is not None:
            return StepOutcome(FAILED, on_conflict(exc))
        return StepOutcome(FAILED, describe(exc))

    return _run_attempts(step, ctx, attempt, done=done, failed=failed)


def _create_subject(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    """Create (or, as XNAT does for an existing label, update) a subject with its fields."""
    assert isinstance(step, CreateSubject | UpdateSubject)
    params = F.subject_params(dict(step.fields))
    return _create(step, ctx, owner_path(step.dest), params)


_update_subject = _create_subject  # the same idempotent PUT


def _create_experiment(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    """Only what creation needs; the experiment's XML document carries its fields later."""
    assert isinstance(step, CreateExperiment)
    params = _clean_params({"xsiType": step.xsi_type, "date": step.date})
    return _create(step, ctx, owner_path(step.dest), params)


def _create_assessor(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    """A session assessor: PUT with its xsiType (200 with its ID when it exists already)."""
    assert isinstance(step, CreateAssessor)
    params = _clean_params({"xsiType": step.xsi_type, "date": step.date})
    return _create(step, ctx, owner_path(step.dest), params)


def _create_scan(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    """PUT a scan no DICOM import creates, under the source scan's ID.

    XNAT answers 200 whether the scan is new or already there with the same xsiType, so a
    retried or resumed step is harmless; an existing scan of another xsiType is 409, which
    fails the step (and so its resources) rather than mixing two scans.
    """
    assert isinstance(step, CreateScan)
    params = _clean_params(
        {
            "xsiType": step.xsi_type,
            "type": step.type,
            "series_description": step.series_description,
        }
    )

    def conflict(exc: Conflict) -> str:
        return (
            f"the destination already has scan {step.dest.scan} of experiment "
            f"{step.dest.experiment} with another xsiType than {step.xsi_type} "
            f"({describe(exc)}); resolve it there, then make a new plan"
        )

    return _create(step, ctx, owner_path(step.dest), params, on_conflict=conflict)


def _document_item(doc: Any, path: str) -> dict[str, Any]:
    try:
        item = doc["items"][0]
        if not isinstance(item.get("data_fields"), dict):
            raise TypeError("no data_fields")
        return item
    except (KeyError, IndexError, TypeError, AttributeError):
        raise MalformedReply(f"{path}: not an XNAT object document") from None


def _dest_scans(item: dict[str, Any]) -> dict[str, Scan]:
    out: dict[str, Scan] = {}
    for child in item.get("children") or ():
        if str(child.get("field", "")).endswith("scan"):
            for s in child.get("items") or ():
                df = s.get("data_fields") or {}
                sid = str(df.get("ID") or "")
                if sid:
                    out[sid] = Scan(id=sid, uid=str(df.get("UID") or ""))
    return out


def scan_mapping(
    source_uids: dict[str, str], carried: list[str], dest: dict[str, Scan]
) -> dict[str, str]:
    """Source scan ID -> destination scan ID, by the walk's pairing (ID, then series UID)."""
    src = {sid: Scan(id=sid, uid=source_uids.get(sid, "")) for sid in carried}
    pairs, _conflicts, _src_only, _dst_only = W.pair_scans(src, dest)
    return {s.id: d.id for s, d in pairs}


def _update_experiment(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    """Carry an experiment's (or assessor's) fields: the source's XML document, rewritten for
    the destination, PUT with ``allowDataDeletion=false`` so nothing there is removed."""
    assert isinstance(step, UpdateDocument)
    d = step.dest
    assessor = step.owner_level == Level.ASSESSOR
    dest_path = owner_path(d)

    def attempt(_n: int) -> None:
        source_xml = ctx.src.get_text(rest.document_source(step), {"format": "xml"})
        item = _document_item(ctx.dst.get_json(dest_path), dest_path)
        df = item["data_fields"]
        if assessor:
            dest = Destination(
                project=d.project,
                label=str(d.assessor),
                id=str(df.get("ID") or ""),
                subject_id=str(df.get("subject_ID") or ""),
                session_id=str(df.get("imageSession_ID") or df.get("session_ID") or ""),
            )
        else:
            carried = list(step.scans)
            mapping = scan_mapping(scan_uids(source_xml), carried, _dest_scans(item))
            dest = Destination(
                project=d.project,
                label=str(d.experiment),
                id=str(df.get("ID") or ""),
                subject_id=str(df.get("subject_ID") or ""),
                scan_ids=mapping,
            )
        body = rewrite(source_xml, dest)
        ctx.dst.request_text(
            "PUT",
            dest_path,
            {"allowDataDeletion": "false", "inbody": "true"},
            data=body,
            headers={"Content-Type": "text/xml"},
        )

    def failed(exc: Exception) -> StepOutcome:
        if isinstance(exc, DocumentError):
            return StepOutcome(FAILED, f"the source's XML document cannot be carried: {exc}")
        return StepOutcome(FAILED, describe(exc))

    return _run_attempts(
        step, ctx, attempt, done=lambda _r, n: StepOutcome(OK, attempts=n), failed=failed
    )


class _ZipJob:
    """The temp zip of one step: downloaded once, re-downloaded only when found bad."""

    def __init__(self, ctx: StepContext, step: Step) -> None:
        self.ctx = ctx
        self.step = step
        self.path = ctx.work_dir / f"{ctx.run_id}-{zip_name(step.address)}"
        self.downloaded = False
        self.valid = False
        self.bytes = 0

    def fetch(self, source: str, params: dict[str, str], *, dicom: bool) -> None:
        if self.valid:
            return
        self.path.unlink(missing_ok=True)
        self.downloaded = False
        private_file(self.path)

        def progress(n: int) -> None:
            self.ctx.reporter.step_progress(self.step, n)

        self.bytes = self.ctx.src.download(source, self.path, params, on_bytes=progress)
        self.downloaded = True
        expected = (
            self.step.file_count if isinstance(self.step, ImportScan | UploadResource) else None
        )
        validate_zip(
            self.path,
            expected_files=expected,
            dicom=dicom,
        )
        self.valid = True

    def keep(self) -> Path | None:
        """Move a complete download to the failed directory, which outlives the run."""
        if not self.downloaded or not self.path.exists():
            return None
        target = self.ctx.failed_dir / self.ctx.run_id / zip_name(self.step.address)
        # Kept zips hold patient data: readable by their owner only.
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        shutil.move(str(self.path), target)
        target.chmod(0o600)
        return target

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def _failed_with_zip(job: _ZipJob, exc: BaseException, attempts: int) -> StepOutcome:
    kept = None
    try:
        kept = job.keep()
    except OSError as move_error:
        job.ctx.reporter.warning(f"{job.step.address}: could not keep the zip: {move_error}")
    error = describe(exc)
    if kept is not None:
        error += f" (zip kept at {kept})"
        job.ctx.reporter.warning(f"{job.step.address}: failed; its zip is kept at {kept}")
    return StepOutcome(FAILED, error, attempts=attempts, kept_zip=kept)


# XNAT 1.8.10 taught the DICOM-zip handler to archive straight to `dest`; before that it
# ignores `dest` and `overwrite_files` (files wait in the prearchive), and the session
# importer (SI) is the handler that archives directly with the same parameters.
DIRECT_ARCHIVE_SINCE = (1, 8, 10)


def import_handler_for(server_version: str) -> str:
    """The import handler that archives straight into the planned session on this server."""
    numbers: list[int] = []
    for part in server_version.strip().split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    if len(numbers) >= 2 and tuple(numbers[:3]) < DIRECT_ARCHIVE_SINCE:
        return "SI"
    return "DICOM-zip"


_CONFLICT_WORDS = ("unable to archive", "already exists", "conflict", "overwrite")


def _looks_like_archive_conflict(exc: BackendError) -> bool:
    text = f"{exc.reason} {exc}".lower()
    return any(word in text for word in _CONFLICT_WORDS)


def import_params(ctx: StepContext, project: str, subject: str, experiment: str) -> dict[str, str]:
    """The query of one scan's import into the planned session, for this run's context."""
    return import_query(ctx.import_handler, project, subject, experiment, ctx.prevent_anon)


def import_query(
    handler: str, project: str, subject: str, experiment: str, prevent_anon: bool = False
) -> dict[str, str]:
    """The query of one import into ``project/subject/experiment`` with ``handler``.

    ``dest`` of archive form makes XNAT archive at once. DICOM-zip (1.8.10+) archives through
    the prearchive and merges into an existing session only when allowed to
    (``DicomZipImporter.archiveSession``). XNAT's ``Importer.parseOverrideValue`` derives that
    permission from ``overwrite`` for every handler, replacing any ``allowSessionMerge`` sent:
    ``overwrite=append`` is what lets both handlers merge. ``allowSessionMerge=true`` states
    the same intent for DICOM-zip and costs nothing where it is overridden.
    Apply and the destination probe (``planner.probe``) both import with this query.
    """
    params = {
        "import-handler": handler,
        "PROJECT_ID": project,
        "SUBJECT_ID": subject,
        "EXPT_LABEL": experiment,
        "dest": f"/archive/projects/{project}/subjects/{subject}/experiments/{experiment}",
        "overwrite": "append",
    }
    if handler == "DICOM-zip":
        params["allowSessionMerge"] = "true"
    if prevent_anon:
        params["prevent_anon"] = "true"
    return params


def post_import(
    dst: XnatBackend,
    zip_path: Path,
    params: dict[str, str],
    *,
    project: str,
    experiment: str,
    on_leftovers: Callable[[list[str]], None] | None = None,
) -> str:
    """POST one zip to the import service and return the reply (the archive URI).

    DICOM-zip archives through the prearchive: when the import fails, the prearchive session
    it created is removed (``planner.prearchive``) and what could not be removed is passed to
    ``on_leftovers`` before the error is raised again.
    """
    watch = (
        ImportWatch.start(dst, project, experiment)
        if params.get("import-handler") == "DICOM-zip"
        else None
    )
    try:
        return dst.upload(
            "POST", rest.IMPORT_SERVICE, zip_path, params, content_type="application/zip"
        )
    except Exception as exc:
        if watch is not None:
            left = watch.clean_up(zip_path, remove=answered_by_xnat(exc))
            if on_leftovers is not None:
                on_leftovers(left)
        raise


def _import_scan(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    assert isinstance(step, ImportScan)
    d = step.dest
    project, subject, experiment = d.project, str(d.subject), str(d.experiment)
    source = rest.import_source(step)
    job = _ZipJob(ctx, step)
    base_params = import_params(ctx, project, subject, experiment)
    notes: list[str] = []
    leftovers: list[str] = []
    tries = 0

    def on_leftovers(left: list[str]) -> None:
        leftovers[:] = left
        for note in left:
            ctx.reporter.warning(f"{step.address}: {note}")

    def attempt(n: int) -> None:
        nonlocal tries
        tries = n
        job.fetch(source, {"format": "zip"}, dicom=True)
        params = dict(base_params)
        overwrite_files = n > 1 or resumed or step.repair
        if overwrite_files:
            params["overwrite_files"] = "true"
        try:
            with ctx.exclusive(session_key(step)):
                post_import(
                    ctx.dst,
                    job.path,
                    params,
                    project=project,
                    experiment=experiment,
                    on_leftovers=on_leftovers,
                )
        except (Conflict, BadRequest) as exc:
            # XNAT's DICOM-zip handler reports an archive conflict as 400 ("unable to archive"),
            # the session importer as 409: either way, check what the destination holds.
            if isinstance(exc, BadRequest) and not _looks_like_archive_conflict(exc):
                raise
            if _as_files(step, ctx, job.path):
                notes.append(
                    "stored as files: XNAT's import refuses this scan's modality into the "
                    "session (preventCrossModalityMerge), so the destination's site "
                    "anonymization did not run on them"
                )
                return
            if overwrite_files or ctx.dest_scan is None:
                raise
            held = ctx.dest_scan(step)
            matches, why = dest_holds(held, planned_files(step))
            if not matches:
                raise Conflict(
                    f"the destination refused the import of {step.address} as a conflict "
                    f"and {why}; make a new plan, which repairs it",
                    status=exc.status,
                    reason=exc.reason,
                ) from exc
            notes.append("already on the destination with the same files")

    return _run_zip_step(job, attempt, lambda: tries, note=notes, leftovers=leftovers)


def _as_files(step: Step, ctx: StepContext, zip_path: Path) -> bool:
    """Store a scan whose import was refused, when the refusal is XNAT's cross-modality rule
    (``planner.modalitymerge``): True when stored, False when the refusal has another cause."""
    assert isinstance(step, ImportScan)
    d = step.dest
    exp_path = rest.owner(d.project, d.subject, d.experiment)
    session_type = modalitymerge.session_xsi_type(ctx.dst, exp_path)
    if not modalitymerge.other_modality(session_type, step.xsi_type):
        return False
    if not ctx.cross_modality_as_files:
        raise Conflict(
            f"the destination refused to merge {step.address} ({step.xsi_type}) into "
            f"session {d.experiment} ({session_type}): XNAT's preventCrossModalityMerge "
            "(on by default) refuses a scan of another modality; ask the destination's "
            "administrator to switch it off, or set cross_modality_as_files: true in the "
            "transfer config to upload its DICOM as files (the destination's site "
            "anonymization script does not run on them)"
        )
    scan_path = owner_path(d)
    modalitymerge.put_scan_files(ctx.dst, scan_path, modalitymerge.scan_params(step), zip_path)
    return True


def _run_zip_step(
    job: _ZipJob,
    attempt: Callable[[int], None],
    tries: Callable[[], int],
    *,
    note: list[str] | None = None,
    leftovers: list[str] | None = None,
) -> StepOutcome:
    """Run a step that moves a zip under the retry rule: the zip is deleted when the step
    succeeds or is cancelled, and kept (with its path in the error) when it fails. What the
    last failed attempt left on the destination (``leftovers``) is told in the error."""

    def done(_result: None, _n: int) -> StepOutcome:
        job.discard()
        return StepOutcome(OK, bytes_moved=job.bytes, attempts=tries(), note="; ".join(note or []))

    def failed(exc: Exception) -> StepOutcome:
        outcome = _failed_with_zip(job, exc, tries())
        if leftovers:
            outcome.error += "; " + "; ".join(leftovers)
        return outcome

    try:
        return _run_attempts(job.step, job.ctx, attempt, done=done, failed=failed)
    except Exception as exc:
        if isinstance(exc, Cancelled) or is_fatal(exc):
            job.discard()  # the run stops: nothing is wrong with this zip, keep none
        raise


def resource_owner(step: Step, dst: XnatBackend) -> str:
    """The destination path of the entity an upload_resource step writes to.

    A resource of a scan the same run imports is planned with the scan's series UID
    (``scan_uid``): DICOM import numbers the destination scan by its SeriesNumber, which need
    not be the source scan ID, and XNAT answers 404 "Unable to identify scan" for a resource
    of a scan that does not exist (``XNATTemplate``). So the scan is found here, in the
    destination experiment's document, by the walk's pairing (ID when the series UIDs agree,
    else series UID), as verification will pair it.
    """
    assert isinstance(step, UploadResource)
    d, uid = step.dest, step.scan_uid
    if step.owner_level != Level.SCAN or not uid:
        return owner_path(d)
    exp_path = owner_path(replace(d, scan=None))
    item = _document_item(dst.get_json(exp_path), exp_path)
    source = Scan(id=step.source_owner_id or str(d.scan), uid=uid)
    pairs = W.pair_scans({source.id: source}, _dest_scans(item))[0]
    if not pairs:
        raise NotFound(
            f"no scan of series {uid} in experiment {d.experiment} on the destination "
            f"for the resource of source scan {source.id}",
            status=404,
        )
    return owner_path(replace(d, scan=pairs[0][1].id))


def _upload_resource(step: Step, ctx: StepContext, resumed: bool) -> StepOutcome:
    assert isinstance(step, UploadResource)
    label = step.dest.label or step.label
    create_params = _clean_params({"format": step.format, "content": step.content})
    job = _ZipJob(ctx, step)
    flat = job.path.with_name(job.path.name[: -len(".zip")] + ".flat.zip")
    has_files = step.file_count > 0
    source = rest.files(rest.upload_source(step, ctx.source_project))

    tries = 0

    def attempt(n: int) -> None:
        nonlocal tries
        tries = n
        if has_files:
            was_valid = job.valid
            job.fetch(source, {"format": "zip"}, dicom=False)
            if not was_valid or not flat.exists():
                private_file(flat)
                repack_relative(job.path, flat)
        resource_path = rest.resource(resource_owner(step, ctx.dst), label)
        # A 409 says the folder exists already: its files are uploaded with overwrite below.
        with contextlib.suppress(Conflict):
            ctx.dst.request_text("PUT", resource_path, create_params)
        if has_files:
            ctx.dst.upload(
                "PUT",
                rest.files(resource_path),
                flat,
                {"extract": "true", "overwrite": "true", "inbody": "true"},
                content_type="application/zip",
            )

    try:
        return _run_zip_step(job, attempt, lambda: tries)
    finally:
        flat.unlink(missing_ok=True)


_RUNNERS: dict[str, Callable[[Step, StepContext, bool], StepOutcome]] = {
    StepKind.CREATE_SUBJECT.value: _create_subject,
    StepKind.CREATE_EXPERIMENT.value: _create_experiment,
    StepKind.IMPORT_SCAN.value: _import_scan,
    StepKind.CREATE_SCAN.value: _create_scan,
    StepKind.UPLOAD_RESOURCE.value: _upload_resource,
    StepKind.UPDATE_SUBJECT.value: _update_subject,
    StepKind.UPDATE_EXPERIMENT.value: _update_experiment,
    StepKind.CREATE_ASSESSOR.value: _create_assessor,
}
