"""Benchmark: diff and plan 2,000,000 and 10,000,000 files a side, without a server; then
load that plan file, and show it with ``xnatctl project show-plan``. Most of the project is
in sync in these two; a third case plans 2,000,000 files into an empty destination, so every
scan is a step (a plan of 111,000 steps) and loading it holds the most step IDs.

Both sides are built straight into inventory stores on disk (``planner.invstore``), one
experiment at a time, and the diff and plan run in a fresh process that opens them, so its
peak memory (``VmHWM``) is the diff's alone, not the builder's. The diff writes the plan
file as it walks (a spool, saved with ``save_plan``), as ``xnatctl project plan`` does.

Loading the plan (``load_plan`` and one pass over its steps and changes) and ``show-plan``
each run in a process of their own, started by a small launcher that reaps it with
``os.wait4``: Linux keeps ``ru_maxrss`` across ``exec``, so only the launcher's rusage of its
child holds that child's peak alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner.inventory import Experiment, FileEntry, Resource, Scan, Subject
from planner.invstore import InventoryStore
from tests.benchmarks.launcher import launch, xnatctl_command
from tests.benchmarks.results import BenchResult, record, rounded

ROOT = Path(__file__).resolve().parents[2]
# Children import the project (and this module) from the checkout, wherever pytest runs.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EXPERIMENTS, SCANS, FILES = 10, 10, 20
FILES_PER_SUBJECT = EXPERIMENTS * SCANS * FILES

# Runs in the fresh process: plan between two stores (written to a spool in the directory
# named third, saved to the file named fourth), print the figures as JSON.
_DIFF = """
import json, sys, time
from planner.config import TransferConfig
from planner.diff import make_plan
from planner.invstore import InventoryStore
from planner.planfile import save_plan

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

t0 = time.perf_counter()
src, dst = InventoryStore.open(sys.argv[1]), InventoryStore.open(sys.argv[2])
plan = make_plan(src, dst, TransferConfig(), completed_subjects={}, state_serial=0,
                 created_at="2026-01-01T00:00:00Z", tool_version="bench", spool_dir=sys.argv[3])
save_plan(plan, sys.argv[4])
s = plan.summary
print(json.dumps({
    "seconds": time.perf_counter() - t0, "peak_mb": peak_mb(), "steps": len(plan.steps),
    "changes": len(plan.changes), "create": s.experiments_to_create,
    "transfer": s.scans_to_transfer, "in_sync": s.experiments_in_sync,
}))
"""

# Runs in its own process: check the plan file, then one pass over its steps and changes.
_LOAD = """
import sys, time
from planner.planfile import load_plan

