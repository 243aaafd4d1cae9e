"""One XNAT server's HTTP transport: a pooled ``requests.Session``, one request at a time,
and the small retries that live next to the request.

Connection failures, timeouts, 502/503/504 and 429 are retried for idempotent requests only,
with exponential backoff (or the server's ``Retry-After``). Authentication is not this
module's business: a request carries the session token it is given
(``xnatctl.login`` decides which).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from planner.backend import Params
from planner.errors import BackendError, NetworkError
from xnatctl import __version__
from xnatctl.replies import (
    RETRY_STATUSES,
    SESSION_COOKIE,
    SessionReplaced,
    describe_connection_error,
    new_session_id,
    raise_for,
)

__all__ = ["IDEMPOTENT", "HttpTransport"]

log = logging.getLogger("xnatctl.http")

IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})


class HttpTransport:
    """The session, its timeouts and retry policy, and sending one request."""

    def __init__(
        self,
        url: str,
        *,
        verify: bool | str,
        timeout: float,
        connect_timeout: float,
        pool_size: int,
        retries: int,
        retry_base_delay: float,
        retry_max_delay: float,
        sleep: Callable[[float], None],
    ) -> None:
        self._url = url.rstrip("/")
        self.verify = verify
        self.timeout = (float(connect_timeout), float(timeout))
        self.retries = max(1, int(retries))
        self.retry_base_delay = float(retry_base_delay)
        self.retry_max_delay = float(retry_max_delay)
        self._sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=self.retry_base_delay,
            max=self.retry_max_delay,
            jitter=self.retry_base_delay,
        )
        self.session = requests.Session()
        # The token is sent explicitly; cookies the server sets are never kept or logged.
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self.session.trust_env = True
        self.session.verify = verify
        if verify is False:  # the user chose this in the profile; one warning there is enough
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.session.headers["User-Agent"] = f"xnatctl/{__version__}"
        # A snapshot's workers share this one pool; a smaller pool would throw a connection
        # away after nearly every reply and open a new one for the next request.
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(2, int(pool_size)))
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        self.session.close()

    def _full_url(self, path: str) -> str:
        if not path.startswith("/"):
            path = "/" + path
        return self._url + path

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return min(float(after), self.retry_max_delay)
        return self._backoff(state)

    @staticmethod
    def _retryable(exc: BaseException) -> bool:
        if isinstance(exc, NetworkError):
            return True
        return isinstance(exc, BackendError) and exc.status in RETRY_STATUSES

    def _retrying(self, method: str, path: str, idempotent: bool) -> Retrying:
        """The small retries: several attempts for an idempotent request, else one."""
        return Retrying(
            stop=stop_after_attempt(self.retries if idempotent else 1),
            sleep=self._sleep,
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            reraise=True,
            before_sleep=lambda s: log.info(
                "%s %s failed (%s); retrying", method, path, s.outcome.exception()
            ),
        )

    def _accept(self, method: str, path: str, response: requests.Response) -> requests.Response:
        """A reply to hand back as it is: raise for an error status like ``_send_once``."""
        if response.status_code >= 400:
            raise_for(method, path, response)
        return response

    def _send_once(
        self,
        method: str,
        path: str,
        params: Params | None,
        body: Any,
        headers: Mapping[str, str] | None,
        stream: bool,
        auth: tuple[str, str] | None,
        token: str | None,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """One request; a 2xx/3xx reply, or a ``planner.errors`` class, or
        ``SessionReplaced`` when the reply came in a session other than ``token``."""
        all_headers = dict(headers or {})
        timeout = self.timeout if read_timeout is None else (self.timeout[0], read_timeout)
        if token:
            all_headers["Cookie"] = f"{SESSION_COOKIE}={token}"
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                self._full_url(path),
                params=dict(params) if params else None,
                data=body,
                headers=all_headers,
                stream=stream,
                auth=auth,
                timeout=timeout,
                allow_redirects=True,
            )
        except requests.exceptions.ReadTimeout:
            raise NetworkError(
                f"{method} {path}: no reply from {self._url} within {timeout[1]:g} s; "
                "raise the profile's timeout if the server is slow"
            ) from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            cause = describe_connection_error(exc)
            raise NetworkError(
                f"cannot reach {self._url} ({cause}); check the URL and that the server is up"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise NetworkError(f"{method} {path}: request failed ({type(exc).__name__})") from None
        elapsed = (time.monotonic() - started) * 1000
        log.debug("%s %s -> %s (%.0f ms)", method, path, response.status_code, elapsed)
        if response.status_code != 401:  # a 401 says plainly that the session is gone
            replaced = new_session_id(response, token)
            if replaced is not None:
                raise SessionReplaced(replaced, response)
        return self._accept(method, path, response)
