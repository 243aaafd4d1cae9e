"""Benchmark: apply_filters over 100,000 scans and 2,000,000 files."""

from __future__ import annotations

import time

import pytest

from planner.config import loads_config
from planner.filters import apply_filters
from planner.inventory import Experiment, FileEntry, Inventory, Resource, Scan, Subject
from tests.benchmarks.results import BenchResult, record, rounded

SUBJECTS, SESSIONS, SCANS, FILES = 1000, 2, 50, 18  # 100,000 scans; DICOM 18 + SNAPSHOTS 2


def big_inventory() -> Inventory:
    dicom_files = tuple(FileEntry(f"{i:04d}.dcm", 500_000 + i, f"{i:032x}") for i in range(FILES))
    snap_files = (FileEntry("a.gif", 900, "a" * 32), FileEntry("b.gif", 900, "b" * 32))
    types = ("LOCALIZER", "T1_MPRAGE", "T2", "FLAIR", "DWI")
    subjects = {}
    for s in range(SUBJECTS):
        sl = f"S{s:05d}"
        exps = {}
        for e in range(SESSIONS):
            el = f"{sl}_E{e}"
            scans = {
                str(n): Scan(
                    id=str(n),
                    type=types[n % len(types)],
                    resources={
                        # distinct Resource objects, as a snapshot would give
                        "DICOM": Resource("DICOM", files=dicom_files),
                        "SNAPSHOTS": Resource("SNAPSHOTS", files=snap_files),
                    },
                )
                for n in range(SCANS)
            }
            xsi = "xnat:mrSessionData" if e == 0 else "xnat:ctSessionData"
            exps[el] = Experiment(label=el, xsi_type=xsi, subject_label=sl, scans=scans)
        subjects[sl] = Subject(sl, experiments=exps)
    return Inventory("http://src", "BIG", subjects=subjects)


@pytest.mark.bench
def test_bench_filters_100k_scans():
    inv = big_inventory()
    cases = {
        "exclude SNAPSHOTS everywhere": "filtering:\n  scan_resources:\n"
        "    sync_type: exclude\n    items: [SNAPSHOTS]\n",
        "MR only, T1* scans": "filtering:\n  imaging_sessions:\n    sync_type: include\n"
        "    xsi_types:\n      - xsi_type: xnat:mrSessionData\n"
        "        scan_types: {sync_type: include, items: ['T1*']}\n",
        "no filters": "",
    }
    print(f"\n{SUBJECTS * SESSIONS * SCANS:,} scans, {SUBJECTS * SESSIONS * SCANS * (FILES + 2):,}"
          " files")  # fmt: skip
    results = []
    for name, text in cases.items():
        filtering = loads_config(text).filtering
        t0 = time.perf_counter()
        out = apply_filters(inv, filtering)
        dt = time.perf_counter() - t0
        print(f"  {name:32s} {dt:6.2f} s   skipped {len(out.skipped):,}")
        assert out.inventory.subjects.keys() == inv.subjects.keys()
        results.append(
            BenchResult(
                "filters",
                {"scans": SUBJECTS * SESSIONS * SCANS, "case": name},
                seconds=rounded(dt),
                figures={"skipped": len(out.skipped)},
            )
        )
    record(*results)
