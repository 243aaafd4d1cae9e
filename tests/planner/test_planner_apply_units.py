"""Narrow unit tests of the step machinery: retries, paths, the 409 check, accounting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from planner.errors import (
    BadRequest,
    Conflict,
    NetworkError,
    NotFound,
    PermissionDenied,
    ServerError,
)
from planner.inventory import FileEntry, Resource
from planner.plan import Level, Step, StepKind
from planner.progress import NullReporter
from planner.sameness import PlannedFiles, dest_holds
from planner.steps import (
    Cancelled,
    StepContext,
    owner_path,
    run_step,
    with_retries,
    zip_name,
)
from tests.planner.steps import Dest, make_step


def flaky(failures: list[Exception]):
    calls: list[int] = []

    def attempt(n: int) -> str:
        calls.append(n)
        if failures:
            raise failures.pop(0)
        return "ok"

    return attempt, calls


def test_transient_errors_are_retried_until_success() -> None:
    attempt, calls = flaky([ServerError("503", status=503), NetworkError("reset")])
    result, n = with_retries(attempt, retry_count=3, retry_delay=0, cancel=threading.Event())
    assert (result, n) == ("ok", 3)
    assert calls == [1, 2, 3]


def test_retries_stop_after_retry_count() -> None:
    attempt, calls = flaky([ServerError("503", status=503)] * 10)
    with pytest.raises(ServerError):
        with_retries(attempt, retry_count=2, retry_delay=0, cancel=threading.Event())
    assert calls == [1, 2, 3]


@pytest.mark.parametrize(
    "exc", [BadRequest("400", status=400), NotFound("404", status=404), Conflict("409")]
)
def test_other_client_errors_fail_at_once(exc: Exception) -> None:
    attempt, calls = flaky([exc])
    with pytest.raises(type(exc)):
        with_retries(attempt, retry_count=5, retry_delay=0, cancel=threading.Event())
    assert calls == [1]


def test_the_delay_doubles_between_attempts() -> None:
    waits: list[float] = []
    attempt, _ = flaky([ServerError("x")] * 3)
    with_retries(
        attempt,
        retry_count=3,
        retry_delay=0.001,
        cancel=threading.Event(),
        on_retry=lambda n, exc, wait: waits.append(wait),
    )
    assert waits == pytest.approx([0.001, 0.002, 0.004])


def test_a_cancel_during_the_wait_starts_no_new_attempt() -> None:
    cancel = threading.Event()
    attempt, calls = flaky([ServerError("x")] * 5)

    def on_retry(n: int, exc: BaseException, wait: float) -> None:
        cancel.set()

    with pytest.raises(Cancelled):
        with_retries(attempt, retry_count=5, retry_delay=30, cancel=cancel, on_retry=on_retry)
    assert calls == [1]


def test_owner_paths_quote_labels() -> None:
    assert owner_path(Dest("P")) == "/data/projects/P"
    assert owner_path(Dest("P", "S 1", "E/1", scan="3")) == (
        "/data/projects/P/subjects/S%201/experiments/E%2F1/scans/3"
    )
    assert owner_path(Dest("P", "S", "E", assessor="A")) == (
        "/data/projects/P/subjects/S/experiments/E/assessors/A"
    )
    assert zip_name("S/E/scans/1") == "S__E__scans__1.zip"


def _resource(*files: tuple[str, int, str]) -> Resource:
    return Resource("DICOM", "DICOM", "", tuple(FileEntry(p, s, d) for p, s, d in files))


def names_digest(resource: Resource) -> str:
    from planner.sameness import names_digest

    return names_digest(resource)


def _digest(resource: Resource) -> str:
    from planner.compare import files_digest

    return files_digest(resource)


def test_dicom_on_the_destination_matches_by_names_and_count() -> None:
    # XNAT's site anonymization rewrites headers on import: other sizes and MD5s, same names.
    planned = _resource(("1.dcm", 10, "a"), ("2.dcm", 20, "b"))
    facts = PlannedFiles(
        file_count=2,
        bytes=30,
        files_digest=_digest(planned),
        names_digest=names_digest(planned),
        dicom=True,
    )
    rewritten = _resource(("1.dcm", 16, "c"), ("2.dcm", 26, "d"))
    assert dest_holds(rewritten, facts) == (True, "")
    ok, why = dest_holds(_resource(("1.dcm", 10, "a"), ("3.dcm", 20, "b")), facts)
    assert not ok and "names differ" in why
    ok, why = dest_holds(_resource(("1.dcm", 10, "a")), facts)
    assert not ok and "1 files" in why


def test_the_destination_matches_only_with_the_same_files() -> None:
    same = _resource(("1.dcm", 10, "a"), ("2.dcm", 20, "b"))
    facts = PlannedFiles(file_count=2, bytes=30, files_digest=_digest(same))
    assert dest_holds(same, facts) == (True, "")
    ok, why = dest_holds(_resource(("1.dcm", 10, "a")), facts)
    assert not ok and "1 files" in why
    ok, why = dest_holds(_resource(("1.dcm", 10, "a"), ("2.dcm", 20, "c")), facts)
    assert not ok and "differ" in why
    ok, why = dest_holds(None, facts)
    assert not ok and "no such scan" in why


class RecordingBackend:
    """Only what an import step touches, with scripted replies."""

    url = "http://fake"

    def __init__(self, upload_errors: list[Exception] | None = None) -> None:
        self.upload_errors = list(upload_errors or [])
        self.uploads: list[dict[str, str]] = []
        self.prearchive: list[dict[str, str]] = []  # rows of /data/prearchive/projects/P
        self.deleted: list[str] = []

    def get_rows(self, path, params=None) -> list[dict[str, str]]:
        assert path == "/data/prearchive/projects/P", path
        return list(self.prearchive)

    def request_text(self, method, path, params=None, **kw) -> str:
        assert method == "DELETE", (method, path)
        self.deleted.append(path)
        self.prearchive = [r for r in self.prearchive if "/data" + r["url"] != path]
        return ""

    def download(self, path, dest, params=None, *, on_bytes=None) -> int:
        import zipfile

        from planner.zipcheck import looks_like_dicom  # noqa: F401 - the real check runs

        with zipfile.ZipFile(dest, "w") as zf:
            zf.writestr("a.dcm", b"\0" * 128 + b"DICM" + b"\0" * 64)
        return Path(dest).stat().st_size

    def upload(self, method, path, src, params=None, *, content_type="", on_bytes=None) -> str:
        self.uploads.append(dict(params or {}))
        if self.upload_errors:
            raise self.upload_errors.pop(0)
        return "/data/archive/projects/P/subjects/S/experiments/E\r\n"


def _scan_step(**facts) -> Step:
    base = {
        "source_experiment_id": "X1",
        "scan_id": "1",
        "file_count": 1,
        "bytes": 196,
        "files_digest": "",
        "resource": "DICOM",
        "repair": False,
    }
    base.update(facts)
    return make_step(StepKind.IMPORT_SCAN, "S/E/scans/1", Dest("P", "S", "E", scan="1"), **base)


def _ctx(tmp_path: Path, backend: RecordingBackend, dest_scan=None) -> StepContext:
    return StepContext(
        src=backend,  # type: ignore[arg-type]
        dst=backend,  # type: ignore[arg-type]
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
        run_id="7",
        retry_count=2,
        retry_delay=0,
        reporter=NullReporter(),
        cancel=threading.Event(),
        dest_scan=dest_scan,
    )


def test_only_retries_resumes_and_repairs_overwrite_files(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    backend = RecordingBackend([ServerError("503", status=503)])
    outcome = run_step(_scan_step(), _ctx(tmp_path, backend))
    assert outcome.ok and outcome.attempts == 2
    assert [u.get("overwrite_files") for u in backend.uploads] == [None, "true"]
    assert backend.uploads[0]["overwrite"] == "append"

    for kwargs, facts in (({"resumed": True}, {}), ({}, {"repair": True})):
        backend = RecordingBackend()
        assert run_step(_scan_step(**facts), _ctx(tmp_path, backend), **kwargs).ok
        assert backend.uploads[0]["overwrite_files"] == "true"
    assert list((tmp_path / "work").iterdir()) == [], "temp zips are deleted at once"


def test_a_first_attempt_conflict_is_done_when_the_destination_holds_the_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "work").mkdir()
    held = _resource(("a.dcm", 196, "d"))
    step = _scan_step(files_digest=_digest(held))
    backend = RecordingBackend([Conflict("409", status=409)])
    outcome = run_step(step, _ctx(tmp_path, backend, dest_scan=lambda s: held))
    assert outcome.ok and "already on the destination" in outcome.note
    assert len(backend.uploads) == 1


def test_a_first_attempt_conflict_with_other_files_fails_and_keeps_the_zip(
    tmp_path: Path,
) -> None:
    (tmp_path / "work").mkdir()
    # DICOM is the same by its file names (the destination may rewrite headers), so "other
    # files" means other names here; the bytes alone no longer tell (planner.sameness).
    other = _resource(("b.dcm", 999, "x"))
    step = _scan_step(names_digest=names_digest(_resource(("a.dcm", 196, "d"))))
    backend = RecordingBackend([Conflict("409", status=409)])
    outcome = run_step(step, _ctx(tmp_path, backend, dest_scan=lambda s: other))
    assert not outcome.ok
    assert "conflict" in outcome.error and "file names differ" in outcome.error
    assert outcome.kept_zip == tmp_path / "failed" / "7" / "S__E__scans__1.zip"
    assert outcome.kept_zip.exists()
    assert str(outcome.kept_zip) in outcome.error
    assert len(backend.uploads) == 1, "a conflict is not retried"


class CorruptOnceBackend(RecordingBackend):
    """The first download is damaged on the wire; the second is good."""

    def __init__(self) -> None:
        super().__init__()
        self.downloads = 0

    def download(self, path, dest, params=None, *, on_bytes=None) -> int:
        self.downloads += 1
        size = super().download(path, dest, params, on_bytes=on_bytes)
        if self.downloads == 1:
            data = bytearray(Path(dest).read_bytes())
            data[40] ^= 0xFF  # inside the stored entry: its CRC no longer matches
            Path(dest).write_bytes(bytes(data))
        return size


def test_a_damaged_download_is_fetched_again_before_any_import(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    backend = CorruptOnceBackend()
    outcome = run_step(_scan_step(), _ctx(tmp_path, backend))
    assert outcome.ok and outcome.attempts == 2
    assert backend.downloads == 2
    assert len(backend.uploads) == 1, "the damaged zip never reached the destination"
    assert backend.uploads[0]["overwrite_files"] == "true"


def test_an_unknown_step_kind_fails_the_step_not_the_run(tmp_path: Path) -> None:
    step = Step(
        id="x:S",
        kind="delete_everything",  # type: ignore[arg-type]
        address="S",
        level=Level.SUBJECT,
        dest=Dest("P", "S"),
    )
    outcome = run_step(step, _ctx(tmp_path, RecordingBackend()))
    assert not outcome.ok and "unknown step kind" in outcome.error


def test_a_dicom_zip_import_asks_to_merge_into_the_session(tmp_path: Path) -> None:
    # DicomZipImporter.archiveSession (1.8.10+) merges into an existing session only with
    # allowSessionMerge=true; `overwrite` is not read there but is for the SI handler.
    (tmp_path / "work").mkdir()
    backend = RecordingBackend()
    assert run_step(_scan_step(), _ctx(tmp_path, backend)).ok
    params = backend.uploads[0]
    assert params["import-handler"] == "DICOM-zip"
    assert params["allowSessionMerge"] == "true"
    assert params["dest"] == "/archive/projects/P/subjects/S/experiments/E"
    assert "prevent_anon" not in params, "sent only when the config asks"


def test_the_session_importer_of_older_servers_is_sent_what_it_was(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    backend = RecordingBackend()
    ctx = _ctx(tmp_path, backend)
    ctx.import_handler = "SI"
    assert run_step(_scan_step(), ctx).ok
    params = backend.uploads[0]
    assert params["import-handler"] == "SI" and params["overwrite"] == "append"
    assert "allowSessionMerge" not in params


def test_prevent_anon_is_sent_when_set(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    for handler in ("DICOM-zip", "SI"):
        backend = RecordingBackend()
        ctx = _ctx(tmp_path, backend)
        ctx.import_handler = handler
        ctx.prevent_anon = True
        assert run_step(_scan_step(), ctx).ok
        assert backend.uploads[0]["prevent_anon"] == "true"


# -- what a failed import leaves in the prearchive ----------------------------------------------


def _pre(ts: str, folder: str, status: str, tag: str = "") -> dict[str, str]:
    return {
        "project": "P",
        "timestamp": ts,
        "folderName": folder,
        "name": folder,
        "tag": tag,
        "status": status,
        "url": f"/prearchive/projects/P/{ts}/{folder}",
    }


class LeavesPrearchive(RecordingBackend):
    """An import that fails after XNAT put the upload in the prearchive (DicomZipImporter
    wraps any archive failure in a 400), next to sessions that were there before."""

    def __init__(self, error: Exception, *, delete_fails: bool = False) -> None:
        super().__init__([error])
        self.delete_fails = delete_fails
        self.prearchive = [_pre("20240101_000000000", "E", "CONFLICT"), _pre("1", "OTHER", "ERROR")]

    def upload(self, method, path, src, params=None, *, content_type="", on_bytes=None) -> str:
        if self.upload_errors:
            self.prearchive.append(_pre("20990101_000000000", "E", "CONFLICT"))
            self.prearchive.append(_pre("20990101_000000001", "F", "CONFLICT"))  # not ours
            self.prearchive.append(_pre("20990101_000000002", "E", "READY"))  # not a leftover
        return super().upload(method, path, src, params, content_type=content_type)

    def request_text(self, method, path, params=None, **kw) -> str:
        if self.delete_fails:
            raise PermissionDenied("403", status=403, reason="Unable to modify session data")
        return super().request_text(method, path, params, **kw)


def test_a_failed_import_removes_the_prearchive_session_it_created_and_nothing_else(
    tmp_path: Path,
) -> None:
    # PrearcSessionResource.handleDelete; TestPrearchiveMgmt.testPrearchiveSessionDelete
    (tmp_path / "work").mkdir()
    backend = LeavesPrearchive(BadRequest("400", status=400, reason="unable to archive"))
    outcome = run_step(_scan_step(), _ctx(tmp_path, backend))
    assert not outcome.ok
    assert backend.deleted == ["/data/prearchive/projects/P/20990101_000000000/E"]
    left = {r["url"] for r in backend.prearchive}
    assert "/prearchive/projects/P/20240101_000000000/E" in left, "there before: never touched"
    assert "curl" not in outcome.error


def test_a_leftover_that_cannot_be_removed_is_reported_with_its_removal(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    backend = LeavesPrearchive(BadRequest("400", status=400), delete_fails=True)
    outcome = run_step(_scan_step(), _ctx(tmp_path, backend))
    assert not outcome.ok
    assert "prearchive session /prearchive/projects/P/20990101_000000000/E (CONFLICT)" in (
        outcome.error
    )
    assert (
        "curl -u USER -X DELETE 'http://fake/data/prearchive/projects/P/20990101_000000000/E'"
        in (outcome.error)
    )
    assert "src=/prearchive/projects/P/20990101_000000000/E" in outcome.error


def test_a_gateway_timeout_leaves_the_prearchive_alone_and_says_so(tmp_path: Path) -> None:
    # A 504 comes from a proxy: XNAT may still be archiving the upload.
    (tmp_path / "work").mkdir()
    ctx = _ctx(tmp_path, LeavesPrearchive(ServerError("504", status=504)))
    ctx.retry_count = 0
    backend = ctx.dst
    outcome = run_step(_scan_step(), ctx)
    assert not outcome.ok
    assert backend.deleted == []  # type: ignore[attr-defined]
    assert "may still be working on it" in outcome.error
