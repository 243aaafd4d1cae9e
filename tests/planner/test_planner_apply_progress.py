"""The progress views apply reports to: plain lines for logs, a live bar for terminals."""

from __future__ import annotations

import io

from planner.plan import Step, StepKind
from planner.progress import STEP_FAILED, STEP_OK, NullReporter, Reporter
from tests.planner.steps import Dest, make_step
from xnatctl.views.progress import LogReporter, RichReporter, progress_reporter


def scan_step(n: int, nbytes: int = 2_500_000) -> Step:
    return make_step(
        StepKind.IMPORT_SCAN, f"S/E/scans/{n}", Dest("P", "S", "E", scan=str(n)), bytes=nbytes
    )


def test_every_reporter_satisfies_the_protocol() -> None:
    assert isinstance(NullReporter(), Reporter)
    assert isinstance(LogReporter(io.StringIO()), Reporter)
    assert isinstance(RichReporter(), Reporter)


def test_the_log_view_writes_one_line_per_finished_step() -> None:
    out = io.StringIO()
    with progress_reporter(out) as view:  # not a terminal: plain lines
        assert isinstance(view, LogReporter)
        view.run_started(2, 5_000_000)
        view.step_started(scan_step(1))
        view.step_progress(scan_step(1), 1000)
        view.step_finished(scan_step(1), STEP_OK)
        view.step_finished(scan_step(2), STEP_FAILED, "HTTP 400: bad zip (zip kept at /x.zip)")
        view.warning("took over a lock")
    lines = [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == [
        "applying 2 steps, 5.0 MB to move",
        "[1/2] ok      import_scan S/E/scans/1 (2.5 MB)",
        "[2/2] failed  import_scan S/E/scans/2: HTTP 400: bad zip (zip kept at /x.zip)",
        "warning: took over a lock",
    ]


def test_the_terminal_view_counts_bytes_once_and_names_failures() -> None:
    out = io.StringIO()
    view = progress_reporter(out, force_terminal=True)
    assert isinstance(view, RichReporter)
    with view:
        view.run_started(2, 5_000_000)
        view.step_started(scan_step(1))
        view.step_progress(scan_step(1), 2_000_000)
        view.step_progress(scan_step(1), 2_000_000)  # a retried download
        assert view.progress.tasks[0].completed == 2_500_000
        view.step_finished(scan_step(1), STEP_OK)
        view.step_started(scan_step(2))
        assert len(view.in_flight) == 1
        view.step_finished(scan_step(2), STEP_FAILED, "refused")
        assert view.progress.tasks[0].completed == 5_000_000
        assert not view.in_flight
    assert "failed" in out.getvalue() and "refused" in out.getvalue()
