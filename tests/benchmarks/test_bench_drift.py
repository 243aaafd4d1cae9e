"""Benchmark: a drift check of a seeded project of 200 experiments with 10 scans each.

Both servers are seeded from the same seed, so they hold identical data (same UIDs, same
bytes, same digests) without a transfer; the check must find them in sync, then find one
deleted scan. Reports seconds, the requests each server answered, and the peak memory of a
drift check run in a process of its own (the servers live in the test process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.benchmarks.results import BenchResult, record, rounded
from xnatctl.cli.main import main
from xnatsim.seed import SeedSpec, seed_project

ROOT = Path(__file__).resolve().parents[2]

# The drift command in a fresh process; its peak RSS (VmHWM: ru_maxrss carries across exec)
# goes to stderr, after the report on stdout.
DRIFT = textwrap.dedent(
    """
    import json, sys
    from xnatctl.cli.main import main
    code = main(sys.argv[1:])
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print(json.dumps({"peak_kb": int(line.split()[1]), "exit": code}), file=sys.stderr)
    """
)


def _drift_in_a_process(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", DRIFT, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    return json.loads(proc.stderr.strip().splitlines()[-1])


SPEC = SeedSpec(
    project="BENCH",
    subjects=50,
    sessions_per_subject=4,
    scans_per_session=10,
    instances_per_scan=1,
    rows=8,
    cols=8,
    extras=False,
)


@pytest.mark.bench
def test_bench_drift_200_experiments(xnatsim_factory, monkeypatch, capsys):
    src, dst = xnatsim_factory(site_id="SRC"), xnatsim_factory(site_id="DST")
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        reports = list(
            pool.map(lambda srv: seed_project(srv.url, SPEC, auth=("admin", "admin")), (src, dst))
        )
    seeded = time.perf_counter() - started
    assert reports[0].sessions == 200 and reports[0].scans == 2000

    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    assert main(["config", "add-profile", "src", "--url", src.url]) == 0
    assert main(["config", "add-profile", "dst", "--url", dst.url]) == 0
    args = ["project", "drift", "-p", "src", "-P", "BENCH", "--dest-profile", "dst"]
    args += ["--dest-project", "BENCH", "-o", "json"]

    for srv in (src, dst):
        srv.request_log.clear()
    capsys.readouterr()
    t0 = time.perf_counter()
    code = main(args)
    elapsed = time.perf_counter() - t0
    report = json.loads(capsys.readouterr().out)
    requests_made = {name: len(s.request_log.entries()) for name, s in (("src", src), ("dst", dst))}
    writes = [e for s in (src, dst) for e in s.request_log.entries() if e["method"] != "GET"]
    assert code == 0, report["entries"][:5]
    assert writes == []
    alone = _drift_in_a_process(args)
    assert alone["exit"] == 0
    peak_mb = alone["peak_kb"] / 1024

    experiment = requests.get(
        f"{dst.url}/data/projects/BENCH/experiments",
        params={"format": "json", "limit": "1"},
        auth=("admin", "admin"),
        timeout=30,
    ).json()["ResultSet"]["Result"][0]
    requests.delete(
        f"{dst.url}/data/experiments/{experiment['ID']}/scans/3",
        params={"removeFiles": "true"},
        auth=("admin", "admin"),
        timeout=30,
    ).raise_for_status()
    for srv in (src, dst):
        srv.request_log.clear()
    t1 = time.perf_counter()
    code_after = main(args)
    elapsed_after = time.perf_counter() - t1
    requests_after = sum(len(s.request_log.entries()) for s in (src, dst))
    after = json.loads(capsys.readouterr().out)
    assert code_after == 2
    assert after["counts"]["missing"] == 1

    with capsys.disabled():
        print(
            f"\ndrift, 200 experiments x 10 scans ({reports[0].files} files a side; "
            f"seeding both took {seeded:.1f} s)\n"
            f"  in sync:     {elapsed:.2f} s, exit {code}, "
            f"requests: source {requests_made['src']}, destination {requests_made['dst']} "
            f"({(requests_made['src'] + requests_made['dst']) / 400:.2f} per experiment "
            f"and side), {report['counts']['in_sync']} entities in sync; peak RSS "
            f"{peak_mb:.0f} MB in a process of its own\n"
            f"  one missing: {elapsed_after:.2f} s, exit {code_after}, {requests_after} requests"
        )
    size = {"experiments": 200, "scans_per_experiment": 10}
    record(
        BenchResult(
            "drift",
            {**size, "case": "in_sync"},
            seconds=rounded(elapsed),
            peak_rss_mb=rounded(peak_mb, 1),
            requests=requests_made["src"] + requests_made["dst"],
            figures={"exit": code, "source_requests": requests_made["src"]},
        ),
        BenchResult(
            "drift",
            {**size, "case": "one_missing"},
            seconds=rounded(elapsed_after),
            requests=requests_after,
            figures={"exit": code_after},
        ),
    )
