"""Benchmark: snapshot of a seeded xnatsim project of 200 experiments with 10 scans each."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import pytest
import requests

from planner.errors import BackendError, MalformedReply, NotFound
from planner.snapshot import take_snapshot

SUBJECTS = 50
EXPERIMENTS_PER_SUBJECT = 4
SCANS = 10


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
