"""xnatsim's server-only dependencies live in the `sim` extra, and xnatsim says so when they
are missing; xnatctl itself runs without them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from xnatsim import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("missing", ["waitress", "numpy"])
def test_xnatsim_without_the_sim_extra_names_it_in_one_line(missing, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    monkeypatch.setattr(sys, "argv", ["xnatsim", "serve", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 1
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"xnatsim needs {missing}: install it with pip install 'xnatctl[sim]'\n"


def test_the_sim_extra_holds_what_only_xnatsim_needs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = {d.split(">")[0].split("=")[0] for d in project["dependencies"]}
    sim = {d.split(">")[0] for d in project["optional-dependencies"]["sim"]}
    assert sim == set(cli.SIM_MODULES)
    assert not sim & base
    assert "xnatctl[sim]" in project["optional-dependencies"]["dev"]


def test_xnatctl_and_planner_run_without_the_sim_extra(tmp_path):
    code = (
        "import sys\n"
        "for name in ('waitress', 'numpy'):\n"
        "    sys.modules[name] = None\n"
        "import planner.apply, planner.diff, planner.drift, planner.verify\n"
        "import xnatctl.operations, xnatctl.views.plan, xnatctl.views.report\n"
        "from xnatctl.cli.main import main\n"
        "sys.exit(main(['project', 'transfer', '--help']))\n"
    )
    env = {"HOME": str(tmp_path), "XNATCTL_CONFIG_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "--dest-url" in done.stdout
