"""The scheduler rule that keeps imports into one destination session from racing, without HTTP.

XNAT 1.8.10+ shares one prearchive session among DICOM-zip uploads of one
project/StudyInstanceUID/label while it is receiving (PrearcDatabase.eitherGetOrCreateSession)
and refuses concurrent archiving of one session (PrearcSessionArchiver.preventConcurrentArchiving,
"Duplicate archive attempt"), so apply never has two imports into one session at once.
"""

from __future__ import annotations

import threading
import time
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.diff import make_plan
from planner.gates import SessionWindow, TransferSlots, session_key
from planner.inventory import Inventory
from planner.plan import Step, StepKind
from planner.state import StateDB
from tests.planner.steps import Dest, make_step


def _step(subject: str, experiment: str, scan: str = "1") -> Step:
    address = f"{subject}/{experiment}/scans/{scan}"
    return make_step(StepKind.IMPORT_SCAN, address, Dest("P", subject, experiment, scan=scan))


def test_a_step_is_keyed_by_its_destination_session() -> None:
    assert session_key(_step("S1", "E1")) == "P/S1/E1"
    subject_level = make_step(
        StepKind.UPLOAD_RESOURCE, "S1/resources/R", Dest("P", "S1", label="R"), id="x"
    )
    assert session_key(subject_level) is None


def test_the_window_admits_two_steps_of_a_session_and_queues_the_rest_in_order() -> None:
    w: SessionWindow[str] = SessionWindow(per_session=2)
    assert w.admit("A", "a1") and w.admit("A", "a2")
    assert not w.admit("A", "a3") and not w.admit("A", "a4")
    assert w.admit("B", "b1"), "another session is not held up"
    assert w.waiting() == 2 and w.ready() == []
    w.finished("A")
    assert w.ready() == ["a3"], "one finished, one released, in plan order"
    assert not w.admit("A", "a5"), "a newcomer does not overtake the queue"
    w.finished("A")
    w.finished("A")
    assert w.ready() == ["a4", "a5"]
    assert w.drain() == [] and w.waiting() == 0


def test_slots_bound_transfers_and_keep_one_writer_per_session() -> None:
    slots = TransferSlots(workers=3)
    lock = threading.Lock()
    active: list[int] = [0]
    writers: dict[str, int] = {}
    peak = {"active": 0, "writers": 0}

    def worker(key: str) -> None:
        with slots.running():
            with lock:
                active[0] += 1
                peak["active"] = max(peak["active"], active[0])
            time.sleep(0.01)  # a "download"
            with lock:
                active[0] -= 1
            with slots.exclusive(key):
                with lock:
                    active[0] += 1
                    writers[key] = writers.get(key, 0) + 1
                    peak["active"] = max(peak["active"], active[0])
                    peak["writers"] = max(peak["writers"], writers[key])
                time.sleep(0.01)  # an "import"
                with lock:
                    writers[key] -= 1
                    active[0] -= 1

    threads = [threading.Thread(target=worker, args=(f"S{i % 2}",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert peak["writers"] == 1, "two writers of one session at once"
    assert peak["active"] <= 3, "more transfers than slots"


def test_a_step_waiting_for_its_session_gives_its_slot_back() -> None:
    slots = TransferSlots(workers=2)
    holding, go, waiting_started, downloaded = (threading.Event() for _ in range(4))

    def holder() -> None:  # imports into S, holding one slot and the session
        with slots.running(), slots.exclusive("S"):
            holding.set()
            go.wait(5)

    def waiter() -> None:  # wants S too: takes the second slot, then waits for S without it
        with slots.running():
            waiting_started.set()
            with slots.exclusive("S"):
                pass

    def downloader() -> None:  # needs any slot
        with slots.running():
            downloaded.set()

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert holding.wait(5)
    threads.append(threading.Thread(target=waiter))
    threads[1].start()
    assert waiting_started.wait(5)
    threads.append(threading.Thread(target=downloader))
    threads[2].start()
    assert downloaded.wait(2), "the waiter kept its slot while waiting for the session"
    go.set()
    for t in threads:
        t.join(5)
    assert not any(t.is_alive() for t in threads), "a deadlock between slots and sessions"


# -- the coordinator over an in-memory backend ---------------------------------------------------


class TimedBackend:
    """Source and destination in memory; imports take a while and are timed per session."""

    def __init__(self, url: str, import_seconds: float = 0.05) -> None:
        self.url = url
        self.import_seconds = import_seconds
        self.lock = threading.Lock()
        self.imports: list[tuple[str, float, float]] = []

    def request_text(self, method: str, path: str, params: Any = None, **kw: Any) -> str:
        return "ID_" + path.rsplit("/", 1)[-1]

    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        return []  # an empty prearchive, listed before each import

    def download(self, path: str, dest: Path, params: Any = None, *, on_bytes=None) -> int:
        with zipfile.ZipFile(dest, "w") as zf:
            for i in range(2):
                zf.writestr(f"{i}.dcm", b"\0" * 128 + b"DICM" + b"\0" * 64)
        return Path(dest).stat().st_size

    def upload(self, method: str, path: str, src: Path, params: Any = None, **kw: Any) -> str:
        key = f"{params['SUBJECT_ID']}/{params['EXPT_LABEL']}"
        start = time.monotonic()
        time.sleep(self.import_seconds)
        with self.lock:
            self.imports.append((key, start, time.monotonic()))
        return "/data/archive/projects/P\r\n"


def _inventory(b: Any, url: str, sessions: int, scans: int) -> Inventory:
    subjects = []
    for i in range(sessions):
        s = f"S{i}"
        subjects.append(
            b.subj(s, b.exp(f"E{i}", s, tuple(b.scan(str(n), n=2) for n in range(1, scans + 1))))
        )
    return b.inv(*subjects, url=url)


def overlaps(spans: list[tuple[str, float, float]], same: bool) -> int:
    n = 0
    for i, (k1, s1, e1) in enumerate(spans):
        for k2, s2, e2 in spans[i + 1 :]:
            if (k1 == k2) == same and s1 < e2 and s2 < e1:
                n += 1
    return n


def test_apply_never_overlaps_imports_of_one_session_but_overlaps_sessions(
    b: Any, tmp_path: Path
) -> None:
    src_inv = _inventory(b, "http://src", sessions=3, scans=4)
    dst_inv = b.inv(url="http://dst")
    plan = make_plan(
        src_inv,
        dst_inv,
        TransferConfig(source_project="P", dest_project="P"),
        completed_subjects={},
        state_serial=0,
        created_at="t",
        tool_version="test",
    )
    # Only creations and imports: carrying XML documents is not what is measured here.
    steps = tuple(s for s in plan.steps if s.kind != StepKind.UPDATE_EXPERIMENT)
    assert sum(s.kind == StepKind.IMPORT_SCAN for s in steps) == 12
    plan = replace(plan, steps=steps)
    src, dst = TimedBackend("http://src"), TimedBackend("http://dst")
    options = ApplyOptions(
        workers=4,
        retry_count=0,
        retry_delay=0,
        verify=False,
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
    )
    result = apply_plan(
        plan,
        src,
        dst,
        StateDB(tmp_path / "s.db"),
        options,
        check_stale=False,  # type: ignore[arg-type]
    )
    assert result.status == "completed", result.failed_steps
    assert len(dst.imports) == 12
    assert overlaps(dst.imports, same=True) == 0, "two imports into one session at once"
    assert overlaps(dst.imports, same=False) > 0, "sessions were not imported in parallel"
