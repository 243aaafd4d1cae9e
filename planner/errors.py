"""Errors the planner understands, raised by any backend.

The planner decides what to retry and what to report from these classes alone, so every
backend (the HTTP client in ``xnatctl``, test fakes) must raise them, or subclasses of them,
rather than transport-specific exceptions.
"""

from __future__ import annotations


class BackendError(Exception):
    """A request to an XNAT server failed.

    ``reason`` is the server's own explanation (XNAT's ``<h3>`` text) when it gave one;
    ``status`` is the HTTP status, or ``None`` when no response arrived.
    """

    transient: bool = False
    # True when every later request of a run would fail the same way (a session that cannot
    # be renewed): apply stops the run at once instead of failing each remaining step.
    fatal: bool = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class AuthenticationFailed(BackendError):
    """401: wrong credentials or an expired session that could not be renewed."""


class PermissionDenied(BackendError):
    """403: the user is known but may not do this."""


class NotFound(BackendError):
    """404: the project, subject, experiment, scan, resource or file does not exist."""


class Conflict(BackendError):
    """409: the server refuses because of what it already holds."""


class BadRequest(BackendError):
    """Any other 4xx: retrying the same request cannot help."""


class ServerError(BackendError):
    """5xx: the server failed; worth retrying."""

    transient = True


class NotXnat(BackendError):
    """The server answered, but not as XNAT does: a wrong URL, a plain web server, a proxy's
    own page. Checked only where XNAT always answers (``/data/JSESSION``,
    ``/xapi/siteConfig/buildInfo``), so a real XNAT is never taken for something else."""


NOT_XNAT_HINT = (
    "check the URL: it must be the XNAT site's own address (where /data/projects answers), "
    "e.g. https://xnat.example.org or https://example.org/xnat"
)


def not_xnat_because(url: str, request: str, exc: BackendError | None = None) -> NotXnat:
    """The one wording of "this is not an XNAT": which request gave which answer."""
    status = exc.status if exc is not None else None
    if exc is None:
        answer = "gave no XNAT reply"
    elif status is not None:
        answer = f"answered HTTP {status}" + (f" ({exc.reason})" if exc.reason else "")
    else:
        answer = f"answered {exc.reason or exc}"
    return NotXnat(f"{url} does not look like an XNAT server: {request} {answer}", status=status)


class NetworkError(BackendError):
    """No usable response: refused connection, timeout, dropped or truncated body."""

    transient = True


class MalformedReply(BackendError):
    """The server answered, but not in a shape XNAT would use."""
