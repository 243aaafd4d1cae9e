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


class NetworkError(BackendError):
    """No usable response: refused connection, timeout, dropped or truncated body."""

    transient = True


class MalformedReply(BackendError):
    """The server answered, but not in a shape XNAT would use."""
