"""Apply over real HTTP between two xnatsim servers: every file arrives, exactly once.

Each test seeds a small source project with real DICOM, plans with the real diff, and
applies with the real engine, state DB and HTTP client.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from planner.apply import ApplyOptions, StalePlan, apply_plan
from planner.config import TransferConfig
from planner.inventory import Inventory
from planner.plan import Plan, Step
from planner.planfile import load_plan, save_plan
from planner.snapshot import take_snapshot
from planner.state import LockHeld, StateDB
from tests.planner.plans import plan_between

ADMIN = ("admin", "admin")
PROJECT = "P"
ROOT = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------------


def client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def seed(url: str, *, subjects: int = 2, sessions: int = 1, scans: int = 2, instances: int = 2):
    from xnatsim.seed import SeedSpec, seed_project

    spec = SeedSpec(
        project=PROJECT,
        subjects=subjects,
        sessions_per_subject=sessions,
        scans_per_session=scans,
        instances_per_scan=instances,
        rows=32,
        cols=32,
    )
    return seed_project(url, spec, auth=ADMIN)


def put_file(url: str, owner: str, label: str, path: str, body: bytes) -> None:
    base = f"{url}/data/projects/{PROJECT}{owner}/resources/{label}"
    r = requests.put(base, params={"format": "MISC"}, auth=ADMIN, timeout=30)
    assert r.status_code in (200, 201, 409), r.text
    r = requests.put(
        f"{base}/files/{path}",
        params={"inbody": "true"},
        data=body,
        auth=ADMIN,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    assert r.status_code in (200, 201), r.text


def create_project(url: str) -> None:
    r = requests.put(f"{url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30)
    assert r.status_code in (200, 201), r.text


def config(**kw: Any) -> TransferConfig:
    return TransferConfig(source_project=PROJECT, dest_project=PROJECT, **kw)


def plan_now(src: Any, dst: Any, state: StateDB | None = None, **kw: Any) -> Plan:
    return plan_between(src, dst, config(**kw))


def options(tmp_path: Path, **kw: Any) -> ApplyOptions:
    base: dict[str, Any] = {
        "workers": 3,
        "retry_count": 3,
        "retry_delay": 0.01,
        "max_failures": 5,
        "verify": True,
        "work_dir": tmp_path / "work",
        "failed_dir": tmp_path / "failed",
    }
    base.update(kw)
    return ApplyOptions(**base)


def file_map(inv: Inventory) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Every resource's files by address: what 'the same data' means. A scan's DICOM counts by
    file names (the destination's site anonymization script rewrites headers and records itself,
    as XNAT's DicomEdit does); every other file by size and digest."""
    out: dict[str, tuple[tuple[str, ...], ...]] = {}

    def add(prefix: str, resources: dict, *, scan: bool = False) -> None:
        for label, r in resources.items():
            if scan and label == "DICOM":
                out[f"{prefix}/{label}"] = tuple((f.path,) for f in r.files)
            else:
                out[f"{prefix}/{label}"] = tuple((f.path, str(f.size), f.digest) for f in r.files)

    add("@project", inv.resources)
    for s in inv.subjects.values():
        add(s.label, s.resources)
        for e in s.experiments.values():
            add(f"{s.label}/{e.label}", e.resources)
            for sc in e.scans.values():
                add(f"{s.label}/{e.label}/scans/{sc.id}", sc.resources, scan=True)
    return out


def all_files(inv: Inventory) -> list[Any]:
    files = [f for r in inv.resources.values() for f in r.files]
    for s in inv.subjects.values():
        files += [f for r in s.resources.values() for f in r.files]
        for e in s.experiments.values():
            files += [f for r in e.resources.values() for f in r.files]
            for sc in e.scans.values():
                files += [f for r in sc.resources.values() for f in r.files]
    return files


def assert_same_data(src: Any, dst: Any) -> None:
    a, b = take_snapshot(src, PROJECT), take_snapshot(dst, PROJECT)
    assert a.digests and b.digests
    assert file_map(a) == file_map(b)
    assert all(f.digest for f in all_files(b))


