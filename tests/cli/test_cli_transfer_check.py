"""project transfer-check: each check passes or fails with what to do."""

from __future__ import annotations

import json

import requests

from xnatsim.testing import add_user

from .conftest import ADMIN, PROJECT


def _checks(cli, *args: str) -> tuple[int, dict[str, dict]]:
    result = cli("project", "transfer-check", *args, "-o", "json")
    data = json.loads(result.out)
    return result.code, {c["name"]: c for c in data["checks"]}


def test_all_checks_pass(seeded, cli):
    code, checks = _checks(cli, *seeded.pair_args())
    assert code == 0
    assert all(c["status"] == "pass" for c in checks.values()), checks
    assert "destination accepts DICOM-zip imports" in checks
    # the import probe leaves nothing behind on the destination
    rows = requests.get(
        f"{seeded.dst.url}/data/projects/{PROJECT}/experiments",
        params={"format": "json"},
        auth=ADMIN,
        timeout=30,
    ).json()["ResultSet"]["Result"]
    assert rows == []


def test_wrong_password_fails_login_check(seeded, cli, monkeypatch):
    monkeypatch.setenv("XNATCTL_PASSWORD", "wrong")
    code, checks = _checks(cli, *seeded.pair_args())
    assert code == 1
    assert checks["source login"]["status"] == "fail"
    assert checks["source login"]["hint"]
    assert checks["destination login"]["status"] == "fail"


def test_missing_project_fails_with_a_hint(seeded, cli):
    code, checks = _checks(cli, *seeded.pair_args(dest_project="NOPE"))
    assert code == 1
    assert checks["source project STUDY"]["status"] == "pass"
    failed = checks["destination project NOPE"]
    assert failed["status"] == "fail"
    assert "create" in failed["hint"]


def test_collaborator_only_destination_is_not_writable(seeded, cli, monkeypatch):
    add_user(seeded.src, "carol", "pw-carol", project=PROJECT, group="Members")
    add_user(seeded.dst, "carol", "pw-carol", project=PROJECT, group="Collaborators")
    monkeypatch.setenv("XNATCTL_USER", "carol")
    monkeypatch.setenv("XNATCTL_PASSWORD", "pw-carol")
    code, checks = _checks(cli, *seeded.pair_args())
    assert code == 1
    assert checks["source project STUDY"]["status"] == "pass"
    dest = checks["destination project STUDY"]
    assert dest["status"] == "fail"
    assert "owner or member" in dest["hint"]


def test_a_member_of_the_destination_may_write(seeded, cli, monkeypatch):
    # XNAT's restrict=edit would leave members out: members add data but do not own the project
    for srv in (seeded.src, seeded.dst):
        add_user(srv, "mia", "pw-mia", project=PROJECT, group="Members")
    monkeypatch.setenv("XNATCTL_USER", "mia")
    monkeypatch.setenv("XNATCTL_PASSWORD", "pw-mia")
    code, checks = _checks(cli, *seeded.pair_args())
    assert code == 0, checks
    assert checks["destination project STUDY"]["status"] == "pass"


def test_the_write_check_reads_lower_case_columns_as_postgresql_xnat_gives_them(seeded, cli):
    # Real XNAT answers `/data/projects?permissions=edit&dataType=...` from plain SQL
    # (DefaultGroupsAndPermissionsCache.getProjectsForDatatypeAction), so on PostgreSQL the
    # rows carry `id` and `secondary_id`. The destination is made to answer that way.
    listing = {
        "ResultSet": {
            "Result": [{"id": PROJECT, "secondary_id": PROJECT}],
            "totalRecords": "1",
        }
    }
    seeded.dst.faults.set_rules(
        [
            {
                "method": "GET",
                "path": "/data/projects",
                "status": 200,
                "body": json.dumps(listing),
                "headers": {"Content-Type": "application/json"},
            }
        ]
    )
    code, checks = _checks(cli, *seeded.pair_args())
    assert code == 0, checks
    assert checks["destination project STUDY"]["status"] == "pass"
    answered = [
        e
        for e in seeded.dst.request_log.entries()
        if e["path"] == "/data/projects" and "permissions=edit" in e["query"]
    ]
    assert answered and all(e["status"] == 200 for e in answered)
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 0, result.err
