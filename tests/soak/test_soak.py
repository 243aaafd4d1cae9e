"""The randomized fault soak (see docs/soak.md).

``test_soak_short`` runs in ``make test``: a few seeded rounds. ``test_soak`` is the long one
(``make soak``, marker ``soak``): ``SOAK_ROUNDS`` rounds (default 50) from ``SOAK_SEED``
(default 1), figures on stdout and in ``.bench/soak.json``. Both fail on anything lost,
differing, duplicated or left on the destination, a clean rerun that does not complete,
drift after it, or an inconsistent state DB; the report names each round's seed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .engine import Report, Settings, Soak, describe, write_report

ROOT = Path(__file__).resolve().parents[2]


def _say(line: str) -> None:
    print(line, flush=True)


def _assert_clean(report: Report) -> None:
    failed = [r for r in report.rounds if not r.ok]
    assert not failed, "\n".join(describe(r) for r in failed)
    figures = report.figures()
    assert figures["rounds_run"] == report.rounds_planned
    assert figures["files_lost"] == 0 and figures["duplicated"] == 0


def test_soak_short(tmp_path: Path) -> None:
    """Three seeded rounds, each with faults, a SIGKILL and a clean rerun; under a minute."""
    lines: list[str] = []
    report = Soak(Settings(rounds=3, seed=7), tmp_path, echo=lines.append).run()
    write_report(report, tmp_path / "soak.json", echo=lines.append)
    print("\n".join(lines))
    assert (tmp_path / "soak.json").exists()
    # Every round changed the source and ran under at least one fault.
    assert all(r.change and r.faults for r in report.rounds)
    _assert_clean(report)


@pytest.mark.soak
def test_soak(tmp_path: Path) -> None:
    rounds = int(os.environ.get("SOAK_ROUNDS", "50"))
    seed = int(os.environ.get("SOAK_SEED", "1"))
    report = Soak(Settings(rounds=rounds, seed=seed), tmp_path, echo=_say).run()
    write_report(report, ROOT / ".bench" / "soak.json", echo=_say)
    _assert_clean(report)
