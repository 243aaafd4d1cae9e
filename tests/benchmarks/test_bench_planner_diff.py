"""Benchmark: diff and plan 100,000 scans and 2,000,000 files, without a server."""

from __future__ import annotations

import hashlib
import resource
import time

import pytest

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.inventory import Experiment, FileEntry, Inventory, Resource, Scan, Subject
from tests.benchmarks.results import BenchResult, record, rounded

SUBJECTS, EXPERIMENTS, SCANS, FILES = 1000, 10, 10, 20


def _build(url: str, project: str, *, dest: bool) -> Inventory:
    subjects = {}
    for si in range(SUBJECTS):
        sl = f"SUBJ{si:04d}"
        exps = {}
        for ei in range(EXPERIMENTS):
            el = f"{sl}_MR{ei}"
            if dest and si % 50 == 0 and ei == 0:
                continue  # 20 experiments missing on the destination
            scans = {}
            for sc in range(1, SCANS + 1):
                n = FILES - 1 if dest and si % 97 == 1 and ei == 1 and sc == 1 else FILES
                files = tuple(
                    FileEntry(
                        f"{i:06d}.dcm",
                        524_288 + i,
                        hashlib.md5(f"{el}/{sc}/{i}".encode()).hexdigest(),
                    )
                    for i in range(n)
                )
                scans[str(sc)] = Scan(
                    str(sc), "T1", "T1", f"1.2.3.{si}.{ei}.{sc}", "xnat:mrScanData", "usable",
                    {"DICOM": Resource("DICOM", "DICOM", "RAW", files)},
                )  # fmt: skip
            exps[el] = Experiment(
                el, f"X{si}_{ei}", "xnat:mrSessionData", "2024-01-01", sl, f"1.2.{si}.{ei}",
                "MR", True, "", {}, scans,
            )  # fmt: skip
        subjects[sl] = Subject(sl, f"S{si}", "", {}, {}, exps)
    return Inventory(url, project, "1.8.11", "", True, {}, subjects)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.bench
def test_bench_diff_100k_scans_2m_files():
    t0 = time.perf_counter()
    src = _build("http://src", "P", dest=False)
    dst = _build("http://dst", "Q", dest=True)
    built = time.perf_counter() - t0
    inputs_mb = _peak_mb()
    t1 = time.perf_counter()
    plan = make_plan(
        src,
        dst,
        TransferConfig(),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="bench",
    )
    seconds = time.perf_counter() - t1
    peak = _peak_mb()
    scans = SUBJECTS * EXPERIMENTS * SCANS
    print(
        f"\ndiff+plan: {scans} scans, {scans * FILES} files per side: {seconds:.1f} s, "
        f"peak RSS {peak:.0f} MB (inventories alone {inputs_mb:.0f} MB, built in {built:.1f} s); "
        f"{len(plan.steps)} steps, {len(plan.changes)} changes"
    )
    record(
        BenchResult(
            "planner_diff",
            {"scans_per_side": scans, "files_per_side": scans * FILES},
            seconds=rounded(seconds),
            peak_rss_mb=rounded(peak, 1),
            figures={"inventories_mb": rounded(inputs_mb, 1), "build_seconds": rounded(built)},
        )
    )
    assert plan.summary.experiments_to_create == 20
    assert plan.summary.scans_to_transfer == 20 * SCANS + 11
    assert plan.summary.experiments_in_sync == SUBJECTS * EXPERIMENTS - 20 - 11
