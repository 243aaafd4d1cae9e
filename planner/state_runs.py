"""The state DB's runs: one row per transfer run (who, where, when, how it ended, its counts).

Reports read runs without writing: a run left ``running`` by a process gone from this host is
shown as interrupted (``reap_dead_runs`` is the one place that records it so), and a run that
ended without its counts (killed) gets them from the steps it recorded one by one.
"""

from __future__ import annotations

import json
import os
from typing import Any

from planner import address as A
from planner.address import Address
from planner.plan import Level
from planner.state_base import PairKey, StateConnection, StateError, _now, _user, pid_alive
from planner.statuses import RUN_STATUSES, RunStatus, StepStatus

__all__ = ["RunLog"]


class RunLog(StateConnection):
    """Runs: start, end, read back, and the progress of one cut short."""

    def start_run(self, pair: PairKey, *, config_hash: str, plan_file: str = "") -> int:
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            cur = c.execute(
                "INSERT INTO runs (pair_id, source_url, source_project, dest_url, dest_project,"
                " plan_file, config_hash, started_at, status, counts, host, pid, user)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?)",
                (
                    pair_id,
                    pair.source_url,
                    pair.source_project,
                    pair.dest_url,
                    pair.dest_project,
                    plan_file,
                    config_hash,
                    _now(),
                    RunStatus.RUNNING,
                    self._host,
                    os.getpid(),
                    _user(),
                ),
            )
            return int(cur.lastrowid)

    def end_run(
        self,
        run_id: int,
        status: str,
        counts: dict[str, Any],
        verification: dict[str, Any] | None = None,
    ) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        status = RunStatus(status)
        with self._tx() as c:
            cur = c.execute(
                "UPDATE runs SET status = ?, ended_at = ?, counts = ?, verification = ?"
                " WHERE id = ?",
                (
                    status,
                    _now(),
                    json.dumps(counts, sort_keys=True, default=str),
                    None
                    if verification is None
                    else json.dumps(verification, sort_keys=True, default=str),
                    run_id,
                ),
            )
            if cur.rowcount != 1:
                raise StateError(f"no run {run_id} in the state DB {self.path}")

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        return self._as_shown(_decode_run(rows[0])) if rows else None

    def _as_shown(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run as reports show it, computed without writing: one left 'running' by a
        process gone from this host is interrupted; a run that ended without its counts
        (killed) gets them from what it recorded step by step (``run_progress``)."""
        local = run.get("host") == self._host
        running = run.get("status") == RunStatus.RUNNING
        if running and local and not pid_alive(int(run.get("pid") or 0)):
            run["status"] = str(RunStatus.INTERRUPTED)
        if run.get("status") != RunStatus.RUNNING and not run.get("counts"):
            run["counts"] = self.run_progress(int(run["id"]))
        return run

    def run_progress(self, run_id: int) -> dict[str, Any]:
        """What a run did, from its recorded steps and completed subjects: subjects it
        completed are synced, subjects and experiments with a failed step failed, and those
        with steps left unfinished pending."""
        steps = self._rows("SELECT address, status FROM steps WHERE run_id = ?", (run_id,))
        done = {
            r["subject"]
            for r in self._rows("SELECT subject FROM subjects_done WHERE run_id = ?", (run_id,))
        }
        subjects: dict[str, set[str]] = {}
        experiments: dict[str, set[str]] = {}
        for row in steps:
            at = Address.parse(str(row["address"]))
            status = str(row["status"])
            subjects.setdefault(at.subject or A.PROJECT, set()).add(status)
            experiment = at.up_to(Level.EXPERIMENT)
            if experiment is not None:
                experiments.setdefault(str(experiment), set()).add(status)

        def tally(groups: dict[str, set[str]], complete: set[str] | None) -> dict[str, int]:
            counts = {"synced": 0, "failed": 0, "skipped": 0, "pending": 0}
            for key, statuses in groups.items():
                if key == A.PROJECT:
                    continue
                if StepStatus.FAILED in statuses:
                    counts["failed"] += 1
                elif (key in complete) if complete is not None else statuses == {StepStatus.DONE}:
                    counts["synced"] += 1
                else:
                    counts["pending"] += 1
            return counts

        return {
            "subjects": tally(subjects, done),
            "experiments": tally(experiments, None),
            "recovered": True,
        }

    def runs(
        self,
        source_project: str | None = None,
        dest_project: str | None = None,
        limit: int = 50,
        *,
        project: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first. ``project`` matches either side; the others match one side.

        A run still marked running whose process is gone from this host is reported as
        interrupted (without writing: ``_as_shown``), so status never shows a dead transfer
        as in progress.
        """
        where, params = [], []
        if source_project is not None:
            where.append("source_project = ?")
            params.append(source_project)
        if dest_project is not None:
            where.append("dest_project = ?")
            params.append(dest_project)
        if project is not None:
            where.append("(source_project = ? OR dest_project = ?)")
            params += [project, project]
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        return [self._as_shown(_decode_run(r)) for r in self._rows(sql, tuple(params))]

    def reap_dead_runs(self) -> int:
        """Mark runs left 'running' by a process that no longer exists here as interrupted."""
        rows = self._rows(
            "SELECT id, pid FROM runs WHERE status = ? AND host = ?",
            (RunStatus.RUNNING, self._host),
        )
        dead = [r["id"] for r in rows if not pid_alive(r["pid"])]
        if dead:
            with self._tx() as c:
                c.executemany(
                    "UPDATE runs SET status = ?, ended_at = COALESCE(ended_at, ?)"
                    " WHERE id = ? AND status = ?",
                    [(RunStatus.INTERRUPTED, _now(), i, RunStatus.RUNNING) for i in dead],
                )
        return len(dead)


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    run = dict(row)
    run["counts"] = json.loads(run.get("counts") or "{}")
    v = run.get("verification")
    run["verification"] = json.loads(v) if v else None
    run.pop("pair_id", None)
    return run
