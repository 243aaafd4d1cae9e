"""The one object every command receives: paths, consoles, output choice, profiles.

Built once by the root command and stored in ``typer.Context.obj``; tests build their own
pointing at temporary directories.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console

from xnatctl.errors import UsageError
from xnatctl.paths import Paths
from xnatctl.profiles import ProfileStore
from xnatctl.sessions import SessionCache

OUTPUT_FORMATS = ("table", "json")


def _stdout_console() -> Console:
    # Piped output has no width to fit: keep table rows whole instead of folding at 80.
    width = None if sys.stdout.isatty() else 200
    return Console(soft_wrap=False, highlight=False, width=width)


def _stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


@dataclass
class AppContext:
    paths: Paths
    output: str = "table"
    quiet: bool = False
    verbose: bool = False
    profile: str | None = None
    retries: int = 4
    retry_base_delay: float = 0.5
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: Console = field(default_factory=_stdout_console)
    err: Console = field(default_factory=_stderr_console)

    def __post_init__(self) -> None:
        if self.output not in OUTPUT_FORMATS:
            raise UsageError(
                f"unknown output format {self.output!r}", hint="use -o table or -o json"
            )

    @classmethod
    def create(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> AppContext:
        env = dict(os.environ if env is None else env)
        return cls(paths=Paths.from_env(env), env=env, **kwargs)

    def with_options(self, *, profile: str | None = None, output: str | None = None) -> AppContext:
        """A copy with a subcommand's own ``-p``/``-o`` winning over the root's."""
        changes: dict[str, Any] = {}
        if profile:
            changes["profile"] = profile
        if output:
            changes["output"] = output
        if not changes:
            return self
        new = replace(self, **changes)
        new.__dict__.pop("profiles", None)
        new.__dict__.pop("sessions", None)
        return new

    # -- paths and stores ----------------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        return self.paths.config_dir

    @property
    def state_dir(self) -> Path:
        return self.paths.state_dir

    @property
    def state_db_path(self) -> Path:
        return self.paths.state_db_path

    @cached_property
    def profiles(self) -> ProfileStore:
        return ProfileStore(self.paths.config_file)

    @cached_property
    def sessions(self) -> SessionCache:
        return SessionCache(self.paths.sessions_dir)

    # -- output --------------------------------------------------------------------------
    @property
    def json_output(self) -> bool:
        return self.output == "json"

    def print_json(self, data: Any) -> None:
        """Data for scripts: plain JSON on stdout, nothing else."""
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
        sys.stdout.flush()

    def note(self, message: str) -> None:
        """A diagnostic for people on stderr, silenced by ``-q``."""
        if not self.quiet:
            self.err.print(message, markup=False, highlight=False)

    def warn(self, message: str) -> None:
        """A warning on stderr; shown even with ``-q``."""
        self.err.print(f"warning: {message}", style="yellow", markup=False, highlight=False)
