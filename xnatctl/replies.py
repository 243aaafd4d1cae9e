"""XNAT's replies read as outcomes: an error status becomes one ``planner.errors`` class
carrying XNAT's own reason (the ``<h3>`` of its HTML error page) and the method and path,
never the query string or credentials; a reply in a session other than ours is flagged.
"""

from __future__ import annotations

import html
import re

import requests

from planner.errors import (
    AuthenticationFailed,
    BackendError,
    BadRequest,
    Conflict,
    NotFound,
    PermissionDenied,
    ServerError,
)
from xnatctl.errors import RateLimited

__all__ = [
    "RETRY_STATUSES",
    "SESSION_COOKIE",
    "SessionReplaced",
    "describe_connection_error",
    "new_session_id",
    "raise_for",
    "reason_from_body",
]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_REASON = 300
SESSION_COOKIE = "JSESSIONID"
_H3 = re.compile(r"<h3[^>]*>(.*?)</h3>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def reason_from_body(body: str) -> str:
    """XNAT's explanation: the ``<h3>`` of its HTML error page, else the first text line."""
    match = _H3.search(body or "")
    if match:
        text = _TAG.sub("", match.group(1))
    else:
        text = ""
        stripped = _TAG.sub("\n", body or "") if "<" in (body or "") else (body or "")
        for line in stripped.splitlines():
            if line.strip():
                text = line
                break
    text = " ".join(html.unescape(text).split())
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1] + "…"
    return text


def _error_class(status: int) -> type[BackendError]:
    if status == 401:
        return AuthenticationFailed
    if status == 403:
        return PermissionDenied
    if status == 404:
        return NotFound
    if status == 409:
        return Conflict
    if status == 429:
        return RateLimited
    if status >= 500:
        return ServerError
    return BadRequest


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def describe_connection_error(exc: BaseException) -> str:
    """A short cause for a failed connection, without URLs or credentials."""
    text = repr(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error; check verify_ssl and ca_bundle in the profile"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if any(
        s in lowered
        for s in (
            "name or service not known",
            "nodename nor servname",
            "failed to resolve",
            "temporary failure in name resolution",
            "no address associated",
        )
    ):
        return "host name not found"
    if "reset by peer" in lowered:
        return "connection reset"
    if "network is unreachable" in lowered or "no route to host" in lowered:
        return "network unreachable"
    return "connection failed"


def new_session_id(response: requests.Response, sent: str | None) -> str | None:
    """The session id a reply sets when it is not the one we sent, else None.

    XNAT's ``XnatExpiredPasswordFilter`` calls ``request.getSession()`` on every request, so a
    request whose session the server no longer knows is given a new one, and the reply sets
    its ``JSESSIONID`` cookie; a request in a live session gets no such cookie. On a site
    that does not require a login, that new session is the guest's: the reply is what guest
    may see (403 or 404 where our data exists, or an empty listing), not what we may see.
    An empty value (a logout clearing the cookie) is no new session.
    """
    if not sent:
        return None
    for cookie in response.cookies:
        if cookie.name == SESSION_COOKIE and cookie.value and cookie.value != sent:
            return cookie.value
    return None


class SessionReplaced(Exception):
    """A reply came in a session other than ours; raised inside ``_send`` and handled there."""

    def __init__(self, session_id: str, response: requests.Response) -> None:
        super().__init__("the server answered in a new session")
        self.session_id = session_id
        self.response = response


def raise_for(method: str, path: str, response: requests.Response) -> None:
    """Raise the ``planner.errors`` class for an error reply (closing it)."""
    status = response.status_code
    try:
        raw = next(response.iter_content(64 * 1024), b"")
    except (requests.exceptions.RequestException, StopIteration):
        raw = b""
    finally:
        response.close()
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "replace")
    body = raw.decode(response.encoding or "utf-8", errors="replace")
    reason = reason_from_body(body)
    message = f"{method} {path}: HTTP {status}"
    if reason:
        message += f" {reason}"
    cls = _error_class(status)
    exc = cls(message, status=status, reason=reason)
    if status in RETRY_STATUSES:
        exc.retry_after = _retry_after(response)  # type: ignore[attr-defined]
    raise exc
