"""Metadata through the command line: fields, assessors, shared data and --copy-shared."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from xnatsim.seed import SeedSpec, seed_project

from .conftest import ADMIN, PROJECT, Pair

PARTNER = f"{PROJECT}_PARTNER"


@pytest.fixture
def shared_pair(sim_pair, cli, monkeypatch) -> Pair:
    """A seeded source with a subject shared in from a partner project; an empty destination."""
    src, dst = sim_pair
    seed_project(
        src.url,
        SeedSpec(
            project=PROJECT,
            subjects=1,
            sessions_per_subject=1,
            scans_per_session=3,
            instances_per_scan=1,
            rows=8,
            cols=8,
            modalities=("MR",),
            shared=True,
        ),
        auth=ADMIN,
    )
    requests.put(f"{dst.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30).raise_for_status()
    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    assert cli("config", "add-profile", "src", "--url", src.url).code == 0
    assert cli("config", "add-profile", "dst", "--url", dst.url).code == 0
    return Pair(src, dst)


def _drift(cli, pair: Pair, *extra: str) -> tuple[int, dict]:
    result = cli("project", "drift", *pair.pair_args(), "-o", "json", *extra)
    assert result.code in (0, 2), result.err
    return result.code, json.loads(result.out)


def _dest_subjects(pair: Pair) -> list[str]:
    reply = requests.get(
        f"{pair.dst.url}/data/projects/{PROJECT}/subjects",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    )
    reply.raise_for_status()
    return sorted(r["label"] for r in reply.json()["ResultSet"]["Result"])


def test_shared_subject_is_skipped_by_default_with_the_reason(shared_pair: Pair, cli) -> None:
    result = cli("project", "transfer", *shared_pair.pair_args(), "--dry-run", "-o", "json")
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    changes = {c["address"]: c for c in plan["changes"]}
    assert changes["PARTNER001"]["status"] == "skipped"
    assert changes["PARTNER001"]["reason"].startswith(f"shared from project {PARTNER}")
    assert not [s for s in plan["steps"] if s["address"].startswith("PARTNER001")]

    result = cli("project", "transfer", *shared_pair.pair_args(), "--yes")
    assert result.code == 0, result.err
    assert _dest_subjects(shared_pair) == ["SUBJ001"]
    code, report = _drift(cli, shared_pair)
    assert code == 0, report["entries"]
    assert report["counts"]["not_compared"] >= 1


def test_copy_shared_transfer_then_a_changed_field_is_drift_and_is_updated(
    shared_pair: Pair, cli, tmp_path: Path
) -> None:
    config = tmp_path / "transfer.yaml"
    config.write_text("sync_new_only: false\n", encoding="utf-8")
    args = [*shared_pair.pair_args(), "--config", str(config)]

    result = cli("project", "transfer", *args, "--copy-shared", "--yes")
    assert result.code == 0, result.err
    assert _dest_subjects(shared_pair) == ["PARTNER001", "SUBJ001"]
    code, report = _drift(cli, shared_pair, "--copy-shared")
    assert code == 0, report["entries"]

    requests.put(
        f"{shared_pair.src.url}/data/projects/{PROJECT}/subjects/SUBJ001",
        params={"xnat:subjectData/fields/field[name=study_arm]/field": "C"},
        auth=ADMIN,
        timeout=30,
    ).raise_for_status()
    code, report = _drift(cli, shared_pair, "--copy-shared")
    assert code == 2
    (entry,) = report["entries"]
    assert (entry["address"], entry["class"]) == ("SUBJ001", "differs")
    assert entry["differences"][0].startswith("fields/study_arm 'C' != ")

    result = cli("project", "transfer", *args, "--copy-shared", "--dry-run", "-o", "json")
    plan = json.loads(result.out)
    assert [(s["kind"], s["address"]) for s in plan["steps"]] == [("update_subject", "SUBJ001")]
    result = cli("project", "transfer", *args, "--copy-shared", "--yes")
    assert result.code == 0, result.err
    code, report = _drift(cli, shared_pair, "--copy-shared")
    assert code == 0, report["entries"]


def test_copy_shared_from_the_config_file(shared_pair: Pair, cli, tmp_path: Path) -> None:
    config = tmp_path / "transfer.yaml"
    config.write_text("copy_shared: true\n", encoding="utf-8")
    result = cli(
        "project",
        "transfer",
        *shared_pair.pair_args(),
        "--config",
        str(config),
        "--dry-run",
        "-o",
        "json",
    )
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert plan["config"]["copy_shared"] is True
    kinds = {(s["kind"], s["address"]) for s in plan["steps"]}
    assert ("create_subject", "PARTNER001") in kinds

    config.write_text("copy_shared: maybe\n", encoding="utf-8")
    result = cli("project", "transfer", *shared_pair.pair_args(), "--config", str(config))
    assert result.code != 0
    assert "copy_shared" in result.err and "true or false" in result.err
