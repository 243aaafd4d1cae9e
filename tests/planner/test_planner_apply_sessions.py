"""Apply against xnatsim: imports into one session never overlap, sessions go in parallel.

XNAT 1.8.10+ shares one prearchive session among DICOM-zip uploads of one
project/StudyInstanceUID/label while it is receiving (PrearcDatabase.eitherGetOrCreateSession)
and refuses concurrent archiving of one session (PrearcSessionArchiver
.preventConcurrentArchiving). NRG's tests merge into one session by imports one after the
other, each waiting for its reply (TestImport.testDataScan2partsFilesOverwriteTDeleteF,
TestImport.testPrearcMergeNewScan).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import requests

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.snapshot import take_snapshot
from planner.state import StateDB
from tests.planner.plans import plan_between

ADMIN = ("admin", "admin")
PROJECT = "P"


def _client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def _timed_log(server: Any) -> None:
    """Give the request log's entries an end time as well as their start (``time``).

    The log appends an entry when its reply starts (after the import has run, and after any
    injected latency), so stamping the append is the request's end as the server saw it.
    """
    log = server.request_log
    append = log._append

    def stamped(entry: dict) -> None:
        entry.setdefault("end", time.time())
        append(entry)

    log._append = stamped


def _import_spans(server: Any) -> list[tuple[str, float, float, dict[str, list[str]]]]:
    out = []
    for e in server.request_log.entries():
        if e["method"] == "POST" and e["path"] == "/data/services/import":
            q = parse_qs(e["query"])
            key = f"{q['SUBJECT_ID'][0]}/{q['EXPT_LABEL'][0]}"
            out.append((key, e["time"], e["end"], q))
    return out


def _overlapping(spans: list, *, same: bool) -> list[tuple[str, str]]:
    pairs = []
    for i, (k1, s1, e1, _) in enumerate(spans):
        for k2, s2, e2, _ in spans[i + 1 :]:
            if (k1 == k2) == same and s1 < e2 and s2 < e1:
                pairs.append((k1, k2))
    return pairs


def test_four_workers_never_overlap_imports_of_one_session(sim_pair, tmp_path: Path) -> None:
    from xnatsim.seed import SeedSpec, seed_project

    src_sim, dst_sim = sim_pair
    seed_project(
        src_sim.url,
        SeedSpec(
            project=PROJECT,
            subjects=3,
            sessions_per_subject=1,
            scans_per_session=4,
            instances_per_scan=2,
            rows=16,
            cols=16,
            extras=False,
        ),
        auth=ADMIN,
    )
    requests.put(f"{dst_sim.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30)
    _timed_log(dst_sim)
    # Imports take a while, as on a real server, so that overlaps would show.
    dst_sim.faults.set_rules([{"method": "POST", "path": "/data/services/import", "latency": 0.15}])
    src, dst = _client(src_sim.url), _client(dst_sim.url)
    config = TransferConfig(source_project=PROJECT, dest_project=PROJECT, prevent_anon=True)
    plan = plan_between(src, dst, config)
    options = ApplyOptions(
        workers=4,
        retry_count=0,
        retry_delay=0,
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
    )
    result = apply_plan(plan, src, dst, StateDB(tmp_path / "s.db"), options)
    assert result.status == "completed", result.failed_steps

    spans = _import_spans(dst_sim)
    assert len(spans) == 12 and len({k for k, *_ in spans}) == 3
    assert _overlapping(spans, same=True) == [], "two imports into one session at once"
    assert _overlapping(spans, same=False), "imports of different sessions did not overlap"
    for _key, _start, _end, query in spans:
        assert query["import-handler"] == ["DICOM-zip"]
        assert query["allowSessionMerge"] == ["true"]  # DicomZipImporter.archiveSession
        assert query["prevent_anon"] == ["true"]  # the config asked for it


class ConflictBeforeFirstWrite:
    """The destination, where another study's session of the same labels appears just before
    this run's first write (after the stale check, as another uploader's would)."""

    def __init__(self, inner: Any, make_conflict: Any) -> None:
        self.inner = inner
        self.make_conflict = make_conflict
        self.done = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def url(self) -> str:
        return self.inner.url

    def _first_write(self) -> None:
        if not self.done:
            self.done = True
            self.make_conflict()

    def request_text(self, method: str, path: str, *args: Any, **kw: Any) -> str:
        if method != "GET":
            self._first_write()
        return self.inner.request_text(method, path, *args, **kw)

    def upload(self, method: str, path: str, src: Path, params: Any = None, **kw: Any) -> str:
        self._first_write()
        return self.inner.upload(method, path, src, params, **kw)


def _prearchive(server: Any) -> list[dict]:
    reply = requests.get(
        f"{server.url}/data/prearchive/projects/{PROJECT}",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    )
    reply.raise_for_status()
    return reply.json()["ResultSet"]["Result"]


def test_a_failed_import_leaves_nothing_in_the_prearchive(sim_pair, tmp_path: Path) -> None:
    # PrearcSessionResource.handleDelete; TestPrearchiveMgmt.testPrearchiveSessionDelete
    from xnatsim.seed import SeedSpec, seed_project

    src_sim, dst_sim = sim_pair
    spec = SeedSpec(
        project=PROJECT, subjects=1, scans_per_session=2, rows=16, cols=16, extras=False
    )
    seed_project(src_sim.url, spec, auth=ADMIN)
    requests.put(f"{dst_sim.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30)
    src, dst = _client(src_sim.url), _client(dst_sim.url)
    inventory = take_snapshot(src, PROJECT)
    (subject,) = inventory.subjects.values()
    (experiment,) = subject.experiments.values()
    # Someone else's session waiting in the destination's prearchive: never touched.
    zip_path = tmp_path / "other.zip"
    src.download(f"/data/experiments/{experiment.id}/scans/ALL/files", zip_path, {"format": "zip"})
    dst.upload(
        "POST",
        "/data/services/import",
        zip_path,
        {
            "import-handler": "DICOM-zip",
            "PROJECT_ID": PROJECT,
            "SUBJECT_ID": "someone",
            "EXPT_LABEL": "someone_else",
            "dest": f"/prearchive/projects/{PROJECT}",
        },
        content_type="application/zip",
    )
    before = _prearchive(dst_sim)
    assert [r["name"] for r in before] == ["someone_else"]

    def plan_now() -> Any:
        return plan_between(src, dst, TransferConfig(source_project=PROJECT, dest_project=PROJECT))

    plan = plan_now()
    # Just before the first write, the destination gains a session of the same label from
    # another study (seeded with another seed, so other StudyInstanceUIDs): XNAT's archiver
    # refuses to merge a second study into it (PrearcSessionArchiver.checkForConflicts),
    # DicomZipImporter turns that into a bare 400 and leaves the upload in the prearchive as
    # CONFLICT.
    failing = ConflictBeforeFirstWrite(
        dst, lambda: seed_project(dst_sim.url, replace(spec, seed=7), auth=ADMIN)
    )
    options = ApplyOptions(
        workers=2,
        retry_count=1,
        retry_delay=0,
        work_dir=tmp_path / "work",
        failed_dir=tmp_path / "failed",
    )
    state = StateDB(tmp_path / "s.db")
    dst_sim.request_log.clear()
    result = apply_plan(plan, src, failing, state, options)  # type: ignore[arg-type]
    assert failing.done, "the conflicting session was made before the first import"
    assert result.status == "failed"
    assert any("unable to archive" in error for _, error in result.failed_steps)
    assert not any("prearchive session" in error for _, error in result.failed_steps), (
        "the leftover was removed, so nothing is left to report"
    )
    assert _prearchive(dst_sim) == before, "the import's own leftover is gone, no other"
    deletes = [e for e in dst_sim.request_log.entries() if e["method"] == "DELETE"]
    assert deletes and all(
        d["path"].startswith(f"/data/prearchive/projects/{PROJECT}/") for d in deletes
    )

    # The user removes the conflicting session; a later run is not tripped up by anything.
    (other,) = take_snapshot(dst, PROJECT).subjects.values()
    assert set(other.experiments) == set(subject.experiments)
    for label in other.experiments:
        gone = requests.delete(
            f"{dst_sim.url}/data/projects/{PROJECT}/subjects/{other.label}/experiments/{label}",
            params={"removeFiles": "true"},
            auth=ADMIN,
            timeout=30,
        )
        assert gone.ok, gone.text
    # A later run is not tripped up by anything: it completes the transfer.
    again = apply_plan(plan_now(), src, dst, state, options)
    assert again.status == "completed", again.failed_steps
    assert _prearchive(dst_sim) == before
