"""Show apply's progress: a live bar on a terminal, one plain line per finished step otherwise.

Both views implement ``planner.progress.Reporter`` and are called from apply's worker
threads, so every method takes a lock. Use them as context managers: the live bar is drawn
between ``__enter__`` and ``__exit__``.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import IO, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.status import Status

from planner.plan import Step
from planner.progress import STEP_FAILED, STEP_OK, step_bytes
from xnatctl.views.summary import human_bytes


def _size(nbytes: int) -> str:
    return human_bytes(nbytes)


class _Shown:
    """A view used as a context manager: a live one (a rich ``Progress`` or ``Status`` in
    ``_live``) is drawn between ``__enter__`` and ``__exit__``; ``_end`` says what else
    happens at the end."""

    _live: Progress | Status | None = None

    def __enter__(self) -> Self:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
        self._end()

    def _end(self) -> None:
        pass


class LogReporter(_Shown):
    """Plain lines for logs and pipes: one per finished step, plus warnings and notes."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.total_steps = 0
        self.finished = 0

    def _end(self) -> None:
        self.stream.flush()

    def _line(self, text: str) -> None:
        with self.lock:
            stamp = time.strftime("%H:%M:%S")
            self.stream.write(f"{stamp} {text}\n")
            self.stream.flush()

    def run_started(self, total_steps: int, total_bytes: int) -> None:
        self.total_steps = total_steps
        self._line(f"applying {total_steps} steps, {_size(total_bytes)} to move")

    def step_started(self, step: Step) -> None:
        pass

    def step_progress(self, step: Step, nbytes: int) -> None:
        pass

    def step_finished(self, step: Step, status: str, error: str = "") -> None:
        with self.lock:
            self.finished += 1
            n = self.finished
        size = step_bytes(step)
        detail = f" ({_size(size)})" if size and status == STEP_OK else ""
        if error:
            detail += f": {error}"
        self._line(f"[{n}/{self.total_steps}] {status:<7} {step.kind} {step.address}{detail}")

    def warning(self, text: str) -> None:
        self._line(f"warning: {text}")

    def info(self, text: str) -> None:
        self._line(text)


class RichReporter(_Shown):
    """A live bar for people: bytes moved with rate and ETA, and the scans in flight."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.lock = threading.Lock()
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.seen: dict[str, int] = {}
        self.in_flight: set[str] = set()
        self.done = 0
        self.failed = 0
        self.total_steps = 0
        self._live = self.progress

    def _describe(self) -> str:
        failed = f", [red]{self.failed} failed[/]" if self.failed else ""
        return f"steps {self.done}/{self.total_steps}{failed}, {len(self.in_flight)} in flight"

    def _refresh(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=self._describe())

    def run_started(self, total_steps: int, total_bytes: int) -> None:
        with self.lock:
            self.total_steps = total_steps
            self.task = self.progress.add_task(self._describe(), total=max(total_bytes, 1))

    def step_started(self, step: Step) -> None:
        with self.lock:
            self.in_flight.add(step.id)
            self._refresh()

    def step_progress(self, step: Step, nbytes: int) -> None:
        with self.lock:
            expected = step_bytes(step)
            seen = self.seen.get(step.id, 0)
            # A retried download counts once: never advance past what the step should move.
            allowed = max(0, min(nbytes, expected - seen)) if expected else 0
            self.seen[step.id] = seen + nbytes
            if allowed and self.task is not None:
                self.progress.advance(self.task, allowed)

    def step_finished(self, step: Step, status: str, error: str = "") -> None:
        with self.lock:
            self.in_flight.discard(step.id)
            self.done += 1
            if status == STEP_FAILED:
                self.failed += 1
            expected = step_bytes(step)
            remainder = expected - min(self.seen.pop(step.id, 0), expected)
            if remainder and self.task is not None:
                self.progress.advance(self.task, remainder)
            self._refresh()
        if status == STEP_FAILED:
            self.console.print(f"[red]failed[/] {step.address}: {error}", highlight=False)

    def warning(self, text: str) -> None:
        self.console.print(f"[yellow]warning:[/] {text}", highlight=False)

    def info(self, text: str) -> None:
        self.console.print(text, highlight=False)


def progress_reporter(
    stream: IO[str] | None = None, *, force_terminal: bool | None = None
) -> RichReporter | LogReporter:
    """The live bar when ``stream`` (default stderr) is a terminal, plain lines otherwise."""
    out = stream or sys.stderr
    terminal = force_terminal if force_terminal is not None else out.isatty()
    if terminal:
        return RichReporter(Console(file=out, force_terminal=True))
    return LogReporter(out)


class SnapshotStatus(_Shown):
    """While both servers are read: a status line on a terminal ("Reading both servers:
    source 12/40, destination 3/40"), nothing otherwise. Called from both reading threads;
    use it as a context manager around the read."""

    def __init__(self, console: Console, *, enabled: bool) -> None:
        self._status = console.status("Reading both servers...") if enabled else None
        self._live = self._status
        self._done = {"source": (0, 0), "destination": (0, 0)}
        self._lock = threading.Lock()

    def __call__(self, side: str, n: int, total: int) -> None:
        with self._lock:
            self._done[side] = (n, total)
            if self._status is not None:
                s, d = self._done["source"], self._done["destination"]
                self._status.update(
                    f"Reading both servers: source {s[0]}/{s[1]}, destination {d[0]}/{d[1]}"
                )
