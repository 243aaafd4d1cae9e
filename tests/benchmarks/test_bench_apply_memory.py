"""Benchmark: peak memory of planning and applying a 200-experiment project with the CLI.

The source is seeded with 50 subjects x 4 sessions x 5 scans (2 small DICOM files each, plus
the seed's non-DICOM resources, assessors and fields); the destination project exists and is
empty. The transfer then runs as a user would run it, one ``xnatctl`` process per command
with its own config and state directories and credentials in the environment:
``project transfer --dry-run --plan-out F`` (the plan), then ``project apply F --yes`` (the
apply). The servers live in the test process, so each command's peak RSS must be measured in
a process of its own.

Linux carries ``ru_maxrss`` across ``exec`` (the old address space's high-water mark is kept),
so a child spawned straight from the test process would report at least the test process's
own peak. Each command is therefore started by a small launcher process, whose ``wait4``
rusage of its child holds that child's peak alone (the launcher's few MB are the floor).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.benchmarks.launcher import launch, xnatctl_command
from tests.benchmarks.results import BenchResult, record, rounded
from xnatsim.seed import SeedSpec, seed_project

ADMIN = ("admin", "admin")
ROOT = Path(__file__).resolve().parents[2]
PROJECT = "BENCH"
WORKERS = 4
PEAK_AIM_MB = 150
SPEC = SeedSpec(
    project=PROJECT,
    subjects=50,
    sessions_per_subject=4,
    scans_per_session=5,
    instances_per_scan=2,
    rows=16,
    cols=16,
    extras=True,
)
EXPERIMENTS = SPEC.subjects * SPEC.sessions_per_subject
SCANS = EXPERIMENTS * SPEC.scans_per_session


@dataclass(frozen=True)
class Measured:
    """One command's run: exit code, wall seconds, peak RSS and what it printed."""

    exit: int
    seconds: float
    peak_mb: float
    stdout: str
    stderr: str


def _environment(home: Path) -> dict[str, str]:
    """A user's environment with its own config and state directories and credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XNATCTL_", "XDG_"))}
    env.update(
        HOME=str(home),
        XNATCTL_CONFIG_DIR=str(home / "config"),
        XDG_STATE_HOME=str(home / "state"),
        XNATCTL_USER=ADMIN[0],
        XNATCTL_PASSWORD=ADMIN[1],
        PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    )
    return env


def _measure(args: list[str], env: dict[str, str], work: Path, name: str) -> Measured:
    """Run ``xnatctl args`` under the launcher and read back its figures."""
    run, proc = launch(
        [*xnatctl_command(), *args],
        work / f"{name}.rusage.json",
        env=env,
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return Measured(run.exit, run.seconds, run.peak_mb, proc.stdout, proc.stderr)


def _experiments(url: str) -> list[dict]:
    """The project's experiments, one listing call."""
    reply = requests.get(
        f"{url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label,xsiType"},
        auth=ADMIN,
        timeout=60,
    )
    reply.raise_for_status()
    return reply.json()["ResultSet"]["Result"]


@pytest.mark.bench
@pytest.mark.timeout(1800)  # seeding and a 1000-scan apply outlast the suite's 300 s
def test_bench_apply_memory_200_experiments(xnatsim_factory, tmp_path: Path) -> None:
    src, dst = xnatsim_factory(site_id="SRC"), xnatsim_factory(site_id="DST")
    started = time.perf_counter()
    seeded = seed_project(src.url, SPEC, auth=ADMIN)
    seed_seconds = time.perf_counter() - started
    assert seeded.sessions == EXPERIMENTS and seeded.scans == SCANS
    created = requests.put(f"{dst.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=60)
    assert created.status_code in (200, 201), created.text
    assert _experiments(dst.url) == []

    home = tmp_path / "user"
    home.mkdir()
    env = _environment(home)
    for name, srv in (("src", src), ("dst", dst)):
        added = subprocess.run(
            [*xnatctl_command(), "config", "add-profile", name, "--url", srv.url],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert added.returncode == 0, added.stderr

    plan_file = home / "bench.plan.json"
    plan_args = ["-p", "src", "project", "transfer", "-P", PROJECT, "--dest-project", PROJECT]
    plan_args += ["--dest-profile", "dst", "--workers", str(WORKERS), "--dry-run"]
    plan_args += ["--plan-out", str(plan_file)]
    planned = _measure(plan_args, env, home, "plan")
    assert planned.exit == 0, planned.stderr[-3000:]
    assert plan_file.exists()
    # The plan file is JSON Lines; its end record counts the steps.
    end = json.loads(plan_file.read_text().splitlines()[-1])
    plan_steps = end["steps"]

    apply_args = ["-o", "json", "project", "apply", str(plan_file), "--yes"]
    apply_args += ["--workers", str(WORKERS)]
    applied = _measure(apply_args, env, home, "apply")
    assert applied.exit == 0, (applied.stdout[-2000:], applied.stderr[-3000:])
    summary = json.loads(applied.stdout)
    verification = summary["verification"]
    assert summary["status"] == "completed", summary
    assert verification["failed"] == 0 and verification["passed"] == verification["checked"]
    assert verification["checked"] >= EXPERIMENTS, verification

    source_rows = _experiments(src.url)
    dest_rows = _experiments(dst.url)
    dest_sessions = [r for r in dest_rows if r["xsiType"].endswith("SessionData")]
    assert len(dest_sessions) == EXPERIMENTS
    assert sorted(r["label"] for r in dest_rows) == sorted(r["label"] for r in source_rows)

    print(
        f"\napply memory, {EXPERIMENTS} experiments x {SPEC.scans_per_session} scans "
        f"({seeded.files} files, {seeded.bytes / 1e6:.1f} MB, extras on; "
        f"seeding took {seed_seconds:.1f} s), {WORKERS} workers, one xnatctl process each\n"
        f"  plan:  {planned.seconds:.1f} s, peak RSS {planned.peak_mb:.0f} MB, "
        f"{plan_steps} steps\n"
        f"  apply: {applied.seconds:.1f} s, peak RSS {applied.peak_mb:.0f} MB, "
        f"{summary['steps_run']} steps run, {summary['scans_moved']} scans moved, "
        f"{verification['passed']}/{verification['checked']} experiments verified "
        f"(aim: peak < {PEAK_AIM_MB} MB)"
    )
    size = {"experiments": EXPERIMENTS, "scans": SCANS, "workers": WORKERS}
    record(
        BenchResult(
            "plan_memory",
            size,
            seconds=rounded(planned.seconds),
            peak_rss_mb=rounded(planned.peak_mb, 1),
            figures={"steps": plan_steps},
        ),
        BenchResult(
            "apply_memory",
            size,
            seconds=rounded(applied.seconds),
            peak_rss_mb=rounded(applied.peak_mb, 1),
            figures={
                "steps_run": summary["steps_run"],
                "scans_moved": summary["scans_moved"],
                "verified": verification["passed"],
            },
        ),
    )
