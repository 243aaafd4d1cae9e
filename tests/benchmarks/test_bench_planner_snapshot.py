"""Benchmark: snapshot of a seeded xnatsim project of 200 experiments with 10 scans each.

Two measurements. The request count: a fixed number per subject and experiment, whatever the
scans, counted on the wire by a plain ``requests`` backend. And latency: the same snapshot
through ``XnatClient`` with its default pool and the snapshot's default workers, at no
injected latency and at 50 ms per request (xnatsim's fault rule ``latency``). A snapshot
keeps its requests in flight together, so 50 ms per request must cost at most as much again
as the snapshot itself (ratio <= 2), not 50 ms times the request count.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
import requests

from planner.errors import BackendError, MalformedReply, NotFound
from planner.snapshot import SNAPSHOT_WORKERS, take_snapshot
from tests.benchmarks.results import BenchResult, record, rounded
from xnatctl.client import XnatClient

SUBJECTS = 50
EXPERIMENTS_PER_SUBJECT = 4
SCANS = 10
LATENCY = 0.05
PARAMS = {"experiments": SUBJECTS * EXPERIMENTS_PER_SUBJECT, "scans_per_experiment": SCANS}


class _Http:
    """The read side of the backend protocol over HTTP, counting requests on the wire."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.auth = ("admin", "admin")
        self.wire = 0

    def _get(self, path: str, params: Any = None) -> Any:
        self.wire += 1
        reply = self.session.get(self.url + path, params={**(params or {}), "format": "json"})
        if reply.status_code == 404:
            raise NotFound(path, status=404)
        if reply.status_code >= 400:
            raise BackendError(path, status=reply.status_code)
        try:
            return reply.json()
        except ValueError:
            raise MalformedReply(path) from None

    def get_json(self, path: str, params: Any = None) -> Any:
        return self._get(path, params)

    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        return self._get(path, params)["ResultSet"]["Result"]


def _seed(url: str) -> None:
    local = requests.Session()
    local.auth = ("admin", "admin")

    def put(session: requests.Session, path: str, params: dict | None = None,
            data: bytes | None = None) -> None:  # fmt: skip
        reply = session.put(url + path, params=params or {}, data=data)
        assert reply.status_code < 300, f"PUT {path}: {reply.status_code}"

    put(local, "/data/projects/BENCH")

    def experiment(n: int) -> None:
        s = requests.Session()
        s.auth = ("admin", "admin")
        subject = f"S{n // EXPERIMENTS_PER_SUBJECT:03d}"
        ep = f"/data/projects/BENCH/subjects/{subject}/experiments/{subject}_MR{n:03d}"
        put(s, ep, {"xsiType": "xnat:mrSessionData", "date": "2024-01-01"})
        for sc in range(1, SCANS + 1):
            scp = f"{ep}/scans/{sc}"
            put(s, scp, {"xsiType": "xnat:mrScanData", "type": "T1", "UID": f"1.2.{n}.{sc}"})
            put(s, f"{scp}/resources/DICOM", {"format": "DICOM"})
            put(s, f"{scp}/resources/DICOM/files/{quote('1.dcm')}", {"inbody": "true"}, b"x" * 64)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(experiment, range(SUBJECTS * EXPERIMENTS_PER_SUBJECT)))


@pytest.mark.bench
def test_bench_snapshot_200_experiments(xnatsim_factory):
    srv = xnatsim_factory(site_id="BENCH")
    t0 = time.perf_counter()
    _seed(srv.url)
    seeded = time.perf_counter() - t0
    backend = _Http(srv.url)
    t1 = time.perf_counter()
    inventory = take_snapshot(backend, "BENCH", workers=8)
    seconds = time.perf_counter() - t1
    experiments = sum(len(s.experiments) for s in inventory.subjects.values())
    scans = sum(len(e.scans) for s in inventory.subjects.values() for e in s.experiments.values())
    print(
        f"\nsnapshot: {experiments} experiments, {scans} scans, {inventory.requests} requests "
        f"({backend.wire} on the wire), {seconds:.2f} s (seeding took {seeded:.1f} s)"
    )
    assert experiments == SUBJECTS * EXPERIMENTS_PER_SUBJECT and scans == experiments * SCANS
    # buildInfo + project resources + subjects + experiments; 1 per subject; 2 per experiment
    assert inventory.requests == 4 + SUBJECTS + 2 * experiments == backend.wire
    record(
        BenchResult(
            "snapshot",
            {**PARAMS, "backend": "requests"},
            seconds=rounded(seconds),
            requests=inventory.requests,
            figures={"workers": 8},
        )
    )


