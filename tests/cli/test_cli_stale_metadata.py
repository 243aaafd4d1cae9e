"""The stale check covers metadata: a field changed on the source after planning makes a saved
plan stale, as a changed file does (planner.staleness)."""

from __future__ import annotations

import pytest
import requests

from .conftest import ADMIN, PROJECT
from .planjson import read_plan


def _subject(url: str, label: str) -> dict:
    rows = requests.get(
        f"{url}/data/projects/{PROJECT}/subjects",
        params={"format": "json", "columns": "ID,label,gender"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    return next(r for r in rows if r["label"] == label)


def _plan(seeded, cli, tmp_path, *extra: str):
    plan_file = tmp_path / "study.plan.json"
    args = [*seeded.pair_args(), *extra, "--dry-run", "--plan-out", str(plan_file)]
    made = cli("project", "transfer", *args)
    assert made.code == 0, made.err
    return plan_file


def _change(url: str, path: str, **params: str) -> None:
    reply = requests.put(f"{url}{path}", params=params, auth=ADMIN, timeout=30)
    assert reply.status_code in (200, 201), reply.text


def test_a_subject_field_changed_after_planning_makes_the_plan_stale(seeded, cli, tmp_path):
    plan_file = _plan(seeded, cli, tmp_path)
    planned = _subject(seeded.src.url, "SUBJ001")["gender"]
    changed = "female" if planned == "male" else "male"
    _change(seeded.src.url, f"/data/projects/{PROJECT}/subjects/SUBJ001", gender=changed)

    applied = cli("project", "apply", str(plan_file), "--yes")
    assert applied.code == 1, "the planned (old) value would be written and verified as passed"
    assert "stale" in applied.err
    assert "subject SUBJ001: its fields changed on the source (gender)" in applied.err
    assert (
        requests.get(
            f"{seeded.dst.url}/data/projects/{PROJECT}/subjects",
            params={"format": "json"},
            auth=ADMIN,
            timeout=30,
        ).json()["ResultSet"]["Result"]
        == []
    )


@pytest.mark.parametrize("kind", ["experiment", "scan"])
def test_an_experiment_or_scan_field_changed_after_planning_makes_the_plan_stale(
    seeded, cli, tmp_path, kind
):
    plan_file = _plan(seeded, cli, tmp_path)
    plan = read_plan(plan_file)
    step = next(s for s in plan["steps"] if s["kind"] == "import_scan")
    exp_id, scan_id = step["source_experiment_id"], step["scan_id"]
    if kind == "experiment":
        _change(seeded.src.url, f"/data/experiments/{exp_id}", note="edited after planning")
        why = "its fields changed on the source (note)"
    else:
        _change(seeded.src.url, f"/data/experiments/{exp_id}/scans/{scan_id}", quality="unusable")
        why = f"scan {scan_id}: its fields changed on the source (quality)"

    applied = cli("project", "apply", str(plan_file), "--yes")
    assert applied.code == 1
    assert "stale" in applied.err
    assert why in applied.err
