"""Options shared by every command, so ``-p``/``-o`` work before or after the subcommand.

A command declares ``profile: ProfileOpt = None, output: OutputOpt = None`` and calls
``app_context(ctx, profile=profile, output=output)``: its own values win, else the root's.
A command that talks to a destination takes ``dest: DestOptions`` and is decorated with
``with_dest_options``, which gives it the five ``--dest-*`` options.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from xnatctl.connect import DestOptions
from xnatctl.context import AppContext
from xnatctl.errors import CliError, ExitCode

R = TypeVar("R")

ProfileOpt = Annotated[
    str | None,
    typer.Option("-p", "--profile", help="Profile to use (default: the default profile)."),
]
OutputOpt = Annotated[
    str | None,
    typer.Option("-o", "--output", help="Output format: table or json.", metavar="FORMAT"),
]
DestProfileOpt = Annotated[
    str | None, typer.Option("--dest-profile", help="Profile of the destination server.")
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

# The ``--dest-*`` options: parameter name, its typer annotation, default, DestOptions field.
_DEST_OPTIONS: tuple[tuple[str, Any, Any, str], ...] = (
    ("dest_profile", DestProfileOpt, None, "profile"),
    ("dest_url", DestUrlOpt, None, "url"),
    ("dest_user", DestUserOpt, None, "user"),
    ("dest_pass", DestPassOpt, None, "password"),
    ("dest_pass_stdin", DestPassStdinOpt, False, "password_stdin"),
)


def with_dest_options(command: Callable[..., R]) -> Callable[..., R]:
    """Give a command the destination options as one ``dest: DestOptions`` parameter.

    Typer reads a command's options from its signature, so the wrapper shows the five
    ``--dest-*`` options where the command has ``dest``, and packs their values into a
    ``DestOptions`` before calling it: four commands declare them once.
    """
    signature = inspect.signature(command, eval_str=True)
    params = list(signature.parameters.values())
    at = [p.name for p in params].index("dest")
    kind = params[at].kind
    options = [
        inspect.Parameter(name, kind, default=default, annotation=annotation)
        for name, annotation, default, _field in _DEST_OPTIONS
    ]
    shown = [*params[:at], *options, *params[at + 1 :]]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        values = {field: kwargs.pop(name, default) for name, _a, default, field in _DEST_OPTIONS}
        return command(*args, dest=DestOptions(**values), **kwargs)

    wrapper.__signature__ = signature.replace(parameters=shown)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in shown}
    return wrapper


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