class _InFlight:
    """Passes reads to a backend and keeps the most that were in flight at once."""

    def __init__(self, inner: XnatClient) -> None:
        self.inner = inner
        self.url = inner.url
        self.now = 0
        self.peak = 0
        self._lock = threading.Lock()

    def _call(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return fn(*args)
        finally:
            with self._lock:
                self.now -= 1

    def get_json(self, path: str, params: Any = None) -> Any:
        return self._call(self.inner.get_json, path, params)

    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        return self._call(self.inner.get_rows, path, params)


@pytest.mark.bench
def test_bench_snapshot_under_latency(xnatsim_factory):
    srv = xnatsim_factory(site_id="BENCH")
    _seed(srv.url)
    client = XnatClient(srv.url, user="admin", password="admin")
    client.login()  # outside the timings: a snapshot reuses the session it is given
    pool = client.session.get_adapter(srv.url)._pool_maxsize
    server_threads = len(srv._server.task_dispatcher.threads)
    runs: dict[float, list[tuple[float, int, int, int]]] = {0.0: [], LATENCY: []}
    # Twice each, interleaved, best of each: the machine is shared, and a slow moment should
    # not decide the ratio.
    for latency in (0.0, LATENCY, 0.0, LATENCY):
        srv.faults.set_rules([{"method": "GET", "path": "*", "latency": latency}])
        srv.request_log.clear()
        backend = _InFlight(client)
        t = time.perf_counter()
        inventory = take_snapshot(backend, "BENCH")
        elapsed = time.perf_counter() - t
        wire = len(srv.request_log.entries())
        runs[latency].append((elapsed, inventory.requests, wire, backend.peak))
        experiments = sum(len(s.experiments) for s in inventory.subjects.values())
        assert experiments == SUBJECTS * EXPERIMENTS_PER_SUBJECT
        assert inventory.requests == 4 + SUBJECTS + 2 * experiments == wire
    srv.faults.clear()
    client.close()

    best = {latency: min(r[0] for r in rs) for latency, rs in runs.items()}
    requests_made = runs[LATENCY][0][1]
    in_flight = max(r[3] for rs in runs.values() for r in rs)
    ratio = best[LATENCY] / best[0.0]

    def times(latency: float) -> str:
        return ", ".join(f"{r[0]:.2f}" for r in runs[latency])

    print(
        f"\nsnapshot under latency: {PARAMS['experiments']} experiments, {requests_made} "
        f"requests, {SNAPSHOT_WORKERS} workers, client pool {pool}, {server_threads} server "
        f"threads, at most {in_flight} in flight"
        f"\n  no latency:      {best[0.0]:.2f} s  ({times(0.0)})"
        f"\n  {LATENCY * 1000:.0f} ms a request: {best[LATENCY]:.2f} s  ({times(LATENCY)}); "
        f"that latency alone, serially, would be {requests_made * LATENCY:.1f} s"
        f"\n  ratio {ratio:.2f} (aim <= 2)"
    )
    figures = {
        "workers": SNAPSHOT_WORKERS,
        "pool": pool,
        "server_threads": server_threads,
        "in_flight": in_flight,
    }
    record(
        *(
            BenchResult(
                "snapshot",
                {**PARAMS, "latency_ms": round(latency * 1000)},
                seconds=rounded(best[latency]),
                requests=requests_made,
                figures={**figures, "ratio": rounded(ratio)} if latency else figures,
            )
            for latency in (0.0, LATENCY)
        )
    )
    # Every worker had a read going at once, each with a pooled connection and a server
    # thread to answer it: nothing held the snapshot to fewer.
    assert in_flight == SNAPSHOT_WORKERS
    assert pool >= SNAPSHOT_WORKERS and server_threads >= SNAPSHOT_WORKERS
