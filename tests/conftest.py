"""Shared test setup: xnatsim fixtures, and no test ever touches the user's real config."""

import pytest

pytest_plugins = ["xnatsim.testing"]


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.mktemp("env")
    monkeypatch.setenv("XNATCTL_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(base / "state"))
    monkeypatch.setenv("NO_COLOR", "1")
