"""A bounded in-memory log of the requests a simulator served.

Tests use it to assert how a client talks to XNAT (how many listing calls a snapshot makes,
that a retry really happened, that a dry run wrote nothing) without parsing server logs.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

EXEMPT_PREFIX = "/xnatsim/"
DEFAULT_MAX_ENTRIES = 100_000


def basic_auth_user(environ: dict) -> str | None:
    """The user name of a basic-auth header; the password is never looked at or kept."""
    header = environ.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    user, sep, _ = decoded.partition(":")
    return user if sep else None


class RequestLog:
    """Records method, path, query, status, user and time of every non-`/xnatsim/` request."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: deque[dict] = deque(maxlen=max_entries)
        self._lock = threading.Lock()

    def wrap(self, app: WSGIApp) -> WSGIApp:
        def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "") or "/"
            if path.startswith(EXEMPT_PREFIX):
                return app(environ, start_response)
            entry = {
                "time": time.time(),
                "method": environ.get("REQUEST_METHOD", "GET").upper(),
                "path": path,
                "query": environ.get("QUERY_STRING", ""),
                "status": None,
                "user": basic_auth_user(environ),
            }

            def recording_start_response(status: str, headers: list, exc_info=None):
                # Recorded here, before the body goes out, so a client that has its reply
                # always finds the entry.
                try:
                    entry["status"] = int(str(status).split(" ", 1)[0])
                except ValueError:
                    entry["status"] = 0
                if entry["user"] is None:
                    entry["user"] = environ.get("xnatsim.user") or environ.get("REMOTE_USER")
                self._append(entry)
                if exc_info is not None:
                    return start_response(status, headers, exc_info)
                return start_response(status, headers)

            try:
                return app(environ, recording_start_response)
            except Exception:
                if entry["status"] is None:
                    entry["status"] = 500
                    self._append(entry)
                raise

        return middleware

    def _append(self, entry: dict) -> None:
        with self._lock:
            if entry.get("_logged"):
                return
            entry["_logged"] = True
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        """Copies of the entries, oldest first."""
        with self._lock:
            snapshot = list(self._entries)
        return [{k: v for k, v in e.items() if not k.startswith("_")} for e in snapshot]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
