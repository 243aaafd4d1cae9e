"""Options shared by every command, so ``-p``/``-o`` work before or after the subcommand.

A command declares ``profile: ProfileOpt = None, output: OutputOpt = None`` and calls
``app_context(ctx, profile=profile, output=output)``: its own values win, else the root's.
"""

from __future__ import annotations

from typing import Annotated

import typer

from xnatctl.context import AppContext
from xnatctl.errors import CliError, ExitCode

ProfileOpt = Annotated[
    str | None,
    typer.Option("-p", "--profile", help="Profile to use (default: the default profile)."),
]
OutputOpt = Annotated[
    str | None,
    typer.Option("-o", "--output", help="Output format: table or json.", metavar="FORMAT"),
]
DestUrlOpt = Annotated[
    str | None, typer.Option("--dest-url", help="Destination server URL (instead of a profile).")
]
DestUserOpt = Annotated[str | None, typer.Option("--dest-user", help="Destination user.")]
DestPassOpt = Annotated[
    str | None,
    typer.Option(
        "--dest-pass",
        help="Destination password (visible to other users of this machine; prefer "
        "--dest-pass-stdin or XNATCTL_PASSWORD).",
    ),
]
DestPassStdinOpt = Annotated[
    bool, typer.Option("--dest-pass-stdin", help="Read the destination password from stdin.")
]


def app_context(
    ctx: typer.Context, *, profile: str | None = None, output: str | None = None
) -> AppContext:
    """The command's ``AppContext``, with its own ``-p``/``-o`` applied."""
    root = ctx.find_object(AppContext)
    if root is None:  # a command invoked outside the root app, as in some tests
        root = AppContext.create()
        ctx.obj = root
    if root is None:
        raise CliError("internal: no application context", code=ExitCode.FAILED)
    return root.with_options(profile=profile, output=output)
