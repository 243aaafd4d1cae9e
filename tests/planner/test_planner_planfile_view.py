"""The plan for people: a tree with action marks, reasons, sizes and the summary line."""

from __future__ import annotations

import io
from dataclasses import replace

from rich.console import Console

from planner.config import TransferConfig
from planner.diff import make_plan
from planner.planfile import plan_to_dict
from xnatctl.views.plan import parent_address, plan_to_json, render_plan


def _render(plan, **kw) -> str:
    out = io.StringIO()
    render_plan(plan, Console(file=out, width=120, no_color=True, highlight=False), **kw)
    return out.getvalue()


def _plan(b, src, dst, completed=None):
    return make_plan(
        src,
        dst,
        TransferConfig(),
        completed_subjects=completed or {},
        state_serial=0,
        created_at="2026-01-01T00:00:00Z",
        tool_version="0.1.0",
    )


def _world(b):
    src = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("1"), b.scan("2", extra=(b.res("NIFTI", 2),))))),
        b.subj("S2", b.exp("E2", "S2", (b.scan("1", n=4),)), b.exp("E3", "S2", (b.scan("1"),))),
        b.subj("S3", b.exp("E5", "S3", (b.scan("1", "NEW"),))),
    )
    dst = b.inv(
        b.subj("S2", b.exp("E2", "S2", (b.scan("1", n=3),)), b.exp("E3", "S2", (b.scan("1"),))),
        b.subj("S3", b.exp("E5", "S3", (b.scan("1", "OLD"),))),
        b.subj("S4"),
        url="http://dst",
        project="Q",
    )
    return src, dst


def test_tree_marks_reasons_and_summary(b):
    src, dst = _world(b)
    text = _render(_plan(b, src, dst))
    assert "P (http://src) → Q (http://dst)" in text
    assert "+ subject S1" in text
    assert "+ experiment E1" in text
    assert "+ scan 2 (3 files, 300 B)" in text
    assert "+ resource NIFTI (2 files, 200 B)" in text
    assert "~ experiment E2" in text
    assert "~ scan 1" in text and "DICOM: file count 4 != 3" in text
    assert "! scan 1" in text and "holds another series" in text
    assert "- subject S4" in text and "only on the destination" in text
    assert "= experiment E3" not in text  # in sync: hidden by default
    assert text.rstrip().endswith(
        "1 experiment in sync; 2 differ; 1 only on the destination; 1 conflict."
    )


def test_show_in_sync(b):
    src, dst = _world(b)
    assert "= experiment E3" in _render(_plan(b, src, dst), show_in_sync=True)


def test_skipped_subject_is_shown_with_its_reason(b):
    src, dst = _world(b)
    # A subject recorded complete is skipped only while the destination holds it whole
    # (planner.diff._completed_skips): here it does.
    dst = replace(dst, subjects={**dst.subjects, "S1": src.subjects["S1"]})
    text = _render(_plan(b, src, dst, completed={"S1": ""}))
    assert "· subject S1" in text and "completed by an earlier run" in text


def test_no_changes_prints_only_the_summary(b):
    src, _ = _world(b)
    text = _render(_plan(b, src, src))
    assert text.strip() == "No changes: destination matches the source."


def test_plan_to_json_is_the_file_layout(b):
    src, dst = _world(b)
    plan = _plan(b, src, dst)
    assert plan_to_json(plan) == plan_to_dict(plan)


def test_parent_address():
    assert parent_address("S1") is None
    assert parent_address("@project/resources/X") == "@project"
    assert parent_address("S1/resources/X") == "S1"
    assert parent_address("S1/E1") == "S1"
    assert parent_address("S1/E1/scans/3") == "S1/E1"
    assert parent_address("S1/E1/assessors/QC") == "S1/E1"
    assert parent_address("S1/E1/scans/3/NIFTI") == "S1/E1/scans/3"


def test_tree_printed_a_subject_at_a_time_reads_as_one_tree(b, tmp_path):
    """The streamed tree (one small tree per subject) prints what the one tree of the whole
    plan prints, wrapped lines and guides included, for a plan in memory and one loaded."""
    from planner.planfile import load_plan, save_plan
    from xnatctl.views.plan import build_tree
    from xnatctl.views.summary import summary_line

    src, dst = _world(b)
    plan = _plan(b, src, dst)
    loaded = load_plan(save_plan(plan, tmp_path / "plan.jsonl"))
    for width in (120, 36):
        for in_sync in (False, True):
            out = io.StringIO()
            console = Console(file=out, width=width, no_color=True, highlight=False)
            console.print(build_tree(plan, show_in_sync=in_sync))
            console.print(summary_line(plan), highlight=False, soft_wrap=True)
            for p in (plan, loaded):
                got = io.StringIO()
                render_plan(
                    p,
                    Console(file=got, width=width, no_color=True, highlight=False),
                    show_in_sync=in_sync,
                )
                assert got.getvalue() == out.getvalue()


def test_json_written_a_record_at_a_time_is_the_one_document(b, tmp_path):
    import json

    from planner.planfile import load_plan, save_plan
    from xnatctl.views.plan import write_plan_json

    src, dst = _world(b)
    plan = _plan(b, src, dst)
    for p in (plan, load_plan(save_plan(plan, tmp_path / "plan.jsonl"))):
        out = io.StringIO()
        write_plan_json(p, out)
        assert out.getvalue() == json.dumps(plan_to_dict(plan), indent=2) + "\n"
    empty = replace(plan, steps=(), changes=())
    out = io.StringIO()
    write_plan_json(empty, out)
    assert out.getvalue() == json.dumps(plan_to_dict(empty), indent=2) + "\n"
