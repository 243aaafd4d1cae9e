"""Exit codes, the error commands raise, and the one mapping from exceptions to codes.

Scripts rely on the exit codes, so they live in one enum; every failure reaches the user as
one line ``error: <cause>. <what to do>`` built by ``describe``.
"""

from __future__ import annotations

from enum import IntEnum

import click
import typer

from planner.errors import (
    NOT_XNAT_HINT,
    AuthenticationFailed,
    BackendError,
    BadRequest,
    NetworkError,
    NotFound,
    NotXnat,
    PermissionDenied,
)

try:  # typer carries its own copy of click; its usage errors are not click's classes
    from typer._click.exceptions import NoArgsIsHelpError as _TyperNoArgs
    from typer._click.exceptions import UsageError as _TyperUsageError
except ImportError:  # pragma: no cover - typer versions that use click itself
    _TyperUsageError = click.UsageError
    _TyperNoArgs = getattr(click.exceptions, "NoArgsIsHelpError", click.UsageError)

NO_ARGS_HELP: tuple[type[BaseException], ...] = (
    _TyperNoArgs,
    getattr(click.exceptions, "NoArgsIsHelpError", _TyperNoArgs),
)
USAGE_ERRORS: tuple[type[BaseException], ...] = (click.UsageError, _TyperUsageError)
ABORTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, click.exceptions.Abort, typer.Abort)
EXITS: tuple[type[BaseException], ...] = (click.exceptions.Exit, typer.Exit)
CLICK_ERRORS: tuple[type[BaseException], ...] = (click.ClickException, typer.TyperException)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    DRIFT = 2
    AUTH = 3
    UNREACHABLE = 4
    NOT_FOUND = 5
    PERMISSION = 6
    USAGE = 64
    INTERRUPTED = 130


class CliError(Exception):
    """Stop a command with one message, a hint on what to do, and an exit code."""

    def __init__(self, message: str, *, code: ExitCode = ExitCode.FAILED, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = ExitCode(code)
        self.hint = hint


class UsageError(CliError):
    """Bad flags, a bad config file or bad input: exit 64."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message, code=ExitCode.USAGE, hint=hint)


class ConfigFileError(UsageError):
    """``config.yaml`` cannot be read or has a bad value; names the file and line."""


class SessionExpired(AuthenticationFailed):
    """A cached session was refused and there is no password to open a new one."""

    fatal = True


class NoCredentials(AuthenticationFailed):
    """The server wants credentials and we have neither a session nor a password."""

    fatal = True


class LoginRefused(AuthenticationFailed):
    """The server refused the user name and password (or alias token) themselves."""

    fatal = True


class RateLimited(BadRequest):
    """429: the server asks us to slow down; worth retrying after ``retry_after`` seconds."""

    transient = True


_BACKEND_CODES: list[tuple[type[BaseException], ExitCode]] = [
    (AuthenticationFailed, ExitCode.AUTH),
    (NetworkError, ExitCode.UNREACHABLE),
    (NotXnat, ExitCode.UNREACHABLE),
    (NotFound, ExitCode.NOT_FOUND),
    (PermissionDenied, ExitCode.PERMISSION),
]

_BACKEND_HINTS: list[tuple[type[BaseException], str]] = [
    (SessionExpired, ""),
    (NoCredentials, ""),
    (LoginRefused, "check the user name and password (an alias token counts as both)"),
    (AuthenticationFailed, 'check the user and password, or run "xnatctl auth login -p PROFILE"'),
    (NetworkError, ""),  # the client's message already says what to check
    (NotXnat, NOT_XNAT_HINT),
    (
        NotFound,
        "check the name and that it exists on that server; XNAT also answers 404 for a "
        "project the user may not see, so ask its owner for access if it does exist",
    ),
    (PermissionDenied, "ask a project owner for access, or use another account"),
]


def _planner_exit_code(exc: BaseException) -> ExitCode | None:
    """Codes for the planner's own (non-HTTP) errors, imported lazily to keep startup light."""
    from planner.config import ConfigError
    from planner.planfile import UnusablePlan
    from planner.safewrite import NotARegularFile
    from planner.staleness import StalePlan
    from planner.state import LockHeld, StateError
    from planner.template import TemplateExists

    if isinstance(exc, ConfigError | TemplateExists | NotARegularFile):
        return ExitCode.USAGE
    if isinstance(exc, UnusablePlan | StalePlan | LockHeld | StateError):
        return ExitCode.FAILED
    return None


def exit_code_for(exc: BaseException) -> ExitCode:
    """The documented exit code for any exception that ends a command."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ABORTS):
        return ExitCode.INTERRUPTED
    if isinstance(exc, USAGE_ERRORS + CLICK_ERRORS):
        return ExitCode.USAGE
    if isinstance(exc, BackendError):
        for cls, code in _BACKEND_CODES:
            if isinstance(exc, cls):
                return code
        return ExitCode.FAILED
    try:
        code = _planner_exit_code(exc)
    except ImportError:  # a planner module is missing: fall through to the generic code
        code = None
    return code if code is not None else ExitCode.FAILED


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(exc: BaseException) -> str:
    """The one line shown for ``exc``: ``error: <cause>. <what to do>``."""
    hint = ""
    if isinstance(exc, CliError):
        cause, hint = exc.message, exc.hint
    elif isinstance(exc, ABORTS):
        cause = "interrupted"
    elif isinstance(exc, USAGE_ERRORS):
        cause = exc.format_message()  # type: ignore[attr-defined]
        ctx = getattr(exc, "ctx", None)
        command = ctx.command_path if ctx is not None else "xnatctl"
        hint = f'see "{command} --help"'
    elif isinstance(exc, CLICK_ERRORS):
        cause = exc.format_message()  # type: ignore[attr-defined]
    elif isinstance(exc, BackendError):
        cause = str(exc)
        hint = next((h for cls, h in _BACKEND_HINTS if isinstance(exc, cls)), "")
    elif exit_code_for(exc) != ExitCode.FAILED or type(exc).__module__.startswith("planner."):
        cause = str(exc)
    else:
        cause = f"unexpected {type(exc).__name__}: {exc}"
        hint = "run again with -v for details"
    cause = _one_line(cause) or type(exc).__name__
    hint = _one_line(hint)
    if not hint:
        return f"error: {cause}"
    return f"error: {cause.rstrip('.')}. {hint[:1].upper()}{hint[1:]}"
