"""Apply asks, before its first write into an experiment, whose the label is (planner.homes).

XNAT resolves ``/data/projects/P/subjects/S/experiments/E`` by the label E within the project
(``ExperimentResource``: ``XnatExperimentdata.GetExptByProjectIdentifier``), whatever S says,
so a label taken by another subject after planning would receive this plan's writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from planner.apply import ApplyOptions, apply_plan
from planner.config import TransferConfig
from planner.state import StateDB
from tests.planner.plans import plan_between

ADMIN = ("admin", "admin")
PROJECT = "P"


def _client(url: str) -> Any:
    from xnatctl.client import XnatClient

    return XnatClient(url, user="admin", password="admin")


def _experiments(url: str) -> dict[str, dict[str, str]]:
    rows = requests.get(
        f"{url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label,subject_label,date"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    return {r["label"]: r for r in rows}


def test_apply_does_not_write_into_a_label_taken_after_the_stale_check(sim_pair, tmp_path: Path):
    from xnatsim.seed import SeedSpec, seed_project

    src_sim, dst_sim = sim_pair
    spec = SeedSpec(
        project=PROJECT,
        subjects=2,
        sessions_per_subject=1,
        scans_per_session=1,
        instances_per_scan=1,
        rows=8,
        cols=8,
        extras=False,
    )
    seed_project(src_sim.url, spec, auth=ADMIN)
    requests.put(f"{dst_sim.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30)
    src, dst = _client(src_sim.url), _client(dst_sim.url)
    config = TransferConfig(source_project=PROJECT, dest_project=PROJECT)
    plan = plan_between(src, dst, config)
    # Another uploader takes SUBJ001's session label for SUBJ002 once the plan is made (as
    # if after apply's stale check: the check is switched off here to open that window).
    reply = requests.put(
        f"{dst_sim.url}/data/projects/{PROJECT}/subjects/SUBJ002/experiments/SUBJ001_MR1",
        params={"xsiType": "xnat:mrSessionData"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text
    options = ApplyOptions(
        workers=2, retry_count=0, retry_delay=0, work_dir=tmp_path / "w", failed_dir=tmp_path / "f"
    )
    result = apply_plan(plan, src, dst, StateDB(tmp_path / "s.db"), options, check_stale=False)

    assert result.status == "failed"
    failed = dict(result.failed_steps)
    assert (
        "conflict: experiment SUBJ001_MR1 now belongs to subject SUBJ002"
        in (failed["create_experiment:SUBJ001/SUBJ001_MR1"])
    )
    assert any(a == "SUBJ001/SUBJ001_MR1" for a, _ in result.conflicts)
    held = _experiments(dst_sim.url)["SUBJ001_MR1"]
    assert (held["subject_label"], held["date"]) == ("SUBJ002", "")
    scans = requests.get(
        f"{dst_sim.url}/data/experiments/{held['ID']}/scans",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    assert scans == []
    # The rest of the plan went ahead: SUBJ002's own session is there.
    assert _experiments(dst_sim.url)["SUBJ002_CT1"]["subject_label"] == "SUBJ002"


def test_a_listing_without_subject_labels_is_read_through_the_subject_listing() -> None:
    # A server that leaves subject_label out of the experiment listing must not make every
    # experiment look like someone else's: the subject's ID is turned into its label.
    from planner.homes import home_conflict

    class Listings:
        url = "http://x"

        def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
            if path.endswith("/experiments"):
                return [{"ID": "E1", "label": "S1_MR1", "subject_ID": "X_S00001"}]
            return [{"ID": "X_S00002", "label": "S2"}, {"ID": "X_S00001", "label": "S1"}]

    assert home_conflict(Listings(), "P", "S1", "S1_MR1") == ""  # type: ignore[arg-type]
    assert "belongs to subject S1" in home_conflict(Listings(), "P", "S2", "S1_MR1")  # type: ignore[arg-type]