def imports(server: Any) -> list[dict]:
    return [
        e
        for e in server.request_log.entries()
        if e.get("method") == "POST" and "/data/services/import" in e.get("path", "")
    ]


class Recorder:
    """A reporter that remembers everything (thread-safe)."""

    def __init__(self, on_finish: Callable[[Step, str], None] | None = None) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Any]] = []
        self.on_finish = on_finish

    def _add(self, kind: str, value: Any) -> None:
        with self.lock:
            self.events.append((kind, value))

    def run_started(self, total_steps: int, total_bytes: int) -> None:
        self._add("run_started", (total_steps, total_bytes))

    def step_started(self, step: Step) -> None:
        self._add("started", step.id)

    def step_progress(self, step: Step, nbytes: int) -> None:
        self._add("progress", nbytes)

    def step_finished(self, step: Step, status: str, error: str = "") -> None:
        self._add("finished", (step.id, status, error))
        if self.on_finish is not None:
            self.on_finish(step, status)

    def warning(self, text: str) -> None:
        self._add("warning", text)

    def info(self, text: str) -> None:
        self._add("info", text)

    def of(self, kind: str) -> list[Any]:
        with self.lock:
            return [v for k, v in self.events if k == kind]


@pytest.fixture
def world(sim_pair, tmp_path: Path):
    seed(sim_pair.src.url, subjects=2, sessions=2, scans=2)
    create_project(sim_pair.dst.url)
    src, dst = client(sim_pair.src.url), client(sim_pair.dst.url)
    state = StateDB(tmp_path / "state.db")
    yield sim_pair, src, dst, state
    state.close()


# -- tests ------------------------------------------------------------------------------------


def test_apply_copies_every_file_and_a_new_plan_is_empty(sim_pair, tmp_path: Path) -> None:
    seed(sim_pair.src.url, subjects=2, sessions=2, scans=3)
    url = sim_pair.src.url
    create_project(sim_pair.dst.url)
    src, dst = client(url), client(sim_pair.dst.url)
    inv = take_snapshot(src, PROJECT)
    first = next(iter(inv.subjects.values()))
    put_file(url, "", "DOCS", "readme.txt", b"project notes")
    put_file(url, f"/subjects/{first.label}", "NOTES", "a/b.txt", b"n" * 700)
    session = next(e for e in first.experiments.values() if e.scans)
    scan_id = next(iter(session.scans))
    exp_path = f"/subjects/{first.label}/experiments/{session.label}"
    put_file(url, exp_path, "NIFTI", "sub/x.nii", b"x" * 5000)
    put_file(url, f"{exp_path}/scans/{scan_id}", "SNAPSHOTS", "s.png", b"p" * 300)

    state = StateDB(tmp_path / "state.db")
    plan = plan_now(src, dst)
    assert plan.summary.resources_to_upload >= 4
    recorder = Recorder()
    result = apply_plan(plan, src, dst, state, options(tmp_path), reporter=recorder)

    sessions = sum(len(s.experiments) for s in inv.subjects.values())
    assert result.status == "completed", result.failed_steps
    assert result.subjects.synced == 2 and result.experiments.synced == sessions
    assert result.scans_moved == plan.summary.scans_to_transfer == 12
    assert result.resources_moved == plan.summary.resources_to_upload
    assert result.verification.checked == sessions and result.verification.failed == 0
    assert_same_data(src, dst)
    assert plan_now(src, dst).steps == ()
    pair = (plan.source.url, PROJECT, plan.dest.url, PROJECT)
    from planner.state import PairKey

    key = PairKey(*pair)
    assert set(state.done_steps(key)) == {s.id for s in plan.steps}
    assert set(state.completed_subjects(key)) == set(inv.subjects)
    assert state.runs()[0]["status"] == "completed"
    assert len(recorder.of("finished")) == len(plan.steps)
    assert recorder.of("run_started") == [(len(plan.steps), plan.summary.bytes_to_transfer)]
    assert list((tmp_path / "work").iterdir()) == [], "no temp zips are left behind"
    assert state.lock_holder(plan.dest.url, PROJECT) is None


