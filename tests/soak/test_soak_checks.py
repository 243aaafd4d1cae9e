"""The soak's checks must be able to fail: each kind of damage is caught and named."""

from __future__ import annotations

from pathlib import Path

from planner.state import PairKey, StateDB

from .checks import Side, check_state_db, compare

PAIR = PairKey("http://src", "P", "http://dst", "P")


def _side() -> Side:
    side = Side()
    side.add(("file", "project", "PROTOCOL", "README.txt"), "size=37 md5=aa")
    side.add(("dicom", "S1_MR1", "1", "a.dcm"), "1.2.3.1")
    side.add(("dicom", "S1_MR1", "1", "b.dcm"), "1.2.3.2")
    side.scans[("S1_MR1", "1")] = "1.2.3"
    return side


def test_equal_sides_pass() -> None:
    found = compare(_side(), _side())
    assert found.ok and found.files_checked == 3


def test_lost_differing_duplicated_and_extra_are_named() -> None:
    dst = _side()
    del dst.files[("dicom", "S1_MR1", "1", "b.dcm")]  # lost
    dst.files[("file", "project", "PROTOCOL", "README.txt")] = ["size=37 md5=bb"]  # differing
    dst.add(("dicom", "S1_MR1", "1", "a.dcm"), "1.2.3.1")  # listed twice
    dst.add(("dicom", "S1_MR1", "2", "a.dcm"), "1.2.3.1")  # extra: the series again...
    dst.scans[("S1_MR1", "2")] = "1.2.3"  # ...under another scan ID
    found = compare(_side(), dst)
    assert found.lost == ["dicom/S1_MR1/1/b.dcm"]
    assert len(found.differing) == 1 and "README.txt" in found.differing[0]
    assert "dicom/S1_MR1/1/a.dcm x2" in found.duplicated
    assert any("under IDs ['1', '2']" in d for d in found.duplicated)
    assert found.extra == ["dicom/S1_MR1/2/a.dcm"]


def test_a_run_left_running_and_a_miscounted_run_are_problems(tmp_path: Path) -> None:
    path = tmp_path / "transfer.db"
    with StateDB(path) as state:
        counted = state.start_run(PAIR, config_hash="x")
        state.record_step(counted, PAIR, "s1", "import_scan", "S1/E1/scans/1", "done")
        state.end_run(counted, "completed", {"steps_run": 2, "failed_steps": []})
        state.start_run(PAIR, config_hash="x")  # never ended: its process is this one
        state.acquire_lock("http://dst", "P", operation="apply")
    problems = check_state_db(path).problems
    assert any("counts steps_run=2 but has 1" in p for p in problems), problems
    assert any("is left running" in p for p in problems), problems
    assert any("lock left behind by a live process" in p for p in problems), problems


def test_a_consistent_state_db_passes(tmp_path: Path) -> None:
    path = tmp_path / "transfer.db"
    with StateDB(path) as state:
        run = state.start_run(PAIR, config_hash="x")
        state.record_step(run, PAIR, "s1", "import_scan", "S1/E1/scans/1", "done")
        state.end_run(run, "completed", {"steps_run": 1, "failed_steps": []})
    check = check_state_db(path)
    assert check.runs == 1 and check.problems == []
