"""An experiment shared into the project, under a subject the project owns, is recognised.

XNAT names the listing project in an experiment listing's `project` column even for a shared
experiment, so the snapshot must learn the owner from the experiment's own document.
"""

from __future__ import annotations

import requests

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.plan import ChangeStatus, StepKind
from planner.snapshot import take_snapshot
from xnatctl.client import XnatClient

ADMIN = ("admin", "admin")


def _put(url: str, **params: str) -> None:
    reply = requests.put(url, params=params, auth=ADMIN, timeout=30)
    assert reply.status_code in (200, 201), f"{url}: {reply.status_code} {reply.text}"


def test_experiment_owned_elsewhere_is_skipped_unless_copied(sim_pair):
    src, dst = sim_pair
    base = f"{src.url}/data/projects"
    for project in ("P", "Q"):
        _put(f"{base}/{project}")
    _put(f"{dst.url}/data/projects/P")
    _put(f"{base}/P/subjects/S1")
    _put(f"{base}/P/subjects/S1/experiments/OWN_MR", xsiType="xnat:mrSessionData")
    _put(f"{base}/P/subjects/S1/projects/Q")  # the subject is also seen in Q
    _put(f"{base}/Q/subjects/S1/experiments/Q_MR", xsiType="xnat:mrSessionData")
    _put(f"{base}/Q/subjects/S1/experiments/Q_MR/projects/P")  # shared back into P

    with (
        XnatClient(src.url, user="admin", password="admin") as s,
        XnatClient(dst.url, user="admin", password="admin") as d,
    ):
        source, dest = take_snapshot(s, "P"), take_snapshot(d, "P")
    experiments = source.subjects["S1"].experiments
    assert experiments["OWN_MR"].shared_from == ""
    assert experiments["Q_MR"].shared_from == "Q"

    def plan(copy_shared: bool):
        return make_plan(
            source,
            dest,
            TransferConfig(copy_shared=copy_shared),
            completed_subjects={},
            state_serial=0,
            created_at="2026-01-01T00:00:00Z",
            tool_version="test",
        )

    default = plan(copy_shared=False)
    skipped = {c.address: c for c in default.changes if c.status == ChangeStatus.SKIPPED}
    assert "shared from project Q" in skipped["S1/Q_MR"].reason
    created = {s.address for s in default.steps if s.kind == StepKind.CREATE_EXPERIMENT}
    assert created == {"S1/OWN_MR"}

    copied = plan(copy_shared=True)
    created = {s.address for s in copied.steps if s.kind == StepKind.CREATE_EXPERIMENT}
    assert created == {"S1/OWN_MR", "S1/Q_MR"}


def test_a_subject_shared_in_under_another_label_keeps_that_label(sim_pair):
    src, dst = sim_pair
    base = f"{src.url}/data/projects"
    for project in ("STUDY", "PARTNER"):
        _put(f"{base}/{project}")
    _put(f"{dst.url}/data/projects/STUDY")
    _put(f"{base}/PARTNER/subjects/P2", gender="male")
    _put(f"{base}/PARTNER/subjects/P2/experiments/P2_CLIN", xsiType="clin:clinicalAssessmentData")
    _put(f"{base}/PARTNER/subjects/P2/projects/STUDY", label="ALIAS2")
    _put(f"{base}/PARTNER/subjects/P2/experiments/P2_CLIN/projects/STUDY", label="ALIAS2_CLIN")

    with (
        XnatClient(src.url, user="admin", password="admin") as s,
        XnatClient(dst.url, user="admin", password="admin") as d,
    ):
        source, dest = take_snapshot(s, "STUDY"), take_snapshot(d, "STUDY")
    assert set(source.subjects) == {"ALIAS2"}, "no subject under its owner's label"
    alias = source.subjects["ALIAS2"]
    assert alias.shared_from == "PARTNER"
    assert set(alias.experiments) == {"ALIAS2_CLIN"}

    plan = make_plan(
        source,
        dest,
        TransferConfig(),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )
    assert plan.steps == ()
