"""project transfer / apply / show-plan / transfer-status / transfer-history, end to end."""

from __future__ import annotations

import json
import os

import requests

from xnatsim.testing import add_user

from .conftest import ADMIN, PROJECT
from .planjson import read_plan


def _file_digests(srv, project: str) -> dict[str, str]:
    """Every scan file of a project as {session/scan/resource/name: md5}, read over REST."""
    experiments = requests.get(
        f"{srv.url}/data/projects/{project}/experiments",
        params={"format": "json", "columns": "ID,label,xsiType"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    digests: dict[str, str] = {}
    for exp in experiments:
        if not exp["xsiType"].endswith("SessionData"):
            continue
        rows = requests.get(
            f"{srv.url}/data/experiments/{exp['ID']}/scans/ALL/files",
            params={"format": "json"},
            auth=ADMIN,
            timeout=30,
        ).json()["ResultSet"]["Result"]
        for row in rows:
            scan = row["URI"].split("/scans/")[1].split("/")[0]
            key = f"{exp['label']}/{scan}/{row['collection']}/{row['Name']}"
            assert key not in digests, f"duplicate file {key}"
            # A scan's DICOM counts by name: the destination's site anonymization script
            # rewrites headers and records itself, so its digests differ from the source's.
            digests[key] = "" if row["collection"] == "DICOM" else row["digest"]
    return digests


def test_dry_run_saves_a_plan_that_apply_carries_out(seeded, cli, tmp_path):
    plan_file = tmp_path / "study.plan.json"
    dry = cli("project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(plan_file))
    assert dry.code == 0, dry.err
    assert "Plan: 2 subjects" in dry.out
    assert _file_digests(seeded.dst, PROJECT) == {}  # a dry run writes nothing
    saved = read_plan(plan_file)
    assert saved["format_version"] == 2
    assert "admin" not in json.dumps(saved["source"]) + json.dumps(saved["dest"])

    shown = cli("project", "show-plan", str(plan_file))
    assert shown.code == 0
    assert shown.out.strip().splitlines()[-1] == dry.out.strip().splitlines()[-1]

    applied = cli("project", "apply", str(plan_file), "--yes", "-o", "json")
    assert applied.code == 0, applied.err
    summary = json.loads(applied.out)
    assert summary["status"] == "completed"
    assert summary["subjects"]["synced"] == 2
    assert summary["verification"]["failed"] == 0

    source, dest = _file_digests(seeded.src, PROJECT), _file_digests(seeded.dst, PROJECT)
    assert source and source == dest

    again = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert again.code == 0
    assert "No changes" in again.out
    scripted = cli("project", "transfer", *seeded.pair_args(), "--yes", "-o", "json")
    assert scripted.code == 0
    assert json.loads(scripted.out) == {"status": "no_changes", "conflicts": [], "steps_run": 0}

    reapplied = cli("project", "apply", str(plan_file), "--yes")
    assert reapplied.code == 0, reapplied.err
    assert _file_digests(seeded.dst, PROJECT) == source  # nothing duplicated


def test_status_and_history_read_the_state_db_only(transferred, cli):
    transferred.src.stop()
    transferred.dst.stop()  # no network needed
    status = cli("project", "transfer-status", "-P", PROJECT, "-o", "json")
    assert status.code == 0, status.err
    run = json.loads(status.out)
    assert run["status"] == "completed"
    assert run["failed_steps"] == []
    assert run["steps"].get("done", 0) > 0
    history = cli("project", "transfer-history", "-P", PROJECT, "-o", "json")
    runs = json.loads(history.out)["runs"]
    assert [r["status"] for r in runs] == ["completed"]
    assert runs[0]["counts"]["subjects"]["synced"] == 2
    unknown = cli("project", "transfer-status", "-P", "NEVER")
    assert unknown.code == 5


def test_apply_without_yes_and_without_a_terminal_refuses(seeded, cli, tmp_path):
    plan_file = tmp_path / "p.json"
    assert (
        cli(
            "project", "transfer", *seeded.pair_args(), "--dry-run", "--plan-out", str(plan_file)
        ).code
        == 0
    )
    result = cli("project", "apply", str(plan_file))
    assert result.code == 64
    assert "--yes" in result.err
    assert _file_digests(seeded.dst, PROJECT) == {}


def test_unwritable_plan_out_is_refused_before_any_request(seeded, cli, tmp_path):
    seeded.src.request_log.clear()
    result = cli(
        "project",
        "transfer",
        *seeded.pair_args(),
        "--dry-run",
        "--plan-out",
        str(tmp_path / "missing-dir" / "p.json"),
    )
    assert result.code == 64
    assert "does not exist" in result.err
    assert seeded.src.request_log.entries() == []


def test_read_only_destination_fails_fast_with_exit_6(seeded, cli, monkeypatch):
    for srv, role in ((seeded.src, "Members"), (seeded.dst, "Collaborators")):
        add_user(srv, "ro", "pw-ro", project=PROJECT, group=role)
    monkeypatch.setenv("XNATCTL_USER", "ro")
    monkeypatch.setenv("XNATCTL_PASSWORD", "pw-ro")
    seeded.dst.request_log.clear()
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 6, result.err
    assert "may not write" in result.err
    writes = [e for e in seeded.dst.request_log.entries() if e["method"] in ("PUT", "POST")]
    assert writes == []


def test_failed_zips_and_work_dirs_are_private(seeded, cli):
    seeded.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import*", "status": 400, "first": 1}]
    )
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 1
    state = os.environ["XDG_STATE_HOME"]
    kept = list((os.path.join(root, f) for root, _, files in os.walk(state) for f in files))
    zips = [p for p in kept if p.endswith(".zip")]
    assert zips, "the failed import's zip was not kept"
    for path in zips:
        # Other users can reach nothing below a directory of mode 0700 on the way down.
        directory, guarded = os.path.dirname(path), False
        while directory.startswith(state) and directory != state:
            guarded |= os.stat(directory).st_mode & 0o077 == 0
            directory = os.path.dirname(directory)
        assert guarded, f"{path} is reachable by other users"
        assert os.stat(path).st_mode & 0o077 == 0, oct(os.stat(path).st_mode)
    work = os.path.join(state, "xnatctl", "work")
    assert os.stat(work).st_mode & 0o077 == 0
    assert any(z in result.out + result.err for z in zips)


def test_a_conflict_fails_the_run_and_keeps_its_subject_open(seeded, cli):
    source_sessions = requests.get(
        f"{seeded.src.url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label,xsiType,subject_label"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    victim = next(s for s in source_sessions if s["xsiType"] == "xnat:mrSessionData")
    # The destination already uses that session label, under another subject.
    reply = requests.put(
        f"{seeded.dst.url}/data/projects/{PROJECT}/subjects/OTHER/experiments/{victim['label']}",
        params={"xsiType": "xnat:mrSessionData"},
        auth=ADMIN,
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 1
    assert "conflict" in result.out
    assert f"{victim['subject_label']}/{victim['label']}" in result.out
    assert "Subjects: 1 synced, 1 failed" in result.out  # its subject is not counted as synced

    rerun = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert rerun.code == 1, "an open conflict is never reported as success"
    assert "1 conflict not transferred" in rerun.out

    again = cli("project", "transfer", *seeded.pair_args(), "--dry-run", "-o", "json")
    plan = json.loads(again.out)
    subject = next(c for c in plan["changes"] if c["address"] == victim["subject_label"])
    assert "completed by an earlier run" not in subject["reason"]
    assert plan["summary"]["conflicts"] >= 1


def test_widening_filters_is_noted_until_the_wider_data_is_in_place(seeded, cli, tmp_path):
    # Narrower only at project level: under the wider filters the subjects themselves are
    # already whole, so only the run's other steps (the project resource) have work to do.
    narrow = tmp_path / "no-project-resources.yaml"
    narrow.write_text("filtering:\n  project_resources:\n    sync_type: none\n")
    assert (
        cli("project", "transfer", *seeded.pair_args(), "--config", str(narrow), "--yes").code == 0
    )

    def reasons() -> dict[str, str]:
        dry = cli("project", "transfer", *seeded.pair_args(), "--dry-run", "-o", "json")
        plan = json.loads(dry.out)
        return {c["address"]: c["reason"] for c in plan["changes"] if c["level"] == "subject"}

    assert all("under other filters" in r for r in reasons().values()), reasons()
    everything = tmp_path / "everything.yaml"
    everything.write_text("sync_new_only: false\n")
    wide = cli("project", "transfer", *seeded.pair_args(), "--config", str(everything), "--yes")
    assert wide.code == 0, wide.err
    assert "1 resource" in wide.out  # the project resource; no subject had anything to do
    assert not any("under other filters" in r for r in reasons().values()), reasons()


def test_status_after_the_circuit_breaker_says_so(seeded, cli, tmp_path):
    seeded.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import*", "status": 400}]
    )
    config = tmp_path / "strict.yaml"
    config.write_text("max_failures: 1\nscan_workers: 1\n")
    result = cli("project", "transfer", *seeded.pair_args(), "--config", str(config), "--yes")
    assert result.code == 1
    assert "circuit breaker" in result.out
    status = cli("project", "transfer-status", "-P", PROJECT)
    assert status.code == 0
    assert "aborted" in status.out
    assert "circuit breaker" in status.out
    assert "left for the next run" in status.out


def test_transfer_init_writes_a_config_that_loads_back_and_is_not_overwritten(cli, tmp_path):
    from planner.config import TransferConfig, load_config

    target = tmp_path / "transfer.yaml"
    args = ["project", "transfer-init", "-P", "SRC1", "--dest-project", "DST1", "-f", str(target)]
    assert cli(*args).code == 0
    assert load_config(target) == TransferConfig(source_project="SRC1", dest_project="DST1")
    target.write_text(target.read_text() + "# my own note\n")
    refused = cli(*args)
    assert refused.code == 64
    assert "--force" in refused.err
    assert target.read_text().endswith("# my own note\n")
    assert cli(*args, "--force").code == 0
    assert "# my own note" not in target.read_text()


def test_workers_flag_overrides_the_config(seeded, cli, tmp_path):
    config = tmp_path / "t.yaml"
    config.write_text("scan_workers: 6\n")
    base = ["project", "transfer", *seeded.pair_args(), "--config", str(config), "--dry-run"]
    from_file = json.loads(cli(*base, "-o", "json").out)
    assert from_file["config"]["scan_workers"] == 6
    overridden = json.loads(cli(*base, "--workers", "1", "-o", "json").out)
    assert overridden["config"]["scan_workers"] == 1
    assert cli(*base, "--workers", "0").code == 64
