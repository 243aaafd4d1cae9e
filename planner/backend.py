"""The small interface through which the planner talks to one XNAT server.

The planner owns all knowledge of XNAT's paths and reply shapes; a backend only moves
requests and bytes. ``xnatctl.client.XnatClient`` satisfies this protocol over HTTP, and tests
may satisfy it in memory. Paths are XNAT paths starting with ``/data/`` (or ``/xapi/``);
backends percent-encode nothing themselves beyond what ``quote_segment`` produced, so the
planner builds paths with ``quote_segment`` for every label or ID it inserts.

Every method raises the classes in ``planner.errors`` on failure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from planner.rows import Row

Params = Mapping[str, str]
ByteCallback = Callable[[int], None]


def quote_segment(value: str) -> str:
    """Percent-encode one path segment (a label, an ID, a file name)."""
    return quote(value, safe="")


@runtime_checkable
class XnatBackend(Protocol):
    """One XNAT server, as seen by the planner."""

    @property
    def url(self) -> str:
        """Base URL of the server, without a trailing slash; used in plans and state."""
        ...

    def get_rows(self, path: str, params: Params | None = None) -> list[Row]:
        """GET a listing with ``format=json`` and return ``ResultSet.Result`` rows.

        Column names must be looked up without regard to case (XNAT's SQL-built listings
        answer ``id`` where others answer ``ID``): return ``planner.rows.Row`` objects. The
        planner reads listings through ``planner.rows.get_listing``, which wraps plain dicts
        from a backend that does not.
        """
        ...

    def get_json(self, path: str, params: Params | None = None) -> Any:
        """GET a document with ``format=json`` and return the decoded JSON."""
        ...

    def get_text(self, path: str, params: Params | None = None) -> str:
        """GET a plain-text reply (IDs, versions, ``text/uri-list``)."""
        ...

    def request_text(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        data: bytes | str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> str:
        """Send a small PUT/POST/DELETE and return the reply body as text."""
        ...

    def download(
        self,
        path: str,
        dest: Path,
        params: Params | None = None,
        *,
        on_bytes: ByteCallback | None = None,
    ) -> int:
        """Stream a GET reply into ``dest`` and return the byte count.

        Must never hold the whole body in memory, and must raise ``NetworkError`` when the
        body ends short of a given Content-Length.
        """
        ...

    def upload(
        self,
        method: str,
        path: str,
        src: Path,
        params: Params | None = None,
        *,
        content_type: str = "application/octet-stream",
        on_bytes: ByteCallback | None = None,
    ) -> str:
        """Stream the file ``src`` as the request body and return the reply text."""
        ...
