"""Fixtures for xnatctl tests: an in-process CLI runner and a profile on a live xnatsim."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from xnatctl.cli.main import main
from xnatctl.context import AppContext


@pytest.fixture(autouse=True)
def _private_config_dir(tmp_path_factory, monkeypatch):
    """No test touches the user's config, even if the shared conftest changes."""
    base = tmp_path_factory.mktemp("xnatctl")
    monkeypatch.setenv("XNATCTL_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("NO_COLOR", "1")
    for name in ("XNATCTL_USER", "XNATCTL_PASSWORD", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)


class FakeStdin(io.StringIO):
    def __init__(self, text: str, tty: bool) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys, monkeypatch) -> Callable[..., CliResult]:
    """Run ``xnatctl ARGS`` in-process; exit code, stdout and stderr come back separately.

    Retries wait almost nothing so fault tests stay fast.
    """

    def run(*args: str, input: str = "", tty: bool = False) -> CliResult:
        monkeypatch.setattr(sys, "stdin", FakeStdin(input, tty))
        capsys.readouterr()
        obj = AppContext.create(retry_base_delay=0.001)
        code = main(list(args), obj=obj)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def config_dir() -> Path:
    return AppContext.create().config_dir
