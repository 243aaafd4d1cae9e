"""Snapshots over real HTTP against xnatsim servers."""

from __future__ import annotations

import pytest

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.inventory import Assessor
from planner.plan import ChangeStatus, StepKind
from planner.snapshot import snapshot_experiment, take_snapshot


def _project(b, scans_per_session: int, *, project: str = "P"):
    def scans():
        return tuple(
            b.scan(str(i + 1), extra=(b.res("NIFTI", 1),), n=2) for i in range(scans_per_session)
        )

    qc = Assessor("E1_QC", "", "xnat:qcAssessmentData", "", {"PDF": b.res("PDF", 1)})
    return b.inv(
        b.subj(
            "S1",
            b.exp("E1", "S1", scans(), resources=(b.res("SNAPSHOTS", 1),), assessors=(qc,)),
            b.exp("F1", "S1", xsi="xnat:subjectAssessorData", resources=(b.res("FORM", 1),)),
            resources=(b.res("CONSENT", 1),),
            fields={"gender": "female"},
        ),
        b.subj("S2", b.exp("E2", "S2", scans())),
        resources=(b.res("PROTOCOL", 1),),
        project=project,
    )


def _shape(inventory):
    """The content a snapshot must reproduce, without what each server assigns itself
    (accession IDs, MD5 digests)."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k != "id"}
        if isinstance(value, list):
            if value and isinstance(value[0], list) and len(value[0]) == 3:
                return [[path, size] for path, size, _digest in value]
            return [clean(v) for v in value]
        return value

    return clean(inventory.content_dict())


def test_snapshot_of_a_real_server(b, xnatsim_factory, http_backend, rest_seed):
    srv = xnatsim_factory(site_id="SRC")
    want = _project(b, 2)
    rest_seed(srv.url, want)
    backend = http_backend(srv.url)
    got = take_snapshot(backend, "P", workers=4)
    assert _shape(got) == _shape(want)
    assert got.requests == backend.wire_requests
    assert got.digests is True  # xnatsim computes an MD5 for every file
    dicom = got.subjects["S1"].experiments["E1"].scans["1"].resources["DICOM"]
    assert all(len(f.digest) == 32 for f in dicom.files)
    qc = got.subjects["S1"].experiments["E1"].assessors["E1_QC"]
    assert qc.resources["PDF"].file_count == 1
    assert not got.subjects["S1"].experiments["F1"].is_imaging


def test_request_count_does_not_depend_on_scans(b, xnatsim_factory, http_backend, rest_seed):
    srv = xnatsim_factory(site_id="SRC")
    rest_seed(srv.url, _project(b, 2, project="P"))
    rest_seed(srv.url, _project(b, 4, project="P2"))
    small = take_snapshot(http_backend(srv.url), "P")
    big = take_snapshot(http_backend(srv.url), "P2")
    assert sum(len(e.scans) for e in big.subjects["S2"].experiments.values()) == 4
    assert small.requests == big.requests


def test_snapshot_experiment_reads_one_experiment(b, xnatsim_factory, http_backend, rest_seed):
    srv = xnatsim_factory(site_id="SRC")
    rest_seed(srv.url, _project(b, 2))
    backend = http_backend(srv.url)
    whole = take_snapshot(backend, "P")
    e1 = whole.subjects["S1"].experiments["E1"]
    assert snapshot_experiment(backend, "P", "S1", e1.id) == e1


def test_plan_between_two_real_servers(b, sim_pair, http_backend, rest_seed):
    rest_seed(sim_pair.src.url, _project(b, 2))
    partial = _project(b, 2, project="Q")
    s2 = partial.subjects["S2"]
    rest_seed(sim_pair.dst.url, b.inv(s2, project="Q"))
    src = take_snapshot(http_backend(sim_pair.src.url), "P")
    dst = take_snapshot(http_backend(sim_pair.dst.url), "Q")
    plan = make_plan(
        src,
        dst,
        TransferConfig(),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="0.1.0",
    )
    status = {c.address: c.status for c in plan.changes}
    assert status["S2/E2"] == ChangeStatus.IN_SYNC
    assert status["S1"] == ChangeStatus.CREATE
    kinds = {s.kind for s in plan.steps}
    assert kinds >= {
        StepKind.CREATE_SUBJECT,
        StepKind.CREATE_EXPERIMENT,
        StepKind.IMPORT_SCAN,
        StepKind.UPLOAD_RESOURCE,
        StepKind.UPDATE_EXPERIMENT,
    }
    assert plan.summary.scans_to_transfer == 2


@pytest.mark.parametrize("workers", [1, 8])
def test_worker_count_does_not_change_the_inventory(
    b, xnatsim_factory, http_backend, rest_seed, workers
):
    srv = xnatsim_factory(site_id="SRC")
    rest_seed(srv.url, _project(b, 2))
    one = take_snapshot(http_backend(srv.url), "P", workers=1)
    many = take_snapshot(http_backend(srv.url), "P", workers=workers)
    assert one.fingerprint() == many.fingerprint()


def _backend(url: str, http_backend):
    """The real HTTP client when it is there, else the test's own read-only backend."""
    try:
        from xnatctl.client import XnatClient
    except ImportError:
        return http_backend(url)
    return XnatClient(url, user="admin", password="admin")


def test_dicom_seeded_project_request_count_is_fixed(xnatsim_factory, http_backend):
    seed_mod = pytest.importorskip("xnatsim.seed")
    counts = []
    for n, scans in enumerate((2, 4)):
        srv = xnatsim_factory(site_id=f"SEED{n}")
        spec = seed_mod.SeedSpec(
            project="P",
            subjects=2,
            sessions_per_subject=2,
            scans_per_session=scans,
            instances_per_scan=1,
            rows=8,
            cols=8,
        )
        seed_mod.seed_project(srv.url, spec, auth=("admin", "admin"))
        inventory = take_snapshot(_backend(srv.url, http_backend), "P")
        sessions = [
            e for s in inventory.subjects.values() for e in s.experiments.values() if e.is_imaging
        ]
        assert len(sessions) == 4
        assert all(len(e.scans) == scans for e in sessions)
        assert all("DICOM" in sc.resources for e in sessions for sc in e.scans.values())
        assert all(sc.uid for e in sessions for sc in e.scans.values())
        assert inventory.digests is True
        counts.append(inventory.requests)
    assert counts[0] == counts[1]
