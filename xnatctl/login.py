"""Who a client's requests run as: the XNAT session (a ``JSESSIONID`` token), opened with a
user and password, renewed when the server refuses it, and checked when a reply comes in a
session other than ours.

A site that does not require a login never refuses a token: it runs the request as guest in
a new session. A reply that sets a new session cookie is therefore checked once
(``GET /xapi/users/username`` in that new session): ``guest`` means our session is gone and
is treated like a 401; a real user means the server only renamed our session, which is then
kept. Replies without a new cookie cost nothing extra, 404s included.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import requests

from planner import restpaths as rest
from planner.backend import Params
from planner.errors import (
    AuthenticationFailed,
    BackendError,
    BadRequest,
    NotFound,
    not_xnat_because,
)
from xnatctl.errors import LoginRefused, NoCredentials, SessionExpired
from xnatctl.replies import SESSION_COOKIE, SessionReplaced
from xnatctl.transport import IDEMPOTENT, HttpTransport

__all__ = ["GUEST_USER", "SessionAuth", "SessionCallback"]

log = logging.getLogger("xnatctl.http")

# The account XNAT runs requests as when they carry no live session and the site does not
# require a login (Users.DEFAULT_GUEST_USERNAME); nobody can log in as it.
GUEST_USER = "guest"
GUEST_REASON = "the server answered as guest: the session has ended"
_TOKEN = re.compile(r"^[A-Za-z0-9._-]{8,200}$")

SessionCallback = Callable[[str], None]


class SessionAuth(HttpTransport):
    """Requests sent in our session: log in, log out, renew, and ``_send`` with retries.

    With a password and no token, the session is opened on first use; when the server
    refuses a token and a password is at hand, it logs in again once, tells ``on_session``
    (so the cache can be updated) and retries the request.
    """

    def __init__(
        self,
        url: str,
        *,
        user: str | None,
        password: str | None,
        token: str | None,
        on_session: SessionCallback | None,
        profile: str | None,
        **transport: Any,
    ) -> None:
        super().__init__(url, **transport)
        self.user = user
        self._password = password
        self._token = token
        self._on_session = on_session
        self.profile = profile
        self._auth_lock = threading.Lock()

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def has_password(self) -> bool:
        return self._password is not None

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
                rest.SESSION,
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
            self._send("DELETE", rest.SESSION, None, renew=False)
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
                who = self._send_once("GET", rest.WHOAMI, None, None, None, False, None, session_id)
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
        with_token = use_token and auth is None
        if with_token:
            self._ensure_session()
        renewed = False
        while True:
            token = self._token if with_token else None

            def attempt(token: str | None = token) -> requests.Response:
                body = body_factory() if body_factory is not None else data
                return self._send_once(
                    method, path, params, body, headers, stream, auth, token, read_timeout
                )

            try:
                return self._retrying(method, path, idempotent)(attempt)
            except AuthenticationFailed as exc:
                self._refused(exc, method, path, auth, token)
                status, reason = exc.status, exc.reason
            except SessionReplaced as replaced:
                kept = self._in_new_session(replaced, method, path, token, idempotent, renew)
                if kept is not None:
                    return kept
                status, reason = replaced.response.status_code, GUEST_REASON
            if renew and not renewed and self._renew(token):
                renewed = True
                continue
            raise self._session_expired(status, reason) from None

    def _refused(
        self,
        exc: AuthenticationFailed,
        method: str,
        path: str,
        auth: tuple[str, str] | None,
        token: str | None,
    ) -> None:
        """Raise what a 401 means when renewing the session cannot help: a login refused,
        or a request sent without a session to a site that wants one."""
        if auth is not None:
            raise LoginRefused(
                f"login to {self._url} as {self.user!r} was refused (wrong user name or password)",
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
            raise exc

    def _in_new_session(
        self,
        replaced: SessionReplaced,
        method: str,
        path: str,
        token: str | None,
        idempotent: bool,
        renew: bool,
    ) -> requests.Response | None:
        """The reply to keep from a request answered in a new session, or None when the
        session must be renewed and the request sent again.

        The reply is kept when the new session is ours after all (renamed), and when a
        write was done as guest that is not safe to repeat (then the session is renewed for
        the requests that follow).
        """
        response = replaced.response
        if renew and self._session_kept(token, replaced.session_id):
            return self._accept(method, path, response)
        status = response.status_code
        if status < 400 and not idempotent:
            log.warning("%s %s ran in a new session: %s", method, path, GUEST_REASON)
            if renew and self._renew(token):
                return response
            response.close()
            raise self._session_expired(status, GUEST_REASON) from None
        response.close()
        return None

    def _no_credentials_message(self, method: str, path: str) -> str:
        if self.profile:
            return (
                f"{method} {path}: the server at {self._url} wants credentials and profile "
                f"'{self.profile}' has no session; run \"xnatctl auth login -p {self.profile}\" "
                "or set XNATCTL_USER and XNATCTL_PASSWORD"
            )
        return f"{method} {path}: the server at {self._url} wants credentials and none were given"
