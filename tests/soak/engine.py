"""The randomized fault soak: rounds of faults and a SIGKILL during apply, then a clean rerun
that must bring the destination in step, with nothing lost and nothing twice.

Each round, from its own seed: change the source a little; install a random mix of faults on
both servers; run ``xnatctl project transfer --yes`` (or ``project apply PLAN --yes`` on a
plan saved just before) as a real subprocess and SIGKILL it after a random delay; remove the
faults; rerun the transfer, which must exit 0; then ``project drift`` must exit 0, the
destination must hold every source file equal by the project's rule and nothing twice, and
the state DB must be consistent. Figures go to stdout and to a JSON file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from xnatsim.seed import SeedSpec
from xnatsim.server import SimServer, start_server

from . import checks, faults
from .source import AUTH, SourceProject

PROJECT = "SOAK"
TAIL = 2000  # characters of a failed command's output kept in the report


@dataclass(frozen=True)
class Settings:
    rounds: int
    seed: int
    subjects: int = 3
    workers: int = 4
    apply_share: float = 0.3  # rounds that kill `project apply PLAN` rather than `transfer`
    aimed_share: float = 0.5  # rounds whose kill waits for apply to start, then hits it


@dataclass
class Round:
    index: int
    seed: str
    change: str = ""
    faults: list[str] = field(default_factory=list)
    mode: str = "transfer"
    kill_after: float = 0.0
    killed: bool = False
    killed_in_apply: bool = False
    aimed: bool = False  # the kill waited for apply to start its run
    faulty_exit: int | None = None
    sessions_expired: int = 0
    rerun_exit: int | None = None
    rerun_seconds: float = 0.0
    rerun_steps: int | None = None
    drift_exit: int | None = None
    files_checked: int = 0
    scans_checked: int = 0
    lost: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    prearchive_leftovers: int = 0
    state_problems: list[str] = field(default_factory=list)
    dead_locks: int = 0
    failures: list[str] = field(default_factory=list)
    request_log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.failures
            or self.lost
            or self.differing
            or self.duplicated
            or self.extra
            or self.state_problems
        )


@dataclass
class Report:
    seed: int
    rounds_planned: int
    rounds: list[Round] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        rs = self.rounds
        return {
            "seed": self.seed,
            "rounds_planned": self.rounds_planned,
            "rounds_run": len(rs),
            "rounds_ok": sum(r.ok for r in rs),
            "rounds_failed": [r.index for r in rs if not r.ok],
            "kills_during_run": sum(r.killed for r in rs),
            "kills_in_apply": sum(r.killed_in_apply for r in rs),
            "kills_aimed_at_apply": sum(r.aimed for r in rs),
            "apply_rounds": sum(r.mode == "apply" for r in rs),
            "sessions_expired": sum(r.sessions_expired for r in rs),
            "files_lost": sum(len(r.lost) for r in rs),
            "files_differing": sum(len(r.differing) for r in rs),
            "duplicated": sum(len(r.duplicated) for r in rs),
            "extra_on_destination": sum(len(r.extra) for r in rs),
            "clean_reruns_failed": sum(r.rerun_exit != 0 for r in rs),
            "drift_not_in_sync": sum(r.drift_exit != 0 for r in rs),
            "state_db_problems": sum(len(r.state_problems) for r in rs),
            "dead_process_locks_seen": sum(r.dead_locks for r in rs),
            "prearchive_leftovers_max": max((r.prearchive_leftovers for r in rs), default=0),
            "files_checked_last_round": rs[-1].files_checked if rs else 0,
            "scans_checked_last_round": rs[-1].scans_checked if rs else 0,
            "rerun_seconds_median": round(statistics.median(r.rerun_seconds for r in rs), 2)
            if rs
            else 0.0,
            "seconds": round(self.seconds, 1),
        }

    def to_json(self) -> dict[str, Any]:
        return {"figures": self.figures(), "rounds": [asdict(r) for r in self.rounds]}


class Soak:
    def __init__(self, settings: Settings, workdir: Path, echo=print) -> None:
        self.settings = settings
        self.workdir = workdir
        self.echo = echo
        self.servers: dict[str, SimServer] = {}
        self.env = {
            **os.environ,
            "XNATCTL_CONFIG_DIR": str(workdir / "config"),
            "XDG_STATE_HOME": str(workdir / "state"),
            "XNATCTL_USER": AUTH[0],
            "XNATCTL_PASSWORD": AUTH[1],
            "NO_COLOR": "1",
        }
        self.config = workdir / "transfer.yaml"
        self.state_db = workdir / "config" / "transfer.db"
        self.estimate = 4.0  # seconds a transfer with work takes; refined as rounds run

    # -- setup -----------------------------------------------------------------------------

    def start(self) -> SourceProject:
        self.servers = {
            "src": start_server(self.workdir / "src", site_id="SRC"),
            "dst": start_server(self.workdir / "dst", site_id="DST"),
        }
        spec = SeedSpec(
            project=PROJECT,
            subjects=self.settings.subjects,
            sessions_per_subject=1,
            scans_per_session=2,
            instances_per_scan=2,
            rows=8,
            cols=8,
            seed=self.settings.seed,
        )
        source = SourceProject(self.servers["src"].url, PROJECT, spec)
        source.seed()
        reply = requests.put(
            f"{self.servers['dst'].url}/data/projects/{PROJECT}", auth=AUTH, timeout=30
        )
        reply.raise_for_status()
        for name, srv in self.servers.items():
            self._xnatctl("config", "add-profile", name, "--url", srv.url, check=True)
        # sync_new_only off: every round diffs every subject, so changes to subjects an
        # earlier round completed are copied too; quick retries keep the rounds short.
        self.config.write_text(
            f"source_project: {PROJECT}\ndest_project: {PROJECT}\nsync_new_only: false\n"
            f"max_failures: 1000\nscan_retry_count: 3\nscan_retry_delay: 0.2\n"
            f"scan_workers: {self.settings.workers}\n"
        )
        return source

    def stop(self) -> None:
        for srv in self.servers.values():
            srv.stop()

    # -- commands --------------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "xnatctl", *args]

    def _pair(self) -> list[str]:
        return ["-p", "src", "-P", PROJECT, "--dest-profile", "dst", "--dest-project", PROJECT]

    def _xnatctl(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self._cmd(*args), env=self.env, capture_output=True, text=True, timeout=600
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"xnatctl {' '.join(args)}: {done.returncode}\n{done.stderr}")
        return done

    def _killed_run(self, r: Round, rng: random.Random, args: list[str]) -> None:
        """Run ``xnatctl ARGS`` under the round's faults; SIGKILL it after ``r.kill_after``."""
        mix = faults.pick(rng, r.kill_after)
        r.faults = mix.names
        faults.install(self.servers, mix)
        log = self.workdir / f"round{r.index:03d}.log"
        with log.open("w") as out, faults.Expirer(self.servers, mix) as expirer:
            proc = subprocess.Popen(
                self._cmd(*args), env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
            started = time.monotonic()
            if r.aimed:  # wait for apply to start its run, then kill within the next second
                while proc.poll() is None and checks.runs_left_running(self.state_db) == 0:
                    if time.monotonic() - started > 60:
                        break
                    time.sleep(0.02)
                r.kill_after = round(time.monotonic() - started + rng.uniform(0.0, 1.0), 2)
            try:
                r.faulty_exit = proc.wait(
                    timeout=max(0.0, r.kill_after - (time.monotonic() - started))
                )
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                r.killed = True
                r.killed_in_apply = checks.runs_left_running(self.state_db) > 0
        r.sessions_expired = expirer.fired
        log.unlink()
        faults.clear(self.servers)

    # -- one round -------------------------------------------------------------------------

    def round(self, index: int, source: SourceProject) -> Round:
        r = Round(index=index, seed=f"{self.settings.seed}/{index}")
        rng = random.Random(r.seed)
        for srv in self.servers.values():
            srv.request_log.clear()
        r.change = source.change(rng)
        r.kill_after = round(rng.uniform(0.3, 1.3 * self.estimate), 2)
        r.aimed = rng.random() < self.settings.aimed_share
        transfer = ["project", "transfer", *self._pair(), "--config", str(self.config)]
        if rng.random() < self.settings.apply_share:
            r.mode = "apply"
            plan = self.workdir / "plan.json"
            plan.unlink(missing_ok=True)
            made = self._xnatctl(*transfer, "--dry-run", "--plan-out", str(plan))
            if made.returncode != 0 or not plan.exists():
                r.failures.append(f"dry run exit {made.returncode}: {made.stderr[-TAIL:]}")
                return r
            self._killed_run(r, rng, ["project", "apply", str(plan), "--yes"])
        else:
            self._killed_run(r, rng, [*transfer, "--yes"])
        started = time.monotonic()
        rerun = self._xnatctl(*transfer, "--yes", "-o", "json")
        r.rerun_seconds = round(time.monotonic() - started, 2)
        r.rerun_exit = rerun.returncode
        try:
            r.rerun_steps = json.loads(rerun.stdout).get("steps_run")
        except ValueError:
            r.rerun_steps = None
        if rerun.returncode != 0:
            r.failures.append(f"clean rerun exit {rerun.returncode}: {rerun.stderr[-TAIL:]}")
        elif r.rerun_steps:
            self.estimate = max(1.5, 0.7 * self.estimate + 0.3 * r.rerun_seconds)
        drift = self._xnatctl("project", "drift", *self._pair(), "--config", str(self.config))
        r.drift_exit = drift.returncode
        if drift.returncode != 0:
            r.failures.append(
                f"drift exit {drift.returncode}: {(drift.stdout + drift.stderr)[-TAIL:]}"
            )
        self._compare(r)
        state = checks.check_state_db(self.state_db)
        r.state_problems = state.problems
        r.dead_locks = state.dead_locks
        if not r.ok:
            r.request_log = self._log_excerpt()
        return r

    def _compare(self, r: Round) -> None:
        src = checks.read_side(self.servers["src"].url, PROJECT)
        dst = checks.read_side(self.servers["dst"].url, PROJECT)
        found = checks.compare(src, dst)
        r.files_checked, r.scans_checked = found.files_checked, found.scans_checked
        r.lost, r.differing = found.lost, found.differing
        r.duplicated, r.extra = found.duplicated, found.extra
        r.prearchive_leftovers = found.prearchive_leftovers

    def _log_excerpt(self, limit: int = 40) -> list[str]:
        """The destination's writes and failed requests of the round, oldest first."""
        out = []
        for entry in self.servers["dst"].request_log.entries():
            if entry.get("method") == "GET" and int(entry.get("status", 0)) < 400:
                continue
            out.append(
                f"{entry.get('method')} {entry.get('path')}?{entry.get('query', '')} "
                f"-> {entry.get('status')}"
            )
        return out[-limit:]

    # -- the soak --------------------------------------------------------------------------

    def run(self) -> Report:
        report = Report(seed=self.settings.seed, rounds_planned=self.settings.rounds)
        started = time.monotonic()
        source = self.start()
        try:
            first = self._xnatctl(
                "project", "transfer", *self._pair(), "--config", str(self.config), "--yes"
            )
            if first.returncode != 0:
                raise RuntimeError(f"the first transfer failed: {first.stderr[-TAIL:]}")
            for index in range(1, self.settings.rounds + 1):
                r = self.round(index, source)
                report.rounds.append(r)
                self.echo(describe(r))
        finally:
            self.stop()
            report.seconds = time.monotonic() - started
        return report


def describe(r: Round) -> str:
    verdict = "ok" if r.ok else "FAILED"
    kill = f"exit {r.faulty_exit}"
    if r.killed:
        kill = f"killed at {r.kill_after:.2f}s" + (" in apply" if r.killed_in_apply else "")
    line = (
        f"round {r.index:3d} [{r.seed}] {verdict}: {r.change}; {r.mode} with "
        f"{', '.join(r.faults) or 'no faults'}, {kill}; rerun exit {r.rerun_exit} "
        f"({r.rerun_steps} steps, {r.rerun_seconds:.1f}s), drift {r.drift_exit}, "
        f"{r.files_checked} files checked, lost {len(r.lost)}, differing {len(r.differing)}, "
        f"duplicated {len(r.duplicated)}, extra {len(r.extra)}"
    )
    for label, items in (
        ("failure", r.failures),
        ("lost", r.lost),
        ("differing", r.differing),
        ("duplicated", r.duplicated),
        ("extra", r.extra),
        ("state DB", r.state_problems),
        ("request", r.request_log),
    ):
        line += "".join(f"\n    {label}: {item}" for item in items[:20])
    return line


def write_report(report: Report, path: Path, echo=print) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n")
    echo("soak figures: " + json.dumps(report.figures(), sort_keys=True))
    echo(f"soak report written to {path}")
