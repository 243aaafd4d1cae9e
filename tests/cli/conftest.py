"""CLI fixtures: run xnatctl in-process against two seeded xnatsim servers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import requests

from xnatctl.cli.main import main
from xnatsim.seed import SeedSpec, seed_project
from xnatsim.server import SimServer

PROJECT = "STUDY"
ADMIN = ("admin", "admin")


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``xnatctl ARGS`` in-process and return its exit code, stdout and stderr."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@dataclass
class Pair:
    src: SimServer
    dst: SimServer

    def pair_args(self, dest_project: str = PROJECT) -> list[str]:
        return ["-p", "src", "-P", PROJECT, "--dest-profile", "dst", "--dest-project", dest_project]


@pytest.fixture
def seeded(sim_pair, cli, monkeypatch) -> Pair:
    """A small seeded source project, an empty destination project, and two profiles."""
    src, dst = sim_pair
    seed_project(
        src.url,
        SeedSpec(
            project=PROJECT,
            subjects=2,
            sessions_per_subject=2,
            scans_per_session=2,
            instances_per_scan=2,
            rows=16,
            cols=16,
        ),
        auth=ADMIN,
    )
    requests.put(f"{dst.url}/data/projects/{PROJECT}", auth=ADMIN, timeout=30).raise_for_status()
    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    assert cli("config", "add-profile", "src", "--url", src.url).code == 0
    assert cli("config", "add-profile", "dst", "--url", dst.url).code == 0
    return Pair(src, dst)


@pytest.fixture
def transferred(seeded: Pair, cli) -> Pair:
    """The seeded pair after one complete transfer."""
    result = cli("project", "transfer", *seeded.pair_args(), "--yes")
    assert result.code == 0, result.err
    return seeded
