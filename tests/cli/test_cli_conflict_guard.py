"""A conflicting experiment label is never written into, however the run comes to it.

XNAT resolves ``/data/projects/P/subjects/S/experiments/E`` by the label E within the project
(``ExperimentResource`` looks the label up with ``XnatExperimentdata.GetExptByProjectIdentifier``
and does not compare its subject), so a plan that forgets a conflict writes into another
subject's experiment.
"""

from __future__ import annotations

import json

import requests

from .conftest import ADMIN, PROJECT

VICTIM = "SUBJ001_MR1"  # SUBJ001's first session on the seeded source
HOLDER = "SUBJ002"  # the destination subject that holds that label


def _hold_label(dst_url: str) -> None:
    """Create, by hand, SUBJ002's experiment labelled like SUBJ001's session."""
    reply = requests.put(
        f"{dst_url}/data/projects/{PROJECT}/subjects/{HOLDER}/experiments/{VICTIM}",
        params={"xsiType": "xnat:mrSessionData"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text


def _held_experiment(dst_url: str) -> dict:
    """The hand-made experiment as the destination shows it: subject, date, scans, resources,
    assessors. It must stay as it was made."""
    rows = requests.get(
        f"{dst_url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label,subject_label,date"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    row = next(r for r in rows if r["label"] == VICTIM)
    base = f"{dst_url}/data/experiments/{row['ID']}"

    def count(path: str) -> int:
        reply = requests.get(f"{base}/{path}", params={"format": "json"}, auth=ADMIN, timeout=30)
        return len(reply.json()["ResultSet"]["Result"])

    return {
        "subject": row["subject_label"],
        "date": row.get("date", ""),
        "scans": count("scans"),
        "resources": count("resources"),
        "assessors": count("assessors"),
    }


UNTOUCHED = {"subject": HOLDER, "date": "", "scans": 0, "resources": 0, "assessors": 0}


def test_a_completed_subject_never_hides_a_conflict(seeded, cli):
    _hold_label(seeded.dst.url)
    first = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert first.code == 1, first.err
    assert f"SUBJ001/{VICTIM}" in first.out
    assert _held_experiment(seeded.dst.url) == UNTOUCHED

    # SUBJ002 completed in the first run; skipping it must not drop the label it holds from
    # the conflict check, or the plan PUTs SUBJ001/SUBJ001_MR1 into SUBJ002's experiment.
    plan = json.loads(
        cli("project", "transfer", *seeded.pair_args(), "--dry-run", "-o", "json").out
    )
    skipped = next(c for c in plan["changes"] if c["address"] == HOLDER)
    assert skipped["status"] == "skipped"
    assert plan["summary"]["conflicts"] == 1
    assert not [s for s in plan["steps"] if s["dest"].get("experiment") == VICTIM]

    second = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert second.code == 1, "an open conflict is never reported as success"
    assert "1 conflict" in second.out
    assert _held_experiment(seeded.dst.url) == UNTOUCHED


NEW = "SUBJ001_NEW"  # a session added to SUBJ001 on the source after a complete transfer


def test_a_conflict_that_appears_after_planning_stops_a_saved_plan(transferred, cli, tmp_path):
    # SUBJ002 exists on the destination already, so nothing about it is "created" by the plan:
    # only the label check sees that the new session's label has been taken meanwhile.
    reply = requests.put(
        f"{transferred.src.url}/data/projects/{PROJECT}/subjects/SUBJ001/experiments/{NEW}",
        params={"xsiType": "xnat:mrSessionData", "date": "2021-03-04"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text
    config = tmp_path / "all.yaml"
    config.write_text("sync_new_only: false\n")
    plan_file = tmp_path / "study.plan.json"
    dry = cli(
        "project",
        "transfer",
        *transferred.pair_args(),
        "--config",
        str(config),
        "--dry-run",
        "--plan-out",
        str(plan_file),
    )
    assert dry.code == 0, dry.err
    assert "Plan: 0 subjects, 1 experiment" in dry.out
    reply = requests.put(
        f"{transferred.dst.url}/data/projects/{PROJECT}/subjects/{HOLDER}/experiments/{NEW}",
        params={"xsiType": "xnat:mrSessionData"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text

    applied = cli("project", "apply", str(plan_file), "--yes")
    assert applied.code == 1
    assert "stale" in applied.err
    assert f"experiment {NEW} now exists on the destination under subject {HOLDER}" in applied.err
    rows = requests.get(
        f"{transferred.dst.url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label,subject_label,date"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    held = next(r for r in rows if r["label"] == NEW)
    assert (held["subject_label"], held["date"]) == (HOLDER, "")
