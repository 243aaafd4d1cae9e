"""The snapshot stays bulk with metadata: a fixed number of requests per subject and
experiment, no XML document, and the same count whatever the number of scans or files."""

from __future__ import annotations

from typing import Any

from planner.snapshot import take_snapshot

ADMIN = ("admin", "admin")


def _seed(url: str, project: str, scans: int) -> None:
    from xnatsim.seed import SeedSpec, seed_project

    spec = SeedSpec(
        project=project,
        subjects=2,
        sessions_per_subject=2,
        scans_per_session=scans,
        instances_per_scan=1,
        rows=4,
        cols=4,
        modalities=("MR",),
    )
    seed_project(url, spec, auth=ADMIN)


def _client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def expected_requests(subjects: int, sessions: int, subject_assessors: int) -> int:
    """The documented bound, for a seeded project where everything has resources.

    project: build info, resources, files, subjects, experiments  -> 5
    subject: its document and its files                           -> 2 each
    session: document, scan files, session files, one per
             session assessor with resources (the seed has one)   -> 4 each
    subject assessor: document and its files                      -> 2 each
    """
    return 5 + 2 * subjects + 4 * sessions + 2 * subject_assessors


def test_snapshot_request_count_is_fixed_per_subject_and_experiment(xnatsim_factory) -> None:
    srv = xnatsim_factory()
    _seed(srv.url, "FEW", scans=1)
    _seed(srv.url, "MANY", scans=5)
    backend = _client(srv.url)

    srv.request_log.clear()
    few = take_snapshot(backend, "FEW")
    many = take_snapshot(backend, "MANY")
    log = [e for e in srv.request_log.entries() if e.get("path") != "/data/JSESSION"]  # login

    assert sum(len(e.scans) for s in many.subjects.values() for e in s.experiments.values()) == 20
    assert few.requests == many.requests == expected_requests(2, 4, 2)
    assert len(log) == few.requests + many.requests  # nothing unaccounted on the wire
    assert all("format=xml" not in str(e.get("query", "")) for e in log)
    assert all(e.get("method") == "GET" for e in log)
    # the fields came with those documents
    s1 = many.subjects["SUBJ001"]
    assert "fields/study_arm" in s1.fields
    assert s1.experiments["SUBJ001_MR1"].scans["3"].type.endswith("(renamed)")
    assert s1.experiments["SUBJ001_MR1"].assessors["SUBJ001_MR1_QC"].fields
