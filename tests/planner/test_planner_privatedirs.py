"""Directories xnatctl creates for spools and stores are its owner's alone."""

from __future__ import annotations

import stat
from pathlib import Path

from planner.privatedirs import private_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_missing_parents_are_created_private_too(tmp_path: Path) -> None:
    target = tmp_path / "state" / "xnatctl" / "work" / "plans"
    assert private_dir(target) == target
    for directory in (target, target.parent, target.parent.parent, tmp_path / "state"):
        assert _mode(directory) == 0o700, directory


def test_an_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    chosen = tmp_path / "big-disk"
    chosen.mkdir(mode=0o755)
    chosen.chmod(0o755)
    private_dir(chosen / "stores")
    assert _mode(chosen) == 0o755
    assert _mode(chosen / "stores") == 0o700
