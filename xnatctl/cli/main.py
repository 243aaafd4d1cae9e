"""The root command and ``run()``, the one place exceptions become exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence

import typer

from xnatctl import __version__
from xnatctl.context import AppContext
from xnatctl.errors import EXITS, NO_ARGS_HELP, ExitCode, describe, exit_code_for
from xnatctl.options import OutputOpt, ProfileOpt

from . import auth, config, project

app = typer.Typer(
    name="xnatctl",
    help="Copy XNAT projects between servers: snapshot, plan, apply, verify, drift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich panels show on/off flags as taking a <bool>
)
app.add_typer(config.app, name="config")
app.add_typer(auth.app, name="auth")
app.add_typer(project.app, name="project")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xnatctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    profile: ProfileOpt = None,
    output: OutputOpt = None,
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors and data."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log HTTP requests; tracebacks."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    base = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext.create()
    base = base.with_options(profile=profile, output=output)
    base.quiet = quiet or base.quiet
    base.verbose = verbose or base.verbose
    ctx.obj = base
    _configure_logging(base.verbose)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now, so a swapped stream is never stale."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _configure_logging(verbose: bool) -> None:
    """``-v`` logs requests to stderr; without it, only warnings reach Python's default."""
    logger = logging.getLogger("xnatctl")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    if not verbose:
        logger.setLevel(logging.NOTSET)
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _wants_verbose(argv: Sequence[str]) -> bool:
    for arg in argv:
        if arg == "--":
            break
        if arg == "--verbose" or (
            arg.startswith("-")
            and not arg.startswith("--")
            and "v" in arg[1:]
            and arg[1:].isalpha()
        ):
            return True
    return False


def main(argv: Sequence[str] | None = None, *, obj: AppContext | None = None) -> int:
    """Run the command line and return the exit code; never raises (except SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = _wants_verbose(args)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="xnatctl", standalone_mode=False, obj=obj)
    except EXITS as exc:
        return int(exc.exit_code)  # type: ignore[attr-defined]
    except NO_ARGS_HELP as exc:
        exc.show()  # type: ignore[attr-defined]  # the group's help, on stderr
        return int(ExitCode.USAGE)
    except SystemExit as exc:  # a library called sys.exit
        code = exc.code
        return code if isinstance(code, int) else ExitCode.FAILED
    except (Exception, KeyboardInterrupt) as exc:  # the one outer handler
        if verbose:
            traceback.print_exc(file=sys.stderr)
        sys.stdout.flush()
        message = describe(exc)
        if sys.stderr.isatty() and "NO_COLOR" not in os.environ:
            message = f"\x1b[31m{message}\x1b[0m"
        print(message, file=sys.stderr)
        return int(exit_code_for(exc))
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


def run() -> None:
    """The ``xnatctl`` console script."""
    sys.exit(main())
