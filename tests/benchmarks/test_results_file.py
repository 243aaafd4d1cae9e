"""The benchmarks' results file: merge by name and params, atomic replacement.

Not a benchmark (no ``bench`` mark): it runs in ``make test``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.benchmarks.results import BenchResult, load, merge, record, results_path


def _entry(name: str, seconds: float, **params: object) -> dict:
    return {"name": name, "params": params, "seconds": seconds}


def test_merge_replaces_same_name_and_params_in_place_and_appends_the_rest():
    existing = [
        _entry("snapshot", 1.0, experiments=200, latency_ms=0),
        _entry("snapshot", 3.0, experiments=200, latency_ms=50),
        _entry("drift", 6.0, experiments=200),
    ]
    new = [
        _entry("snapshot", 2.5, latency_ms=50, experiments=200),  # same params, other order
        _entry("planner_diff", 30.0, files_per_side=2_000_000),
    ]
    merged = merge(existing, new)
    assert [(e["name"], e["seconds"]) for e in merged] == [
        ("snapshot", 1.0),
        ("snapshot", 2.5),
        ("drift", 6.0),
        ("planner_diff", 30.0),
    ]
    assert existing[1]["seconds"] == 3.0  # the input is not changed


def test_merge_keeps_sizes_of_one_benchmark_apart():
    merged = merge([_entry("apply", 1.0, mb=100)], [_entry("apply", 9.0, mb=1000)])
    assert [e["params"]["mb"] for e in merged] == [100, 1000]


def test_merge_of_a_repeated_entry_keeps_the_last():
    merged = merge([], [_entry("filters", 1.0, case="a"), _entry("filters", 2.0, case="a")])
    assert merged == [_entry("filters", 2.0, case="a")]


def test_record_creates_then_updates_the_file(tmp_path: Path):
    path = tmp_path / "sub" / "results.json"
    record(BenchResult("drift", {"experiments": 200}, seconds=6.1, requests=910), path=path)
    record(
        BenchResult("snapshot", {"experiments": 200}, seconds=1.9, figures={"workers": 8}),
        BenchResult("drift", {"experiments": 200}, seconds=5.0, requests=910),
        path=path,
    )
    data = json.loads(path.read_text())
    assert data == {
        "benchmarks": [
            {
                "name": "drift",
                "params": {"experiments": 200},
                "seconds": 5.0,
                "peak_rss_mb": None,
                "requests": 910,
                "figures": {},
            },
            {
                "name": "snapshot",
                "params": {"experiments": 200},
                "seconds": 1.9,
                "peak_rss_mb": None,
                "requests": None,
                "figures": {"workers": 8},
            },
        ]
    }
    # replaced by rename: no temporary file is left beside it
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json", "results.json.lock"]


def test_a_file_that_is_not_a_results_file_is_never_overwritten(tmp_path: Path):
    path = tmp_path / "results.json"
    path.write_text('{"something": "else"}')
    with pytest.raises(ValueError, match="not a benchmark results file"):
        record(BenchResult("drift", {}), path=path)
    assert path.read_text() == '{"something": "else"}'
    assert load(tmp_path / "missing.json") == []


def test_the_environment_names_another_file(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("XNATCTL_BENCH_RESULTS", str(tmp_path / "elsewhere.json"))
    assert results_path() == tmp_path / "elsewhere.json"
    monkeypatch.delenv("XNATCTL_BENCH_RESULTS")
    assert results_path().parts[-2:] == (".bench", "results.json")
