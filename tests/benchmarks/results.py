"""The benchmarks' results file, ``.bench/results.json``, so a script can compare runs.

Every benchmark prints its figures and also records them here, one entry per benchmark and
size. An entry is known by its ``name`` and ``params``: a run replaces its own entries and
leaves every other one as it was, so running one benchmark alone updates just its figures.
The file is replaced atomically (written beside itself, then renamed) under an advisory lock,
so a reader never sees half a file and two runs never lose each other's entries.

    {"benchmarks": [{"name": "planner_diff", "params": {"files_per_side": 2000000},
                     "seconds": 21.4, "peak_rss_mb": 380.0, "requests": null,
                     "figures": {}}]}
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = ROOT / ".bench" / "results.json"
ENV_RESULTS_FILE = "XNATCTL_BENCH_RESULTS"


@dataclass
class BenchResult:
    """One benchmark at one size; ``figures`` holds what the three common columns cannot
    (rates, ratios, the concurrency used)."""

    name: str
    params: dict[str, Any]
    seconds: float | None = None
    peak_rss_mb: float | None = None
    requests: int | None = None
    figures: dict[str, Any] = field(default_factory=dict)


def results_path() -> Path:
    """``.bench/results.json`` at the project root, or the file named by the environment."""
    override = os.environ.get(ENV_RESULTS_FILE)
    return Path(override) if override else RESULTS_FILE


def _key(entry: Mapping[str, Any]) -> tuple[str, str]:
    return str(entry["name"]), json.dumps(entry.get("params") or {}, sort_keys=True)


def merge(existing: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``existing`` with each entry of ``new`` in place of the one of the same name and params
    (kept in its position), or appended when there was none."""
    out = list(existing)
    where = {_key(e): i for i, e in enumerate(out)}
    for entry in new:
        k = _key(entry)
        if k in where:
            out[where[k]] = entry
        else:
            where[k] = len(out)
            out.append(entry)
    return out


def load(path: Path) -> list[dict[str, Any]]:
    """The entries in ``path``; none when it does not exist. A file that is not a results
    file raises ValueError rather than being overwritten: it may be the only baseline."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    try:
        data = json.loads(text)
        entries = data["benchmarks"]
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and "name" in e for e in entries
        ):
            raise TypeError("'benchmarks' is not a list of named entries")
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a benchmark results file: {exc}") from None
    return entries


def _write_atomically(path: Path, entries: list[dict[str, Any]]) -> None:
    text = json.dumps({"benchmarks": entries}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record(*results: BenchResult, path: Path | None = None) -> Path:
    """Merge ``results`` into the results file; returns the file's path."""
    target = path or results_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target):
        entries = merge(load(target), [asdict(r) for r in results])
        _write_atomically(target, entries)
    return target


def rounded(value: float, digits: int = 3) -> float:
    """Figures to a sensible precision, so the file stays readable."""
    return round(float(value), digits)
