"""The state DB's steps: every step of every run as it started and ended (``steps``, the
history) and the latest status of each step per pair (``step_status``), so "is this step
already done for this pair with these facts" is one primary-key lookup.
"""

from __future__ import annotations

from typing import Any

from planner.address import Address
from planner.state_base import PairKey, StateConnection, _now
from planner.statuses import STEP_STATUSES, StepStatus

__all__ = ["StepLog"]

_CHUNK = 500  # step IDs per query: well under SQLite's limit on parameters


class StepLog(StateConnection):
    """Step records: a step's new status, and which steps are done or were started."""

    def record_step(
        self,
        run_id: int,
        pair: PairKey,
        step_id: str,
        kind: str,
        address: str,
        status: str,
        *,
        attempts: int = 0,
        bytes: int = 0,
        error: str = "",
        facts_digest: str = "",
    ) -> None:
        """Record a step's new status, in the run's history and as the pair's latest."""
        if status not in STEP_STATUSES:
            raise ValueError(f"step status {status!r} is not one of {', '.join(STEP_STATUSES)}")
        status = StepStatus(status)
        now = _now()
        subject = Address.parse(address).subject or ""
        started = now if status == StepStatus.RUNNING else None
        ended = now if status.finished else None
        row = (
            step_id,
            kind,
            address,
            subject,
            status,
            attempts,
            bytes,
            error,
            started,
            ended,
            facts_digest,
        )
        with self._tx() as c:
            pair_id = self._pair_id(c, pair)
            previous = c.execute(
                "SELECT status, facts_digest FROM step_status WHERE pair_id = ? AND step_id = ?",
                (pair_id, step_id),
            ).fetchone()
            c.execute(
                "INSERT INTO steps (run_id, step_id, kind, address, subject, status, attempts,"
                " bytes, error, started_at, ended_at, facts_digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, step_id) DO UPDATE SET kind = excluded.kind,"
                " address = excluded.address, subject = excluded.subject,"
                " status = excluded.status, attempts = excluded.attempts,"
                " bytes = excluded.bytes, error = excluded.error,"
                " started_at = COALESCE(excluded.started_at, steps.started_at),"
                " ended_at = excluded.ended_at, facts_digest = excluded.facts_digest",
                (run_id, *row),
            )
            c.execute(
                "INSERT INTO step_status (pair_id, run_id, step_id, kind, address, subject,"
                " status, attempts, bytes, error, started_at, ended_at, facts_digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (pair_id, step_id) DO UPDATE SET run_id = excluded.run_id,"
                " kind = excluded.kind, address = excluded.address,"
                " subject = excluded.subject, status = excluded.status,"
                " attempts = excluded.attempts, bytes = excluded.bytes,"
                " error = excluded.error,"
                " started_at = CASE WHEN excluded.run_id = step_status.run_id"
                "   THEN COALESCE(excluded.started_at, step_status.started_at)"
                "   ELSE excluded.started_at END,"
                " ended_at = excluded.ended_at, facts_digest = excluded.facts_digest",
                (pair_id, run_id, *row),
            )
            was_done = previous is not None and previous[0] == StepStatus.DONE
            done = status == StepStatus.DONE
            if done != was_done or (done and previous is not None and previous[1] != facts_digest):
                self._bump(c, pair_id)

    def done_steps(self, pair: PairKey) -> dict[str, str]:
        """step_id -> facts_digest of the steps whose latest status for this pair is done."""
        return self._latest(pair, (StepStatus.DONE,))

    def started_steps(self, pair: PairKey) -> dict[str, str]:
        """Steps left 'running' (a run stopped inside them): partial data may be on the dest."""
        return self._latest(pair, (StepStatus.RUNNING,))

    def step_statuses(self, pair: PairKey) -> dict[str, str]:
        """step_id -> latest status, for every step ever recorded for this pair."""
        rows = self._pair_rows(pair, "SELECT step_id, status FROM step_status WHERE pair_id = ?")
        return {r["step_id"]: r["status"] for r in rows}

    def step_records(self, pair: PairKey, step_ids: list[str]) -> dict[str, tuple[str, str]]:
        """step_id -> (latest status, facts_digest) of those of ``step_ids`` ever recorded for
        this pair: apply looks up one experiment's steps at a time, never the whole pair's."""
        out: dict[str, tuple[str, str]] = {}
        for at in range(0, len(step_ids), _CHUNK):
            chunk = step_ids[at : at + _CHUNK]
            marks = ", ".join("?" for _ in chunk)
            rows = self._pair_rows(
                pair,
                "SELECT step_id, status, facts_digest FROM step_status"
                f" WHERE pair_id = ? AND step_id IN ({marks})",
                tuple(chunk),
            )
            out.update((r["step_id"], (r["status"], r["facts_digest"])) for r in rows)
        return out

    def has_step(self, pair: PairKey, step_id: str) -> bool:
        """Whether any run recorded this step for this pair (one primary-key lookup)."""
        rows = self._pair_rows(
            pair, "SELECT 1 FROM step_status WHERE pair_id = ? AND step_id = ?", (step_id,)
        )
        return bool(rows)

    def _latest(self, pair: PairKey, statuses: tuple[str, ...]) -> dict[str, str]:
        marks = ", ".join("?" for _ in statuses)
        rows = self._pair_rows(
            pair,
            "SELECT step_id, facts_digest FROM step_status"
            f" WHERE pair_id = ? AND status IN ({marks})",
            statuses,
        )
        return {r["step_id"]: r["facts_digest"] for r in rows}

    def run_steps(self, run_id: int, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM steps WHERE run_id = ?"
        params: tuple = (run_id,)
        if status is not None:
            sql += " AND status = ?"
            params = (run_id, status)
        return self._rows(sql + " ORDER BY rowid", params)

    def failed_steps(self, run_id: int) -> list[dict[str, Any]]:
        return self.run_steps(run_id, StepStatus.FAILED)
