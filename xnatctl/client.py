"""The XNAT REST client: ``planner.backend.XnatBackend`` over HTTP.

Small retries live here, next to the request: connection failures, timeouts, 502/503/504 and
429 are retried for idempotent requests only. Everything else becomes one of the
``planner.errors`` classes, carrying XNAT's own reason and the method and path (never the
query string, never credentials).
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from http.cookiejar import DefaultCookiePolicy
from pathlib import Path
from typing import Any, BinaryIO

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

from planner.backend import ByteCallback, Params, Row
from planner.errors import (
    AuthenticationFailed,
    BackendError,
    BadRequest,
    Conflict,
    MalformedReply,
    NetworkError,
    NotFound,
    PermissionDenied,
    ServerError,
    not_xnat_because,
)
from planner.snapshot import SNAPSHOT_WORKERS
from xnatctl import __version__
from xnatctl.errors import LoginRefused, NoCredentials, RateLimited, SessionExpired

log = logging.getLogger("xnatctl.http")

CHUNK = 1024 * 1024
IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_REASON = 300
SESSION_COOKIE = "JSESSIONID"
# The account XNAT runs requests as when they carry no live session and the site does not
# require a login (Users.DEFAULT_GUEST_USERNAME); nobody can log in as it.
GUEST_USER = "guest"
_H3 = re.compile(r"<h3[^>]*>(.*?)</h3>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{8,200}$")

SessionCallback = Callable[[str], None]


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


def _describe_connection_error(exc: BaseException) -> str:
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


class XnatClient:
    """One XNAT server, one ``requests.Session``, thread-safe for the planner's workers.

    Authentication: a cached session token (sent as the ``JSESSIONID`` cookie) and/or a user
    and password. With a password and no token, the client opens a session on first use;
    when the server refuses a token and a password is at hand, it logs in again once,
    tells ``on_session`` (so the cache can be updated) and retries the request.

    A site that does not require a login never refuses a token: it runs the request as
    guest in a new session. A reply that sets a new session cookie is therefore checked once
    (``GET /xapi/users/username`` in that new session): ``guest`` means our session is gone
    and is treated like a 401; a real user means the server only renamed our session, which
    is then kept. Replies without a new cookie cost nothing extra, 404s included.
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
        self._url = url.rstrip("/")
        self.user = user
        self._password = password
        self._token = token
        self._on_session = on_session
        self.profile = profile
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
        self._auth_lock = threading.Lock()
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

    # -- identity ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._url

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def has_password(self) -> bool:
        return self._password is not None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> XnatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"XnatClient({self._url!r}, user={self.user!r})"

    # -- sessions ------------------------------------------------------------------------
    def login(self) -> str:
        """Open a session with the user and password; return (and keep) its token.

        Uses ``GET /data/JSESSION`` (XNAT treats it like POST) so read-only commands such as
        the drift check never send a write method.
        """
        if self.user is None or self._password is None:
            raise AuthenticationFailed(
                f"no user and password to log in to {self._url}", status=None
            )
        try:
            response = self._send(
                "GET",
                "/data/JSESSION",
                None,
                auth=(self.user, self._password),
                use_token=False,
                idempotent=True,
            )
        except (NotFound, BadRequest) as exc:  # every XNAT serves /data/JSESSION
            raise not_xnat_because(self._url, "GET /data/JSESSION", exc) from None
        token = response.cookies.get(SESSION_COOKIE) or response.text.strip()
        if not _TOKEN.match(token or ""):
            raise not_xnat_because(self._url, "GET /data/JSESSION (no session id)")
        self._token = token
        return token

    def logout(self) -> None:
        """End the server session; a session the server already forgot is fine."""
        if not self._token:
            return
        try:
            self._send("DELETE", "/data/JSESSION", None, renew=False)
        except AuthenticationFailed:
            pass
        finally:
            self._token = None

    def _renew(self, failed_token: str | None) -> bool:
        """Log in again unless another thread already did; False when we cannot."""
        if self._password is None or self.user is None:
            return False
        with self._auth_lock:
            if self._token != failed_token and self._token is not None:
                return True
            token = self.login()
        if self._on_session is not None:
            self._on_session(token)
        return True

    def _session_kept(self, sent: str | None, session_id: str) -> bool:
        """Whether ``session_id``, set by a reply to a request in session ``sent``, is ours.

        True only when the server answers in it as a user other than guest (it renamed our
        session); then it becomes the token. False when it is guest's (ours expired), and
        also when another thread has already replaced the token (retry with that one).
        """
        with self._auth_lock:
            if self._token != sent:
                return False
            try:
                who = self._send_once(
                    "GET", "/xapi/users/username", None, None, None, False, None, session_id
                )
            except (BackendError, SessionReplaced):
                return False
            name = who.text.strip()
            if not name or name == GUEST_USER:
                return False
            self._token = session_id
        if self._on_session is not None:
            self._on_session(session_id)
        return True

    def _session_expired(self, status: int | None, reason: str) -> SessionExpired:
        if self.profile:
            message = (
                f"Session for profile '{self.profile}' expired or invalid; run "
                f'"xnatctl auth login -p {self.profile}"'
            )
        else:
            message = f"the session for {self._url} expired or is invalid; log in again"
        return SessionExpired(message, status=status, reason=reason)

    def _ensure_session(self) -> None:
        if self._token is None and self._password is not None and self.user is not None:
            with self._auth_lock:
                if self._token is None:
                    self.login()

    # -- the request core ----------------------------------------------------------------
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

    def _send(
        self,
        method: str,
        path: str,
        params: Params | None,
        *,
        data: Any = None,
        body_factory: Callable[[], Any] | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
        auth: tuple[str, str] | None = None,
        use_token: bool = True,
        renew: bool = True,
        read_timeout: float | None = None,
    ) -> requests.Response:
        """Send with retries; return a 2xx/3xx response or raise a ``planner.errors`` class."""
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT
        if use_token and auth is None:
            self._ensure_session()
        renewed = False
        while True:
            token = self._token if (use_token and auth is None) else None

            def attempt(token: str | None = token) -> requests.Response:
                body = body_factory() if body_factory is not None else data
                return self._send_once(
                    method, path, params, body, headers, stream, auth, token, read_timeout
                )

            retrying = Retrying(
                stop=stop_after_attempt(self.retries if idempotent else 1),
                sleep=self._sleep,
                wait=self._wait,
                retry=retry_if_exception(self._retryable),
                reraise=True,
                before_sleep=lambda s: log.info(
                    "%s %s failed (%s); retrying", method, path, s.outcome.exception()
                ),
            )
            try:
                return retrying(attempt)
            except AuthenticationFailed as exc:
                if auth is not None:
                    raise LoginRefused(
                        f"login to {self._url} as {self.user!r} was refused (wrong user name "
                        "or password)",
                        status=exc.status,
                        reason=exc.reason,
                    ) from None
                if token is None:
                    if self.user is None or self._password is None:
                        raise NoCredentials(
                            self._no_credentials_message(method, path),
                            status=exc.status,
                            reason=exc.reason,
                        ) from None
                    raise
                if renew and not renewed and self._renew(token):
                    renewed = True
                    continue
                raise self._session_expired(exc.status, exc.reason) from None
            except SessionReplaced as replaced:
                response = replaced.response
                if renew and self._session_kept(token, replaced.session_id):
                    return self._accept(method, path, response)
                status = response.status_code
                reason = "the server answered as guest: the session has ended"
                if status < 400 and not idempotent:
                    # Done as guest and not safe to repeat: keep the reply, renew for the rest.
                    log.warning("%s %s ran in a new session: %s", method, path, reason)
                    if renew and self._renew(token):
                        return response
                    response.close()
                    raise self._session_expired(status, reason) from None
                response.close()
                if renew and not renewed and self._renew(token):
                    renewed = True
                    continue
                raise self._session_expired(status, reason) from None

    def _accept(self, method: str, path: str, response: requests.Response) -> requests.Response:
        """A reply to hand back as it is: raise for an error status like ``_send_once``."""
        if response.status_code >= 400:
            self._raise_for(method, path, response)
        return response

    def _no_credentials_message(self, method: str, path: str) -> str:
        if self.profile:
            return (
                f"{method} {path}: the server at {self._url} wants credentials and profile "
                f"'{self.profile}' has no session; run \"xnatctl auth login -p {self.profile}\" "
                "or set XNATCTL_USER and XNATCTL_PASSWORD"
            )
        return f"{method} {path}: the server at {self._url} wants credentials and none were given"

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
            cause = _describe_connection_error(exc)
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

    def _raise_for(self, method: str, path: str, response: requests.Response) -> None:
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

    # -- helpers beyond the protocol -----------------------------------------------------
    def whoami(self) -> str:
        return self.get_text("/xapi/users/username").strip()

    def build_info(self) -> dict[str, str]:
        info = self.get_json("/xapi/siteConfig/buildInfo")
        if not isinstance(info, dict):
            raise MalformedReply("GET /xapi/siteConfig/buildInfo: expected a JSON object")
        return {str(k): "" if v is None else str(v) for k, v in info.items()}

    def server_version(self) -> str:
        return self.build_info().get("version", "")
