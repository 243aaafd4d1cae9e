"""Typed change reasons: the diff records one next to the display text, and the plan file
saves the value (a change record's ``why``), so nothing reads the text back."""

from __future__ import annotations

from dataclasses import replace

from planner.compare import ChangeCollector, subject_fingerprint
from planner.config import TransferConfig
from planner.diff import make_plan, skipped_as_completed, skipped_with_new_data
from planner.plan import (
    SERIES_UID_DIFFERS_TEXT,
    ChangeReason,
    ChangeStatus,
    Level,
)
from planner.planfile import load_plan, plan_from_dict, plan_to_dict, save_plan

R, S, L = ChangeReason, ChangeStatus, Level


def _plan(src, dst, completed, config=None):
    return make_plan(
        src,
        dst,
        config or TransferConfig(),
        completed_subjects=completed,
        state_serial=3,
        created_at="2026-01-01T00:00:00Z",
        tool_version="0.1.0",
    )


def _completed_world(b):
    s1 = b.subj("S1", b.exp("E1", "S1", (b.scan("1"),)))
    src = b.inv(s1, b.subj("S2", b.exp("E2", "S2", (b.scan("1"),))))
    dst = b.inv(s1, url="http://dst", project="Q")
    return src, dst


def test_diff_records_completed_and_the_plan_file_saves_it(b, tmp_path):
    src, dst = _completed_world(b)
    p = _plan(src, dst, {"S1": subject_fingerprint(src.subjects["S1"])})
    skip = next(c for c in p.changes if c.address == "S1")
    assert skip.why == R.COMPLETED
    assert (skipped_as_completed(p), skipped_with_new_data(p)) == (1, 0)
    assert plan_from_dict(plan_to_dict(p)) == p
    assert load_plan(save_plan(p, tmp_path / "plan.json")) == p
    saved = next(c for c in plan_to_dict(p)["changes"] if c["address"] == "S1")
    assert saved["why"] == "completed"  # the value is saved, not derived from the text


def test_diff_records_stale_completion_and_the_plan_file_saves_it(b):
    src, dst = _completed_world(b)
    p = _plan(src, dst, {"S1": "an older fingerprint"})
    skip = next(c for c in p.changes if c.address == "S1")
    assert skip.why == R.COMPLETED_STALE
    assert (skipped_as_completed(p), skipped_with_new_data(p)) == (1, 1)
    assert plan_from_dict(plan_to_dict(p)) == p


def test_counts_read_the_typed_reason_not_the_text(b):
    src, dst = _completed_world(b)
    p = _plan(src, dst, {"S1": "an older fingerprint"})
    reworded = replace(
        p,
        changes=tuple(replace(c, reason="done before (new data)") for c in p.changes),
    )
    assert (skipped_as_completed(reworded), skipped_with_new_data(reworded)) == (1, 1)


def test_a_scan_pair_of_two_series_is_a_typed_conflict(b):
    from planner.address import Address

    collector = ChangeCollector(digests=True)
    at = Address.parse("S1/E1/scans/1")
    collector.match(at, b.scan("1", "U"), b.scan("1", "V"))
    (change,) = collector.changes
    assert change.status == S.CONFLICT and change.why == R.SERIES_UID_DIFFERS
    assert change.differences == (SERIES_UID_DIFFERS_TEXT,)
    collector.match(at, b.scan("1", "U", n=2), b.scan("1", "U", n=1))
    assert collector.changes[-1].status == S.DIFFERS
    assert collector.changes[-1].why == R.NONE