t0 = time.perf_counter()
plan = load_plan(sys.argv[1])
steps = sum(1 for _ in plan.steps)
changes = sum(1 for _ in plan.changes)
assert (steps, changes) == (len(plan.steps), len(plan.changes))
"""


def _launch(tmp: Path, name: str, argv: list[str]) -> dict[str, float]:
    """Run ``argv`` under the launcher (its output to files in ``tmp``); its figures."""
    env = {k: v for k, v in ENV.items() if not k.startswith(("XNATCTL_", "XDG_"))}
    env.update(XNATCTL_CONFIG_DIR=str(tmp / "config"), XDG_STATE_HOME=str(tmp / "state"))
    with (tmp / f"{name}.out").open("w") as out, (tmp / f"{name}.err").open("w") as err:
        run, _ = launch(argv, tmp / f"{name}.json", env=env, cwd=ROOT, stdout=out, stderr=err)
    assert run.exit == 0, (tmp / f"{name}.err").read_text()
    return {"seconds": run.seconds, "peak_mb": run.peak_mb}


def _experiment(si: int, ei: int, *, dest: bool) -> Experiment:
    sl, el = f"SUBJ{si:05d}", f"SUBJ{si:05d}_MR{ei}"
    scans = {}
    for sc in range(1, SCANS + 1):
        n = FILES - 1 if dest and si % 97 == 1 and ei == 1 and sc == 1 else FILES
        files = tuple(
            FileEntry(
                f"{i:06d}.dcm", 524_288 + i, hashlib.md5(f"{el}/{sc}/{i}".encode()).hexdigest()
            )
            for i in range(n)
        )
        scans[str(sc)] = Scan(
            str(sc), "T1", "T1", f"1.2.3.{si}.{ei}.{sc}", "xnat:mrScanData", "usable",
            {"DICOM": Resource("DICOM", "DICOM", "RAW", files)},
        )  # fmt: skip
    return Experiment(
        el, f"X{si}_{ei}", "xnat:mrSessionData", "2024-01-01", sl, f"1.2.{si}.{ei}",
        "MR", True, "", {}, scans,
    )  # fmt: skip


def _build(path: Path, url: str, project: str, subjects: int, *, dest: bool) -> None:
    """One side, written to a store an experiment at a time: 20 experiments missing on the
    destination per 1,000 subjects, and one scan a file short per 97."""
    store = InventoryStore(path, keep=True)
    for si in range(subjects):
        store.put_subject(Subject(f"SUBJ{si:05d}", f"S{si}"))
        for ei in range(EXPERIMENTS):
            if dest and si % 50 == 0 and ei == 0:
                continue
            store.put_experiment(f"SUBJ{si:05d}", _experiment(si, ei, dest=dest))
    store.finish(server_url=url, project=project, server_version="1.8.11", digests=True)
    store.close()


def _build_side(args: list[str]) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from pathlib import Path; "
        "from tests.benchmarks.test_bench_planner_diff import _build; "
        "_build(Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), "
        "dest=sys.argv[5] == 'dest')"
    )
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=ENV)


@pytest.mark.bench
@pytest.mark.parametrize(
    ("files_per_side", "destination"),
    [(2_000_000, "partial"), (10_000_000, "partial"), (2_000_000, "empty")],
)
def test_bench_diff_files_per_side(files_per_side: int, destination: str, tmp_path: Path) -> None:
    subjects = files_per_side // FILES_PER_SUBJECT
    dest_subjects = subjects if destination == "partial" else 0
    src_path, dst_path = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    t0 = time.perf_counter()
    builders = [
        _build_side([str(src_path), "http://src", "P", str(subjects), "src"]),
        _build_side([str(dst_path), "http://dst", "Q", str(dest_subjects), "dest"]),
    ]
    assert all(b.wait() == 0 for b in builders)
    built = time.perf_counter() - t0
    disk_mb = (src_path.stat().st_size + dst_path.stat().st_size) / 2**20
    plan_file = tmp_path / "plan.jsonl"
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _DIFF,
            str(src_path),
            str(dst_path),
            str(tmp_path / "spool"),
            str(plan_file),
        ],
        cwd=ROOT,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    r = json.loads(out.stdout)
    scans = subjects * EXPERIMENTS * SCANS
    plan_mb = plan_file.stat().st_size / 2**20
    assert list((tmp_path / "spool").iterdir()) == []  # the spool went with its plan
    print(
        f"\ndiff+plan: {scans} scans, {files_per_side} files per side, {destination} "
        f"destination: {r['seconds']:.1f} s, "
        f"peak RSS {r['peak_mb']:.0f} MB (stores {disk_mb:.0f} MB on disk, built in "
        f"{built:.1f} s); {r['steps']} steps, {r['changes']} changes; plan file "
        f"{plan_mb:.1f} MB"
    )
    record(
        BenchResult(
            "planner_diff",
            _params(scans, files_per_side, destination),
            seconds=rounded(r["seconds"]),
            peak_rss_mb=rounded(r["peak_mb"], 1),
            figures={
                "stores_mb": rounded(disk_mb, 1),
                "build_seconds": rounded(built),
                "plan_file_mb": rounded(plan_mb, 1),
            },
        )
    )
    _measure_plan_file(plan_file, _params(scans, files_per_side, destination), r, tmp_path)
    if destination == "empty":
        assert r["create"] == subjects * EXPERIMENTS and r["transfer"] == scans
        assert r["in_sync"] == 0 and r["steps"] >= scans
        return
    missing = 20 * subjects // 1000
    short = len([si for si in range(subjects) if si % 97 == 1])
    assert r["create"] == missing
    assert r["transfer"] == missing * SCANS + short
    assert r["in_sync"] == subjects * EXPERIMENTS - missing - short


def _params(scans: int, files_per_side: int, destination: str) -> dict[str, object]:
    """An entry's key in the results file; the first cases keep the key they always had."""
    params: dict[str, object] = {"scans_per_side": scans, "files_per_side": files_per_side}
    if destination != "partial":
        params["destination"] = destination
    return params


def _measure_plan_file(plan_file: Path, params: dict[str, object], r: dict, tmp: Path) -> None:
    """``load_plan`` with one pass over the records, and ``show-plan``, each in a process."""
    load = _launch(tmp, "load", [sys.executable, "-c", _LOAD, str(plan_file)])
    show = _launch(tmp, "show", [*xnatctl_command(), "project", "show-plan", str(plan_file)])
    shown = (tmp / "show.out").read_text()
    plan_mb = plan_file.stat().st_size / 2**20
    print(
        f"plan file {plan_mb:.1f} MB ({r['steps']} steps, {r['changes']} changes): "
        f"load + one pass {load['seconds']:.1f} s, peak RSS {load['peak_mb']:.0f} MB; "
        f"show-plan {show['seconds']:.1f} s, peak RSS {show['peak_mb']:.0f} MB, "
        f"{len(shown.splitlines())} lines"
    )
    params = {k: v for k, v in params.items() if k != "scans_per_side"}
    for name, m in (("plan_file_load", load), ("plan_show", show)):
        record(
            BenchResult(
                name,
                params,
                seconds=rounded(m["seconds"]),
                peak_rss_mb=rounded(m["peak_mb"], 1),
                figures={
                    "steps": r["steps"],
                    "changes": r["changes"],
                    "plan_file_mb": rounded(plan_mb, 1),
                },
            )
        )
    last = shown.splitlines()[-1]  # the summary line, printed after the tree
    assert f"{r['in_sync']} experiments in sync" in last