def test_a_second_apply_of_the_same_plan_does_nothing(world, tmp_path: Path) -> None:
    sims, src, dst, state = world
    plan = plan_now(src, dst)
    assert apply_plan(plan, src, dst, state, options(tmp_path)).ok
    before = len(imports(sims.dst))
    again = apply_plan(plan, src, dst, state, options(tmp_path))
    assert again.status == "completed"
    assert again.steps_run == 0 and again.steps_skipped == len(plan.steps)
    assert again.subjects.skipped == 2
    assert again.verification.passed == plan.summary.experiments_to_create
    assert len(imports(sims.dst)) == before
    assert_same_data(src, dst)


def test_workers_one_is_sequential_and_complete(world, tmp_path: Path) -> None:
    _sims, src, dst, state = world
    result = apply_plan(plan_now(src, dst), src, dst, state, options(tmp_path, workers=1))
    assert result.ok
    assert_same_data(src, dst)


def test_a_lock_held_by_a_live_process_is_refused_naming_it(world, tmp_path: Path) -> None:
    sims, src, dst, state = world
    plan = plan_now(src, dst)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from planner.state import StateDB
                db = StateDB({str(tmp_path / "state.db")!r})
                db.acquire_lock({plan.dest.url!r}, {PROJECT!r}, operation="apply")
                print("locked", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld) as info:
            apply_plan(plan, src, dst, state, options(tmp_path))
        assert info.value.pid == holder.pid
        assert f"pid {holder.pid}" in str(info.value) and "apply" in str(info.value)
        assert imports(sims.dst) == []
    finally:
        holder.kill()
        holder.wait()
    recorder = Recorder()
    result = apply_plan(plan, src, dst, state, options(tmp_path), reporter=recorder)
    assert result.ok
    assert any("took over the lock" in w for w in recorder.of("warning"))


def test_a_stale_plan_is_refused_and_changes_nothing(world, tmp_path: Path) -> None:
    sims, src, dst, state = world
    plan = plan_now(src, dst)
    inv = take_snapshot(src, PROJECT)
    subject = next(iter(inv.subjects.values()))
    session = next(e for e in subject.experiments.values() if e.scans)
    scan_id = next(iter(session.scans))
    # A new file in a scan the plan will import: the planned facts no longer hold.
    r = requests.delete(
        f"{sims.src.url}/data/experiments/{session.id}/scans/{scan_id}/resources/DICOM/files/"
        f"{session.scans[scan_id].resources['DICOM'].files[0].path}",
        auth=ADMIN,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    with pytest.raises(StalePlan) as info:
        apply_plan(plan, src, dst, state, options(tmp_path))
    address = f"{subject.label}/{session.label}/scans/{scan_id}"
    assert any(address in w for w in info.value.what_changed)
    assert "make a new plan" in str(info.value)
    assert imports(sims.dst) == []
    assert state.runs() == []
    assert state.lock_holder(plan.dest.url, PROJECT) is None
    assert apply_plan(plan_now(src, dst), src, dst, state, options(tmp_path)).ok


def test_cancel_stops_the_run_as_interrupted_and_a_rerun_completes(world, tmp_path: Path) -> None:
    _sims, src, dst, state = world
    plan = plan_now(src, dst)
    cancel = threading.Event()

    def stop_after_first_scan(step: Step, status: str) -> None:
        if step.kind == "import_scan":
            cancel.set()

    result = apply_plan(
        plan,
        src,
        dst,
        state,
        options(tmp_path, workers=1),
        reporter=Recorder(stop_after_first_scan),
        cancel=cancel,
    )
    assert result.status == "interrupted"
    assert result.subjects.pending >= 1
    assert state.runs()[0]["status"] == "interrupted"
    assert state.lock_holder(plan.dest.url, PROJECT) is None
    rerun = apply_plan(plan, src, dst, state, options(tmp_path))
    assert rerun.ok and rerun.steps_skipped >= 3
    assert_same_data(src, dst)


def test_transient_import_failures_are_retried_to_completion(world, tmp_path: Path) -> None:
    sims, src, dst, state = world
    sims.dst.faults.set_rules(
        [
            {
                "method": "POST",
                "path": "/data/services/import*",
                "status": 503,
                "probability": 0.3,
                "seed": 1,
            }
        ]
    )
    plan = plan_now(src, dst)
    result = apply_plan(plan, src, dst, state, options(tmp_path, retry_count=6))
    statuses = [e.get("status") for e in imports(sims.dst)]
    assert 503 in statuses, "the fault rule should have failed some imports"
    assert statuses.count(200) == plan.summary.scans_to_transfer, "each scan imported once"
    assert result.status == "completed", result.failed_steps
    sims.dst.faults.set_rules([])
    assert_same_data(src, dst)
    assert plan_now(src, dst).steps == ()


def test_a_refused_import_fails_at_once_and_trips_the_breaker(sim_pair, tmp_path: Path) -> None:
    seed(sim_pair.src.url, subjects=5, sessions=1, scans=2)
    create_project(sim_pair.dst.url)
    src, dst = client(sim_pair.src.url), client(sim_pair.dst.url)
    state = StateDB(tmp_path / "state.db")
    sim_pair.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import*", "status": 400}]
    )
    recorder = Recorder()
    plan = plan_now(src, dst)
    result = apply_plan(
        plan, src, dst, state, options(tmp_path, workers=1, max_failures=2), reporter=recorder
    )
    assert result.status == "aborted" and result.circuit_breaker_tripped
    assert result.subjects.failed >= 2 and result.subjects.synced == 0
    assert result.subjects.pending >= 1, "the breaker stopped before the last subjects"
    refused = [sid for sid, error in result.failed_steps if sid.startswith("import_scan:")]
    assert refused and len(imports(sim_pair.dst)) == len(refused), "a 400 is never retried"
    assert len(refused) < plan.summary.scans_to_transfer
    assert any("circuit breaker" in w for w in recorder.of("warning"))
    assert state.runs()[0]["status"] == "aborted"
    state.close()


