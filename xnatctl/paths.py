"""Where xnatctl keeps its files, resolved once: explicit variable, then XDG, then home."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    config_dir: Path
    state_dir: Path
    store_dir: Path  # inventories on disk (planner.invstore), one file per snapshot

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.yaml"

    @property
    def sessions_dir(self) -> Path:
        return self.config_dir / "sessions"

    @property
    def state_db_path(self) -> Path:
        return self.config_dir / "transfer.db"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = Path(env.get("HOME") or Path.home())
        if env.get("XNATCTL_CONFIG_DIR"):
            config_dir = Path(env["XNATCTL_CONFIG_DIR"])
        elif env.get("XDG_CONFIG_HOME"):
            config_dir = Path(env["XDG_CONFIG_HOME"]) / "xnatctl"
        else:
            config_dir = home / ".config" / "xnatctl"
        if env.get("XDG_STATE_HOME"):
            state_dir = Path(env["XDG_STATE_HOME"]) / "xnatctl"
        else:
            state_dir = home / ".local" / "state" / "xnatctl"
        store_dir = (
            Path(env["XNATCTL_STORE_DIR"])
            if env.get("XNATCTL_STORE_DIR")
            else state_dir / "inventories"
        )
        return cls(
            config_dir=config_dir.expanduser(),
            state_dir=state_dir.expanduser(),
            store_dir=store_dir.expanduser(),
        )
