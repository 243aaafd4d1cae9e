"""Plan files: round trip, atomic and byte-stable writes, one error for every unusable file."""

from __future__ import annotations

import json

import pytest

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.plan import PLAN_FORMAT_VERSION
from planner.planfile import (
    UnusablePlan,
    load_plan,
    plan_from_dict,
    plan_to_dict,
    save_plan,
)

PASSWORD = "s3cret-Pa55word!"


@pytest.fixture
def a_plan(b):
    src = b.inv(
        b.subj(
            "S1",
            b.exp("E1", "S1", (b.scan("1"), b.scan("2", extra=(b.res("NIFTI", 2),)))),
            resources=(b.res("CONSENT", 1),),
            fields={"gender": "male", "yob": "1980"},
        ),
        b.subj("S2", b.exp("E2", "S2", (b.scan("1", n=4),))),
        resources=(b.res("PROTOCOL", 1),),
    )
    dst = b.inv(
        b.subj("S2", b.exp("E2", "S2", (b.scan("1", n=3),)), b.exp("E9", "S2")),
        url="http://dst",
        project="Q",
    )
    return make_plan(
        src,
        dst,
        TransferConfig(source_project="P", dest_project="Q"),
        completed_subjects={},
        state_serial=7,
        source_profile="prod",
        dest_profile="staging",
        created_at="2026-01-01T00:00:00Z",
        tool_version="0.1.0",
    )


def test_round_trip_is_exact(a_plan, tmp_path):
    assert plan_from_dict(plan_to_dict(a_plan)) == a_plan
    path = save_plan(a_plan, tmp_path / "plan.json")
    assert load_plan(path) == a_plan
    assert plan_to_dict(load_plan(path)) == plan_to_dict(a_plan)


def test_layout(a_plan, tmp_path):
    data = json.loads(save_plan(a_plan, tmp_path / "p.json").read_text())
    assert list(data) == [
        "format_version",
        "tool_version",
        "created_at",
        "source",
        "dest",
        "config",
        "config_hash",
        "state_serial",
        "summary",
        "changes",
        "steps",
    ]
    assert data["format_version"] == PLAN_FORMAT_VERSION == 1
    assert data["source"] == {
        "url": "http://src",
        "project": "P",
        "profile": "prod",
        "server_version": "1.8.11",
        "inventory_fingerprint": a_plan.source.inventory_fingerprint,
    }
    assert data["steps"][0]["kind"] in {"create_subject", "upload_resource"}
    assert data["state_serial"] == 7


def test_saved_files_are_byte_identical(a_plan, b, tmp_path):
    one = save_plan(a_plan, tmp_path / "one.json").read_bytes()
    two = save_plan(a_plan, tmp_path / "two.json").read_bytes()
    assert one == two


def test_save_is_atomic_and_leaves_no_temp_files(a_plan, tmp_path):
    target = tmp_path / "sub" / "plan.json"
    save_plan(a_plan, target)
    save_plan(a_plan, target)  # replaces in place
    assert sorted(p.name for p in target.parent.iterdir()) == ["plan.json"]


def test_failed_write_keeps_the_old_file(a_plan, tmp_path, monkeypatch):
    target = save_plan(a_plan, tmp_path / "plan.json")
    before = target.read_bytes()
    import planner.safewrite as sw  # the plan file is written by planner.safewrite

    def boom(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(sw.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        save_plan(a_plan, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]


def test_no_credentials_in_a_saved_plan(a_plan, tmp_path):
    text = save_plan(a_plan, tmp_path / "plan.json").read_text()
    assert PASSWORD not in text
    assert "password" not in text.lower()


def test_missing_file(tmp_path):
    with pytest.raises(UnusablePlan, match="does not exist") as info:
        load_plan(tmp_path / "nope.json")
    assert info.value.path == tmp_path / "nope.json"


def test_bad_json(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(UnusablePlan, match="not valid JSON"):
        load_plan(path)


def test_truncated_file(a_plan, tmp_path):
    path = save_plan(a_plan, tmp_path / "plan.json")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UnusablePlan, match="truncated"):
        load_plan(path)


@pytest.mark.parametrize(
    ("version", "needle"),
    [(2, "newer than this xnatctl"), (0, "not supported"), ("1", "not a whole number")],
)
def test_wrong_format_version(a_plan, tmp_path, version, needle):
    data = plan_to_dict(a_plan)
    data["format_version"] = version
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UnusablePlan, match=needle):
        load_plan(path)


def test_missing_fields(a_plan, tmp_path):
    data = plan_to_dict(a_plan)
    del data["steps"]
    del data["dest"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UnusablePlan, match="missing: dest, steps"):
        load_plan(path)


def test_malformed_step(a_plan, tmp_path):
    data = plan_to_dict(a_plan)
    del data["steps"][0]["kind"]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UnusablePlan, match="the field 'kind' is missing"):
        load_plan(path)


def test_not_an_object(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[1, 2]")
    with pytest.raises(UnusablePlan, match="not a JSON object"):
        load_plan(path)


def test_a_summary_that_disagrees_with_the_steps_is_refused(a_plan, tmp_path):
    data = plan_to_dict(a_plan)
    assert data["steps"], "the fixture plan needs steps"
    data["summary"] = {}
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UnusablePlan, match="summary does not match its steps"):
        load_plan(path)