def test_a_dropped_download_is_retried(world, tmp_path: Path) -> None:
    sims, src, dst, state = world
    # A body that breaks off is the step's to retry (the client retries only before the body).
    drops = 2
    sims.src.faults.set_rules(
        [{"method": "GET", "path": "*/resources/DICOM/files*", "drop_after": 2000, "first": drops}]
    )
    recorder = Recorder()
    result = apply_plan(
        plan_now(src, dst), src, dst, state, options(tmp_path, workers=1), reporter=recorder
    )
    assert result.ok, result.failed_steps
    assert sims.src.faults.rules()[0]["fired"] == drops
    warnings = recorder.of("warning")
    assert any("attempt 1 failed" in w for w in warnings)
    assert any("attempt 2 failed" in w for w in warnings)
    sims.src.faults.set_rules([])
    assert_same_data(src, dst)


def test_a_scan_that_keeps_failing_keeps_its_zip(world, tmp_path: Path) -> None:
    sims, src, dst, state = world
    plan = plan_now(src, dst)
    victim = next(s for s in plan.steps if s.kind == "import_scan")
    sims.dst.faults.set_rules([{"method": "POST", "path": "/data/services/import*", "status": 503}])
    recorder = Recorder()
    result = apply_plan(
        plan, src, dst, state, options(tmp_path, retry_count=1, workers=1), reporter=recorder
    )
    assert result.status == "failed"
    errors = dict(result.failed_steps)
    assert victim.id in errors
    kept = tmp_path / "failed" / result.run_id / (victim.address.replace("/", "__") + ".zip")
    assert kept in result.kept_zips and kept.exists()
    assert str(kept) in errors[victim.id]
    assert any(str(kept) in w for w in recorder.of("warning"))
    with zipfile.ZipFile(kept) as zf:
        assert zf.testzip() is None
        assert len(zf.namelist()) == victim.facts["file_count"]
    assert len(imports(sims.dst)) == 2 * plan.summary.scans_to_transfer, "1 try + 1 retry each"


