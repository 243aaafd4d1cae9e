"""apply refuses a plan whose steps would write or read anywhere its header does not say."""

from __future__ import annotations

import json

import pytest
import requests

from .conftest import ADMIN, PROJECT
from .planjson import read_plan, write_plan


def _experiments(url: str, project: str) -> list[dict]:
    return requests.get(
        f"{url}/data/projects/{project}/experiments",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]


def _first(plan: dict, kind: str) -> dict:
    return next(s for s in plan["steps"] if s["kind"] == kind)


def _other_experiment_id(plan: dict) -> None:
    """An experiment resource upload reading another source experiment's resource."""
    steps = [
        s
        for s in plan["steps"]
        if s["kind"] == "upload_resource" and s["owner_level"] == "experiment"
    ]
    mine, other = (
        steps[0],
        next(s for s in steps if s["address"].split("/")[1] != steps[0]["address"].split("/")[1]),
    )
    mine["source_experiment_id"] = other["source_experiment_id"]


def _project_resource_from_an_experiment(plan: dict) -> None:
    """A project resource upload made to read an experiment's resource of the same label."""
    project = next(s for s in plan["steps"] if s["address"].startswith("@project"))
    an_import = _first(plan, "import_scan")
    project["source_experiment_id"] = an_import["source_experiment_id"]


EDITS = {
    "target project": lambda p: _first(p, "create_experiment")["dest"].update(project="OTHER"),
    "target subject": lambda p: _first(p, "import_scan")["dest"].update(subject="SUBJ002"),
    "target experiment": lambda p: _first(p, "upload_resource")["dest"].update(
        experiment="ELSEWHERE"
    ),
    # Plan format 2 keeps no source paths: a step reads where its address and source IDs
    # say (planner.restpaths), so these edits point its IDs elsewhere instead.
    "project source id": _project_resource_from_an_experiment,
    "experiment source id": _other_experiment_id,
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_a_step_pointing_elsewhere_makes_the_plan_unusable(seeded, cli, tmp_path, edit):
    requests.put(f"{seeded.dst.url}/data/projects/OTHER", auth=ADMIN, timeout=30)
    plan_file = tmp_path / "study.plan.json"
    made = cli(
        "project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(plan_file)
    )
    assert made.code == 0, made.err
    plan = read_plan(plan_file)
    EDITS[edit](plan)
    write_plan(plan_file, plan)

    applied = cli("project", "apply", str(plan_file), "--yes")
    assert applied.code == 1
    assert f"cannot use the plan file {plan_file}: step " in applied.err
    assert "make a new plan" in applied.err
    assert _experiments(seeded.dst.url, PROJECT) == []
    assert _experiments(seeded.dst.url, "OTHER") == []
    history = cli("project", "transfer-history", "-P", PROJECT, "-o", "json")
    assert json.loads(history.out)["runs"] == []  # refused before a run was even started
