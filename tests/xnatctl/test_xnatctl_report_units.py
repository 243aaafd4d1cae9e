"""The apply summary tells failed steps from steps that never ran by the run's typed record
(``steps_not_run``), not by the wording of their errors."""

from __future__ import annotations

import io

from rich.console import Console

from planner.apply import ApplyResult
from xnatctl.views.report import render_apply_summary


def _render(result: ApplyResult) -> str:
    out = io.StringIO()
    render_apply_summary(result, Console(file=out, width=200, no_color=True))
    return out.getvalue()


def test_steps_that_never_ran_are_counted_not_listed() -> None:
    result = ApplyResult(run_id="1", status="failed")
    result.failed_steps = [
        ("import_scan:S1/E1/scans/1", "POST /data/services/import answered HTTP 400"),
        ("upload_resource:S1/E1/scans/1/NIFTI", "never started"),
        ("upload_resource:S1/E1/scans/1/SNAP", "not run: something"),
    ]
    result.steps_not_run = {
        "upload_resource:S1/E1/scans/1/NIFTI",
        "upload_resource:S1/E1/scans/1/SNAP",
    }
    text = _render(result)
    assert "1 step failed (2 more not run because a step they depend on failed):" in text
    assert "import_scan:S1/E1/scans/1: POST" in text
    assert "NIFTI" not in text and "SNAP" not in text


def test_an_error_worded_like_not_run_is_still_listed() -> None:
    result = ApplyResult(run_id="1", status="failed")
    result.failed_steps = [("import_scan:S1/E1/scans/1", "not run: the server said so")]
    text = _render(result)
    assert "1 step failed:" in text and "not run because" not in text
    assert "import_scan:S1/E1/scans/1: not run: the server said so" in text
