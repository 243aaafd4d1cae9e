"""Benchmark: diff and plan 2,000,000 and 10,000,000 files a side, without a server.

Both sides are built straight into inventory stores on disk (``planner.invstore``), one
experiment at a time, and the diff and plan run in a fresh process that opens them, so its
peak memory (``VmHWM``) is the diff's alone, not the builder's.
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
from tests.benchmarks.results import BenchResult, record, rounded

ROOT = Path(__file__).resolve().parents[2]
# Children import the project (and this module) from the checkout, wherever pytest runs.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
EXPERIMENTS, SCANS, FILES = 10, 10, 20
FILES_PER_SUBJECT = EXPERIMENTS * SCANS * FILES

# Runs in the fresh process: plan between two stores, print the figures as JSON.
_DIFF = """
import json, sys, time
from planner.config import TransferConfig
from planner.diff import make_plan
from planner.invstore import InventoryStore

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

t0 = time.perf_counter()
src, dst = InventoryStore.open(sys.argv[1]), InventoryStore.open(sys.argv[2])
plan = make_plan(src, dst, TransferConfig(), completed_subjects={}, state_serial=0,
                 created_at="2026-01-01T00:00:00Z", tool_version="bench")
s = plan.summary
print(json.dumps({
    "seconds": time.perf_counter() - t0, "peak_mb": peak_mb(), "steps": len(plan.steps),
    "changes": len(plan.changes), "create": s.experiments_to_create,
    "transfer": s.scans_to_transfer, "in_sync": s.experiments_in_sync,
}))
"""


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
@pytest.mark.parametrize("files_per_side", [2_000_000, 10_000_000])
def test_bench_diff_files_per_side(files_per_side: int, tmp_path: Path) -> None:
    subjects = files_per_side // FILES_PER_SUBJECT
    src_path, dst_path = tmp_path / "src.sqlite", tmp_path / "dst.sqlite"
    t0 = time.perf_counter()
    builders = [
        _build_side([str(src_path), "http://src", "P", str(subjects), "src"]),
        _build_side([str(dst_path), "http://dst", "Q", str(subjects), "dest"]),
    ]
    assert all(b.wait() == 0 for b in builders)
    built = time.perf_counter() - t0
    disk_mb = (src_path.stat().st_size + dst_path.stat().st_size) / 2**20
    out = subprocess.run(
        [sys.executable, "-c", _DIFF, str(src_path), str(dst_path)],
        cwd=ROOT,
        env=ENV,
        check=True,
        capture_output=True,
        text=True,
    )
    r = json.loads(out.stdout)
    scans = subjects * EXPERIMENTS * SCANS
    print(
        f"\ndiff+plan: {scans} scans, {files_per_side} files per side: {r['seconds']:.1f} s, "
        f"peak RSS {r['peak_mb']:.0f} MB (stores {disk_mb:.0f} MB on disk, built in "
        f"{built:.1f} s); {r['steps']} steps, {r['changes']} changes"
    )
    record(
        BenchResult(
            "planner_diff",
            {"scans_per_side": scans, "files_per_side": files_per_side},
            seconds=rounded(r["seconds"]),
            peak_rss_mb=rounded(r["peak_mb"], 1),
            figures={"stores_mb": rounded(disk_mb, 1), "build_seconds": rounded(built)},
        )
    )
    missing = 20 * subjects // 1000
    short = len([si for si in range(subjects) if si % 97 == 1])
    assert r["create"] == missing
    assert r["transfer"] == missing * SCANS + short
    assert r["in_sync"] == subjects * EXPERIMENTS - missing - short
