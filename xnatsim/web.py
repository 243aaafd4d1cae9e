"""Minimal request/response plumbing for the WSGI app: no framework, explicit streaming."""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any, BinaryIO
from urllib.parse import parse_qs

REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    417: "Expectation Failed",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


class HTTPError(Exception):
    """An XNAT-style error reply: status plus a short reason for the `<h3>`."""

    def __init__(self, status: int, reason: str = "", headers: list | None = None) -> None:
        super().__init__(reason or REASONS.get(status, ""))
        self.status = status
        self.reason = reason or REASONS.get(status, "")
        self.headers = headers or []


def error_page(status: int, reason: str) -> bytes:
    title = f"{status} {REASONS.get(status, '')}"
    return (
        "<!DOCTYPE html>\n<html><head><title>Status page</title></head>\n<body>\n"
        f"<h3>{html.escape(reason)}</h3>\n"
        f"<p>{html.escape(title)}</p>\n"
        '<p>You can get technical details <a href="http://www.w3.org/Protocols/rfc2616/'
        f'rfc2616-sec10.html#sec10.{status // 100}">here</a>.<br></p>\n</body>\n</html>\n'
    ).encode()


class Request:
    """The parts of a WSGI environ the handlers need."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_path = environ.get("PATH_INFO", "") or "/"
        with contextlib.suppress(UnicodeError):
            raw_path = raw_path.encode("latin-1").decode("utf-8")
        self.path = raw_path
        self.query_string = environ.get("QUERY_STRING", "")
        self.multi = parse_qs(self.query_string, keep_blank_values=True)
        self.params: dict[str, str] = {k: v[-1] for k, v in self.multi.items()}
        self.content_type = environ.get("CONTENT_TYPE", "") or ""
        try:
            self.content_length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            self.content_length = 0
        cookie = SimpleCookie()
        with contextlib.suppress(Exception):
            cookie.load(environ.get("HTTP_COOKIE", ""))
        self.cookies = {k: m.value for k, m in cookie.items()}
        self.user: str | None = None
        self.set_cookies: list[str] = []
        self._form: dict[str, str] | None = None

    def header(self, name: str) -> str:
        return self.environ.get("HTTP_" + name.upper().replace("-", "_"), "")

    @property
    def stream(self) -> BinaryIO:
        return self.environ["wsgi.input"]

    def iter_body(self, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Yield the body in chunks; never holds it all in memory."""
        remaining = self.content_length
        stream = self.stream
        while remaining > 0:
            data = stream.read(min(chunk, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data

    def form(self) -> dict[str, str]:
        """Query params merged with a small urlencoded body (login forms, archive calls)."""
        if self._form is None:
            merged = dict(self.params)
            if self.content_type.startswith("application/x-www-form-urlencoded") and (
                0 < self.content_length < 1 << 20
            ):
                body = self.stream.read(self.content_length).decode("utf-8", "replace")
                merged.update({k: v[-1] for k, v in parse_qs(body, True).items()})
            self._form = merged
        return self._form

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.form().get(name) if self._form is not None else self.params.get(name)
        if value is None:
            return default
        return value.strip().lower() in ("true", "1", "yes", "y", "")


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "text/plain;charset=UTF-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def text(
        cls, text: str, status: int = 200, content_type: str = "text/plain;charset=UTF-8"
    ) -> Response:
        return cls(status, text.encode(), content_type)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status, json.dumps(data).encode(), "application/json;charset=UTF-8")

    @classmethod
    def html(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/html;charset=UTF-8")

    @classmethod
    def error(cls, status: int, reason: str) -> Response:
        return cls(status, error_page(status, reason), "text/html;charset=UTF-8")
