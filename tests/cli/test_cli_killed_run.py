"""A transfer killed with SIGKILL cannot record its own end; the next transfer must, even when
it finds nothing left to do (the killed run had finished the work before it died)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from planner.state import StateDB


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_transfer_with_nothing_to_do_records_a_killed_run_as_interrupted(
    transferred, cli
) -> None:
    db_path = Path(os.environ["XNATCTL_CONFIG_DIR"]) / "transfer.db"
    with StateDB(db_path) as state:
        (done,) = state.runs(limit=1)
    db = sqlite3.connect(db_path)
    with db:  # the run as a SIGKILL leaves it: still running, its process gone
        db.execute(
            "UPDATE runs SET status = 'running', ended_at = NULL, pid = ? WHERE id = ?",
            (_dead_pid(), done["id"]),
        )
    result = cli("project", "transfer", *transferred.pair_args(), "--yes")
    assert result.code == 0, result.err
    status, ended = db.execute(
        "SELECT status, ended_at FROM runs WHERE id = ?", (done["id"],)
    ).fetchone()
    db.close()
    assert status == "interrupted" and ended
