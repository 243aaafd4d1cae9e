"""Moving file bodies: a GET streamed to disk and a file streamed as a request body, both
reporting bytes as they go, so the progress bar moves during a long transfer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import requests

from planner.backend import ByteCallback, Params
from planner.errors import NetworkError
from xnatctl.login import SessionAuth

__all__ = ["CHUNK", "UPLOAD_REPLY_TIMEOUT", "Transfers"]

CHUNK = 1024 * 1024

# Seconds to wait for the reply to an upload once its body is sent (XNAT archives first).
UPLOAD_REPLY_TIMEOUT = 3600.0


class _ProgressReader:
    """A file wrapper requests streams from, counting bytes as they leave."""

    def __init__(self, fh: BinaryIO, size: int, on_bytes: ByteCallback | None) -> None:
        self._fh = fh
        self._size = size
        self._on_bytes = on_bytes

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        if data and self._on_bytes is not None:
            self._on_bytes(len(data))
        return data

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(CHUNK)
            if not data:
                return
            yield data


class Transfers(SessionAuth):
    """Downloads and uploads over the client's session."""

    def download(
        self,
        path: str,
        dest: Path,
        params: Params | None = None,
        *,
        on_bytes: ByteCallback | None = None,
    ) -> int:
        """Stream a GET body into ``dest``; retries happen only before any byte is written."""
        response = self._send(
            "GET", path, params, stream=True, headers={"Accept-Encoding": "identity"}
        )
        expected = response.headers.get("Content-Length")
        written = 0
        try:
            with open(dest, "wb") as fh:
                for chunk in response.iter_content(CHUNK):
                    if not chunk:
                        continue
                    fh.write(chunk)
                    written += len(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
        ) as exc:
            raise NetworkError(
                f"GET {path}: the download broke off after {written} bytes ({type(exc).__name__})"
            ) from None
        finally:
            response.close()
        if expected is not None and expected.isdigit() and written != int(expected):
            raise NetworkError(
                f"GET {path}: the download ended after {written} of {expected} bytes"
            )
        return written

    def upload(
        self,
        method: str,
        path: str,
        src: Path,
        params: Params | None = None,
        *,
        content_type: str = "application/octet-stream",
        on_bytes: ByteCallback | None = None,
        idempotent: bool | None = None,
    ) -> str:
        """Stream ``src`` as the body; a retry reopens the file from its start."""
        src = Path(src)
        size = src.stat().st_size
        handles: list[BinaryIO] = []

        def body() -> _ProgressReader:
            for fh in handles:
                fh.close()
            handles.clear()
            fh = open(src, "rb")  # noqa: SIM115 - closed below or on the next attempt
            handles.append(fh)
            return _ProgressReader(fh, size, on_bytes)

        try:
            response = self._send(
                method,
                path,
                params,
                body_factory=body,
                headers={"Content-Type": content_type, "Content-Length": str(size)},
                idempotent=idempotent,
                # XNAT replies to an upload only after archiving it, which for a large scan
                # takes minutes: the profile's timeout is for ordinary requests.
                read_timeout=max(self.timeout[1], UPLOAD_REPLY_TIMEOUT),
            )
            return response.text
        finally:
            for fh in handles:
                fh.close()
