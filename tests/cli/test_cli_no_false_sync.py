"""No false "in sync": subjects skipped under sync_new_only were not compared, and a subject
recorded complete that the destination no longer holds whole is compared again."""

from __future__ import annotations

import json

import requests

from .conftest import ADMIN, PROJECT


def _delete(url: str, path: str) -> None:
    reply = requests.delete(f"{url}{path}", params={"removeFiles": "true"}, auth=ADMIN, timeout=30)
    assert reply.status_code == 200, reply.text


def test_a_rerun_says_completed_subjects_were_not_compared(transferred, cli):
    again = cli("project", "transfer", *transferred.pair_args(), "--yes")
    assert again.code == 0, again.err
    assert "destination matches the source" not in again.out
    assert "2 subjects completed by an earlier run, not compared with the destination" in (
        again.out
    )


def test_a_completed_subject_deleted_on_the_destination_is_transferred_again(transferred, cli):
    _delete(transferred.dst.url, f"/data/projects/{PROJECT}/subjects/SUBJ002")
    assert cli("project", "drift", *transferred.pair_args()).code == 2

    plan = json.loads(
        cli("project", "transfer", *transferred.pair_args(), "--dry-run", "-o", "json").out
    )
    subject = next(c for c in plan["changes"] if c["address"] == "SUBJ002")
    assert subject["status"] == "create"
    again = cli("project", "transfer", *transferred.pair_args(), "--yes")
    assert again.code == 0, again.err
    assert "destination matches the source" not in again.out
    assert "Plan: 1 subject" in again.out
    drift = cli("project", "drift", *transferred.pair_args())
    assert drift.code == 0, drift.out


def test_a_completed_subject_missing_a_scan_on_the_destination_is_repaired(transferred, cli):
    rows = requests.get(
        f"{transferred.dst.url}/data/projects/{PROJECT}/subjects/SUBJ001/experiments",
        params={"format": "json", "columns": "ID,label,xsiType"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    session = next(r for r in rows if r["xsiType"] == "xnat:mrSessionData")
    _delete(transferred.dst.url, f"/data/experiments/{session['ID']}/scans/1")

    again = cli("project", "transfer", *transferred.pair_args(), "--yes")
    assert again.code == 0, again.err
    assert "1 scan" in again.out
    assert cli("project", "drift", *transferred.pair_args()).code == 0