RESUME_CHILD = """
import sys
from pathlib import Path
from planner.apply import ApplyOptions, apply_plan
from planner.planfile import load_plan
from planner.state import StateDB
from xnatctl.client import XnatClient

plan_file, state_file, work = sys.argv[1:4]
plan = load_plan(plan_file)
src = XnatClient(plan.source.url, user="admin", password="admin")
dst = XnatClient(plan.dest.url, user="admin", password="admin")
options = ApplyOptions(workers=2, retry_count=2, retry_delay=0.01, max_failures=5, verify=True,
                       work_dir=Path(work) / "work", failed_dir=Path(work) / "failed")
print(apply_plan(plan, src, dst, StateDB(Path(state_file)), options).status, flush=True)
"""


def test_a_killed_run_resumes_without_duplicates(sim_pair, tmp_path: Path) -> None:
    seed(sim_pair.src.url, subjects=3, sessions=2, scans=2)
    create_project(sim_pair.dst.url)
    src, dst = client(sim_pair.src.url), client(sim_pair.dst.url)
    plan = plan_now(src, dst)
    plan_file = save_plan(plan, tmp_path / "p.plan.json")
    # Slow imports down so that the kill lands in the middle of the run.
    sim_pair.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import*", "latency": 0.3}]
    )
    child = subprocess.Popen(
        [sys.executable, "-c", RESUME_CHILD, str(plan_file), str(tmp_path / "s.db"), str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 60
    while len(imports(sim_pair.dst)) < 3 and time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        time.sleep(0.02)
    child.kill()
    child.wait()
    done_by_child = len(imports(sim_pair.dst))
    assert 3 <= done_by_child < plan.summary.scans_to_transfer
    sim_pair.dst.faults.set_rules([])

    state = StateDB(tmp_path / "s.db")
    recorder = Recorder()
    result = apply_plan(load_plan(plan_file), src, dst, state, options(tmp_path), reporter=recorder)
    assert result.status == "completed", result.failed_steps
    assert result.steps_skipped >= 1
    assert any("took over the lock" in w for w in recorder.of("warning"))
    assert_same_data(src, dst)
    assert plan_now(src, dst).steps == ()
    statuses = [r["status"] for r in state.runs()]
    assert statuses == ["completed", "interrupted"]
    state.close()


KILL_AFTER_IMPORT_CHILD = """
import os, signal, sys
from pathlib import Path
from planner.apply import ApplyOptions, apply_plan
from planner.planfile import load_plan
from planner.state import StateDB
from xnatctl.client import XnatClient

plan_file, state_file, work, kill_after = sys.argv[1:5]
plan = load_plan(plan_file)
src = XnatClient(plan.source.url, user="admin", password="admin")
dst = XnatClient(plan.dest.url, user="admin", password="admin")
real_upload = dst.upload
count = 0

def upload(method, path, *args, **kwargs):
    global count
    reply = real_upload(method, path, *args, **kwargs)
    if path == "/data/services/import":
        count += 1
        if count == int(kill_after):
            # The destination archived the scan; the process dies before recording it.
            os.kill(os.getpid(), signal.SIGKILL)
    return reply

dst.upload = upload
options = ApplyOptions(workers=1, retry_count=2, retry_delay=0.01, max_failures=5, verify=True,
                       work_dir=Path(work) / "work", failed_dir=Path(work) / "failed")
apply_plan(plan, src, dst, StateDB(Path(state_file)), options)
"""


def test_a_run_killed_between_import_and_record_resumes_without_duplicates(
    sim_pair, tmp_path: Path
) -> None:
    seed(sim_pair.src.url, subjects=2, sessions=1, scans=3)
    create_project(sim_pair.dst.url)
    src, dst = client(sim_pair.src.url), client(sim_pair.dst.url)
    plan = plan_now(src, dst)
    plan_file = save_plan(plan, tmp_path / "p.plan.json")
    child = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_IMPORT_CHILD, str(plan_file), str(tmp_path / "s.db"),
         str(tmp_path), "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )  # fmt: skip
    assert child.returncode == -9, child.stderr[-2000:]
    assert len(imports(sim_pair.dst)) == 2

    state = StateDB(tmp_path / "s.db")
    from planner.apply import pair_key

    running = state.started_steps(pair_key(plan))
    assert len(running) == 1, "the second import is archived but not recorded as done"
    (interrupted_step,) = running
    result = apply_plan(load_plan(plan_file), src, dst, state, options(tmp_path))
    assert result.status == "completed", result.failed_steps
    redo = [e for e in imports(sim_pair.dst)[2:] if "overwrite_files=true" in e["query"]]
    assert len(redo) == 1, "only the resumed import replaces its files"
    assert_same_data(src, dst)
    assert plan_now(src, dst).steps == ()
    assert interrupted_step in state.done_steps(pair_key(plan))
    state.close()


def test_a_scan_already_on_the_destination_is_recognised_not_duplicated(
    world, tmp_path: Path
) -> None:
    sims, src, dst, state = world
    plan = plan_now(src, dst)
    first = next(s for s in plan.steps if s.kind == "import_scan")
    # Someone (or a run whose record was lost) already imported this very scan.
    without_state = StateDB(tmp_path / "other.db")
    partial = [s for s in plan.steps if s.id in (*first.depends_on, first.id)]
    partial += [s for s in plan.steps if s.id in {d for p in partial for d in p.depends_on}]
    from dataclasses import replace

    one = replace(plan, steps=tuple(s for s in plan.steps if s in partial))
    partial_run = apply_plan(
        one, src, dst, without_state, options(tmp_path, verify=False), check_stale=False
    )
    assert partial_run.ok and partial_run.scans_moved == 1
    before = len(imports(sims.dst))

    result = apply_plan(plan, src, dst, state, options(tmp_path), check_stale=False)
    assert result.status == "completed", result.failed_steps
    statuses = [e["status"] for e in imports(sims.dst)[before:]]
    # XNAT's DICOM-zip handler answers an archive conflict with 400 ("unable to archive")
    assert statuses.count(400) == 1, "the first attempt met the scan already there"
    assert_same_data(src, dst)
    without_state.close()


def test_ctrl_c_in_the_coordinator_records_an_interrupted_run(world, tmp_path: Path) -> None:
    _sims, src, dst, state = world
    plan = plan_now(src, dst)

    def interrupt_on_second_session(step: Step, status: str) -> None:
        created = [s for s in plan.steps if s.kind == "create_experiment"]
        if step.id == created[1].id:
            raise KeyboardInterrupt  # what Ctrl-C does to the coordinator thread

    result = apply_plan(
        plan, src, dst, state, options(tmp_path), reporter=Recorder(interrupt_on_second_session)
    )
    assert result.status == "interrupted"
    assert state.runs()[0]["status"] == "interrupted"
    assert state.lock_holder(plan.dest.url, PROJECT) is None
    assert apply_plan(plan, src, dst, state, options(tmp_path)).ok
    assert_same_data(src, dst)


def test_one_failed_scan_fails_its_subject_only_and_a_rerun_repairs_it(
    world, tmp_path: Path
) -> None:
    sims, src, dst, state = world
    plan = plan_now(src, dst)
    sims.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import*", "status": 400, "first": 1}]
    )
    result = apply_plan(plan, src, dst, state, options(tmp_path, workers=1, max_failures=2))
    assert result.status == "failed" and not result.circuit_breaker_tripped
    refused = [(i, e) for i, e in result.failed_steps if "400" in e]
    assert len(refused) == 1
    failed_id = refused[0][0]
    assert failed_id.startswith("import_scan:")
    others = [e for i, e in result.failed_steps if (i, e) not in refused]
    assert all(e == f"not run: {failed_id} failed" for e in others), "its scan resources wait"
    assert result.steps_not_run == {i for i, e in result.failed_steps if (i, e) not in refused}
    failed_subject = failed_id.split(":", 1)[1].split("/", 1)[0]
    assert (result.subjects.failed, result.subjects.synced) == (1, 1)
    from planner.apply import pair_key

    assert failed_subject not in state.completed_subjects(pair_key(plan))
    assert len(state.completed_subjects(pair_key(plan))) == 1

    sims.dst.faults.set_rules([])
    rerun = apply_plan(plan, src, dst, state, options(tmp_path))
    assert rerun.ok and rerun.steps_run == len(result.failed_steps)
    assert_same_data(src, dst)
    assert failed_subject in state.completed_subjects(pair_key(plan))
