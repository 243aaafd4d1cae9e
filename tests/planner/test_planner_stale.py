"""A saved plan is refused when the servers moved on in what it touches, and only then."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from planner.compare import files_digest
from planner.config import TransferConfig
from planner.diff import make_plan
from planner.inventory import Inventory
from planner.plan import Plan
from planner.staleness import StalePlan, dest_changes, find_staleness, source_changes


def plan_for(src: Inventory, dst: Inventory) -> Plan:
    return make_plan(
        src,
        dst,
        TransferConfig(source_project="P", dest_project="P"),
        completed_subjects={},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="test",
    )


@pytest.fixture
def world(b: SimpleNamespace) -> SimpleNamespace:
    src = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("1"), b.scan("2")))),
        b.subj("S2", b.exp("E2", "S2", (b.scan("1"),))),
    )
    dst = b.inv(url="http://dst")
    return SimpleNamespace(src=src, dst=dst, plan=plan_for(src, dst))


def with_scan(b: SimpleNamespace, inv: Inventory, subject: str, exp: str, scan) -> Inventory:
    s = inv.subjects[subject]
    e = s.experiments[exp]
    e2 = replace(e, scans={**e.scans, scan.id: scan})
    s2 = replace(s, experiments={**s.experiments, exp: e2})
    return replace(inv, subjects={**inv.subjects, subject: s2})


def test_unchanged_servers_leave_the_plan_current(world: SimpleNamespace) -> None:
    assert source_changes(world.plan, world.src, files_digest) == []
    assert dest_changes(world.plan, world.dst, set()) == []


def test_a_scan_with_a_new_file_on_the_source_is_stale(
    b: SimpleNamespace, world: SimpleNamespace
) -> None:
    src = with_scan(b, world.src, "S1", "E1", b.scan("2", n=4))
    assert source_changes(world.plan, src, files_digest) == [
        "scan S1/E1/scans/2 now has 4 files (planned 3)"
    ]


def test_a_file_replaced_on_the_source_is_stale(b: SimpleNamespace, world: SimpleNamespace) -> None:
    changed = replace(b.scan("2"), resources={"DICOM": b.res("DICOM", 3, salt="new")})
    src = with_scan(b, world.src, "S1", "E1", changed)
    assert source_changes(world.plan, src, files_digest) == [
        "scan S1/E1/scans/2: files changed on the source (names, sizes or MD5)"
    ]


def test_a_deleted_source_experiment_is_stale(b: SimpleNamespace, world: SimpleNamespace) -> None:
    s2 = replace(world.src.subjects["S2"], experiments={})
    src = replace(world.src, subjects={**world.src.subjects, "S2": s2})
    changed = source_changes(world.plan, src, files_digest)
    assert "experiment S2/E2 is gone from the source" in changed
    assert "scan S2/E2/scans/1 is gone from the source" in changed


def test_new_source_subjects_do_not_make_the_plan_stale(
    b: SimpleNamespace, world: SimpleNamespace
) -> None:
    src = replace(world.src, subjects={**world.src.subjects, "S3": b.subj("S3")})
    assert source_changes(world.plan, src, files_digest) == []


def test_what_someone_else_created_on_the_destination_is_stale(
    b: SimpleNamespace, world: SimpleNamespace
) -> None:
    dst = b.inv(b.subj("S2", b.exp("E2", "S2", (b.scan("1"),))), url="http://dst")
    changed = dest_changes(world.plan, dst, set())
    assert "scan S2/E2/scans/1 now exists on the destination" in changed
    assert "experiment S2/E2 now exists on the destination" in changed


def test_what_this_plan_itself_started_is_not_stale(
    b: SimpleNamespace, world: SimpleNamespace
) -> None:
    dst = b.inv(
        b.subj(
            "S2",
            b.exp(
                "E2",
                "S2",
                (
                    b.scan(
                        "1",
                    ),
                ),
            ),
        ),
        url="http://dst",
    )
    settled = {s.id for s in world.plan.steps if s.address.startswith("S2")}
    assert dest_changes(world.plan, dst, settled) == []


def test_the_stale_error_says_what_changed_and_what_to_do() -> None:
    err = StalePlan([f"scan S/E/scans/{i} is gone from the source" for i in range(12)])
    text = str(err)
    assert "scan S/E/scans/0 is gone" in text and "and 2 more" in text
    assert "make a new plan" in text
    assert len(err.what_changed) == 12


def test_find_staleness_reads_both_servers(
    b: SimpleNamespace, world: SimpleNamespace, fake_xnat
) -> None:
    src, dst = fake_xnat(world.src), fake_xnat(world.dst)
    report = find_staleness(world.plan, src, dst, set())
    assert report.what_changed == []
    assert report.source_inventory is not None
    assert set(report.source_inventory.subjects) == {"S1", "S2"}

    grown = with_scan(b, world.src, "S1", "E1", b.scan("1", n=5))
    report = find_staleness(world.plan, fake_xnat(grown), dst, set())
    assert report.what_changed == ["scan S1/E1/scans/1 now has 5 files (planned 3)"]
