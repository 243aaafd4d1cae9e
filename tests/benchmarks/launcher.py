"""A command's own peak memory, for the benchmarks that run xnatctl as a user would.

Linux keeps ``ru_maxrss`` across ``exec``, so a command started straight from the test
process (which holds the servers and the data builders) would report at least that
process's peak. Each command is therefore started by a small launcher process, which reaps
it with ``os.wait4`` and writes its exit code, wall time and peak RSS (``ru_maxrss``, KB on
Linux) to a file; the launcher's own few MB are the least the figure can be.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

LAUNCHER = textwrap.dedent(
    """
    import json, os, sys, time

    out, argv = sys.argv[1], sys.argv[2:]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    with open(out, "w") as fh:
        json.dump({"exit": os.waitstatus_to_exitcode(status), "seconds": seconds,
                   "peak_kb": usage.ru_maxrss}, fh)
    """
)


@dataclass(frozen=True)
class Launched:
    exit: int
    seconds: float
    peak_mb: float


def xnatctl_command() -> list[str]:
    """The installed ``xnatctl`` script beside this interpreter, else ``python -m xnatctl``."""
    script = Path(sys.executable).parent / "xnatctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "xnatctl"]


def launch(
    argv: list[str],
    figures: Path,
    *,
    env: dict[str, str],
    cwd: Path,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    timeout: float = 3600,
) -> tuple[Launched, subprocess.CompletedProcess[str]]:
    """Run ``argv`` under the launcher (its figures written to ``figures``); the figures, and
    the launcher's completed process (its output, when ``stdout``/``stderr`` are pipes)."""
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(figures), *argv],
        cwd=cwd,
        env=env,
        stdout=stdout,
        stderr=stderr,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"launcher failed: {(proc.stderr or '')[-3000:]}"
    r = json.loads(figures.read_text())
    return Launched(r["exit"], r["seconds"], r["peak_kb"] / 1024), proc
