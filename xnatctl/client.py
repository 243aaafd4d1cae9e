"""The XNAT REST client: ``planner.backend.XnatBackend`` over HTTP.

Built in layers, one job each: ``xnatctl.transport`` sends one request and does the small
retries (idempotent requests only); ``xnatctl.login`` runs requests in our XNAT session and
renews it; ``xnatctl.transfers`` streams files down and up; ``xnatctl.replies`` turns an
error reply into one of the ``planner.errors`` classes, carrying XNAT's own reason and the
method and path (never the query string, never credentials). This module is the planner's
protocol on top.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from planner import restpaths as rest
from planner.backend import Params, Row
from planner.errors import MalformedReply
from planner.snapshot import SNAPSHOT_WORKERS
from xnatctl.login import GUEST_USER, SessionCallback
from xnatctl.replies import new_session_id, reason_from_body
from xnatctl.transfers import Transfers

__all__ = ["GUEST_USER", "XnatClient", "new_session_id", "reason_from_body"]


class XnatClient(Transfers):
    """One XNAT server, one ``requests.Session``, thread-safe for the planner's workers.

    Authentication: a cached session token (sent as the ``JSESSIONID`` cookie) and/or a user
    and password (see ``xnatctl.login``).
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify: bool | str = True,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        pool_size: int = SNAPSHOT_WORKERS + 2,
        retries: int = 4,
        retry_base_delay: float = 0.5,
        retry_max_delay: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        on_session: SessionCallback | None = None,
        profile: str | None = None,
    ) -> None:
        super().__init__(
            url,
            user=user,
            password=password,
            token=token,
            on_session=on_session,
            profile=profile,
            verify=verify,
            timeout=timeout,
            connect_timeout=connect_timeout,
            pool_size=pool_size,
            retries=retries,
            retry_base_delay=retry_base_delay,
            retry_max_delay=retry_max_delay,
            sleep=sleep,
        )

    def __enter__(self) -> XnatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"XnatClient({self._url!r}, user={self.user!r})"

    # -- the planner's protocol ----------------------------------------------------------
    def get_rows(self, path: str, params: Params | None = None) -> list[Row]:
        document = self.get_json(path, params)
        result = None
        if isinstance(document, dict):
            result_set = document.get("ResultSet")
            if isinstance(result_set, dict):
                result = result_set.get("Result")
        if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
            raise MalformedReply(
                f"GET {path}: expected an XNAT listing (ResultSet JSON), got "
                f"{type(document).__name__}",
            )
        return [Row(row) for row in result]

    def get_json(self, path: str, params: Params | None = None) -> Any:
        merged = {**(params or {}), "format": "json"}
        response = self._send("GET", path, merged)
        try:
            return response.json()
        except ValueError:
            raise MalformedReply(
                f"GET {path}: expected JSON, got {response.headers.get('Content-Type', '?')} "
                f"({reason_from_body(response.text)[:80]!r})",
                status=response.status_code,
            ) from None

    def get_text(self, path: str, params: Params | None = None) -> str:
        return self._send("GET", path, params).text

    def request_text(
        self,
        method: str,
        path: str,
        params: Params | None = None,
        *,
        data: bytes | str | Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> str:
        payload = dict(data) if isinstance(data, Mapping) else data
        return self._send(
            method, path, params, data=payload, headers=headers, idempotent=idempotent
        ).text

    # -- helpers beyond the protocol -----------------------------------------------------
    def whoami(self) -> str:
        return self.get_text(rest.WHOAMI).strip()

    def build_info(self) -> dict[str, str]:
        info = self.get_json(rest.BUILD_INFO)
        if not isinstance(info, dict):
            raise MalformedReply("GET /xapi/siteConfig/buildInfo: expected a JSON object")
        return {str(k): "" if v is None else str(v) for k, v in info.items()}

    def server_version(self) -> str:
        return self.build_info().get("version", "")
