"""The WSGI application: authentication, path normalisation, dispatch, error pages."""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from xnatsim import anonymize, listing, schemas
from xnatsim.archiver import Archiver
from xnatsim.auth import GROUP_OF_ROLE, GUEST, UUID_FORMAT, Auth
from xnatsim.handlers import DataHandlers
from xnatsim.paths import check_path
from xnatsim.resolve import Resolver
from xnatsim.services import Services
from xnatsim.store import Store
from xnatsim.web import REASONS, HTTPError, Request, Response

log = logging.getLogger("xnatsim")

VERSION = "1.8.11"
BUILD_INFO = {
    "version": VERSION,
    "buildNumber": "8871",
    "buildDate": "Tue Jan 09 10:00:00 UTC 2024",
    "sha": "a1b2c3d",
    "commit": "a1b2c3d",
    "isDirty": "false",
    "branch": "master",
}
OPEN_PATHS = ("/xapi/siteConfig/buildInfo",)
REALM = [("WWW-Authenticate", 'Basic realm="XNAT"')]


def version_at_least(version: str, *wanted: int) -> bool:
    numbers = []
    for part in version.split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers) >= wanted


def normalise(path: str) -> str:
    """Refuse dot segments (see `paths.check_path`), then fold the `/REST` and
    `/data/archive` spellings onto `/data`."""
    check_path(path)
    path = "/" + path.strip("/") if path != "/" else "/"
    if path == "/REST" or path.startswith("/REST/"):
        path = "/data" + path[5:]
    if path == "/data/archive" or path.startswith("/data/archive/"):
        path = "/data" + path[13:]
    return path or "/"


class XnatApp:
    def __init__(
        self, store: Store, auth: Auth, settings: dict[str, Any], admin_hooks: Any
    ) -> None:
        self.store = store
        self.auth = auth
        self.settings = settings
        store.default_prearchive_code = int(settings.get("default_prearchive_code", 4))
        self.archiver = Archiver(
            store,
            prevent_cross_modality_merge=bool(settings.get("prevent_cross_modality_merge", True)),
            use_sop_instance_uid=bool(settings.get("use_sop_instance_uid", True)),
        )
        self.resolver = Resolver(store, auth)
        self.data = DataHandlers(store, auth, bool(settings.get("checksums", True)))
        self.version = str(settings.get("version") or VERSION)
        self.build = {**BUILD_INFO, "version": self.version}
        self.services = Services(
            store,
            auth,
            self.archiver,
            dicom_zip_archives=version_at_least(self.version, 1, 8, 10),
            settings=settings,
        )
        self.admin_hooks = admin_hooks
        # SiteConfigPreferences.getRequireLogin (default true). When false, requests without
        # credentials run as the guest account instead of getting 401.
        self.require_login = bool(settings.get("require_login", True))

    # -- WSGI ----------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        req = Request(environ)
        head = req.method == "HEAD"
        if head:
            req.method = "GET"
        try:
            resp = self.handle(req)
        except HTTPError as exc:
            resp = Response.error(exc.status, exc.reason)
            resp.headers += exc.headers
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.exception("Unhandled error on %s %s", req.method, req.path)
                resp = Response.error(500, f"Internal server error ({type(exc).__name__})")
            else:  # the staging area is removed by the handler; nothing was committed
                resp = Response.error(507, "Not enough disk space on the server")
        except Exception as exc:  # never a traceback to the client
            log.exception("Unhandled error on %s %s", req.method, req.path)
            resp = Response.error(500, f"Internal server error ({type(exc).__name__})")
        if req.user is not None:
            environ["xnatsim.user"] = req.user
        headers = [("Content-Type", resp.content_type), *resp.headers]
        headers += [("Set-Cookie", c) for c in req.set_cookies]
        if isinstance(resp.body, bytes):
            headers.append(("Content-Length", str(len(resp.body))))
            body: Iterable[bytes] = [resp.body]
        else:
            body = resp.body
        if head:
            close = getattr(body, "close", None)
            if close is not None:
                close()
            body = []
        start_response(f"{resp.status} {REASONS.get(resp.status, 'Status')}", headers)
        return body

    # -- authentication ------------------------------------------------------------------
    def authenticate(self, req: Request, required: bool) -> str | None:
        """The user a request runs as.

        Bad Basic credentials are always 401 (`XnatBasicAuthenticationFilter` sends the error
        whatever the site settings). Without credentials, or with a session that has expired,
        a site that requires login answers 401 (`XnatSecureGuard.authenticate`); one that
        does not runs the request as guest, so data that exists but is not guest's gives
        403/404, never 401."""
        header = req.environ.get("HTTP_AUTHORIZATION", "")
        sid = req.cookies.get("JSESSIONID", "")
        user: str | None = None
        if header.lower().startswith("basic "):
            user = self.auth.verify_basic(header)
            if user is None:
                raise HTTPError(401, "Login attempt failed. Please try again.", REALM)
            session_user = self.auth.session_user(sid) if sid else None
            if session_user != user:
                sid = self.auth.new_session(user)
                self._set_session_cookie(req, sid)
        elif sid:
            user = self.auth.session_user(sid)
        if user is None and required:
            if self.require_login:
                raise HTTPError(401, "Authentication required", REALM)
            # XnatExpiredPasswordFilter calls request.getSession() on every request, so a
            # request without a live session gets a new one and the container sets its
            # JSESSIONID cookie: the client can tell that its own session is gone.
            user = GUEST
            self._set_session_cookie(req, self.auth.new_session(GUEST))
        if user is not None:
            req.user = user
        if user is not None:
            timeout_ms = int(self.auth.session_timeout * 1000)
            req.set_cookies.append(
                f'SESSION_EXPIRATION_TIME="{int(time.time() * 1000)},{timeout_ms}"; Path=/'
            )
        return user

    def _set_session_cookie(self, req: Request, sid: str) -> None:
        req.set_cookies.append(f"JSESSIONID={sid}; Path=/; HttpOnly")

    # -- dispatch ------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        path = normalise(req.path)
        if path == "/":
            self.authenticate(req, required=False)
            return Response.html(
                "<html><head><title>XNAT</title></head><body><h1>XNAT</h1></body></html>"
            )
        if path.startswith(OPEN_PATHS):
            return self.build_info(path)
        if path in ("/data/services/auth",) and req.method in ("PUT", "POST"):
            return self.form_login(req)
        if path.startswith("/xnatsim/"):
            user = self.authenticate(req, required=True)
            if not self.auth.is_admin(user):
                raise HTTPError(403, "Only site administrators may use the xnatsim endpoints")
            return self.admin_hooks.handle(req, path)
        if not (path.startswith("/data/") or path.startswith("/xapi/") or path == "/data"):
            raise HTTPError(404, f"Not found: {req.path}")
        user = self.authenticate(req, required=True)
        assert user is not None
        if path.startswith("/xapi/"):
            return self.xapi(req, path, user)
        return self.data_path(req, path, user)

    def build_info(self, path: str) -> Response:
        tail = path[len("/xapi/siteConfig/buildInfo") :].strip("/")
        if not tail:
            return Response.json(self.build)
        if tail in self.build:
            return Response.text(self.build[tail])
        raise HTTPError(404, f"No build property {tail}")

    def form_login(self, req: Request) -> Response:
        form = req.form()
        user = self.auth.verify_password(form.get("username", ""), form.get("password", ""))
        if user is None:
            raise HTTPError(401, "Login attempt failed. Please try again.")
        sid = self.auth.new_session(user)
        self._set_session_cookie(req, sid)
        req.user = user
        return Response.text(sid)

    def data_path(self, req: Request, path: str, user: str) -> Response:
        segs = [s for s in path.split("/")[2:] if s]
        if not segs:
            raise HTTPError(404, "Not found")
        head = segs[0]
        m = req.method
        if head == "JSESSION" and len(segs) == 2 and m == "DELETE":
            # grxnat's logout: DELETE /data/JSESSION/{id} ends that session.
            if self.auth.session_user(segs[1]) == user:
                self.auth.end_session(segs[1])
            req.set_cookies.append("JSESSIONID=; Path=/; Max-Age=0")
            return Response(200, b"")
        if head == "JSESSION" and len(segs) == 1:
            sid = req.cookies.get("JSESSIONID", "")
            if m == "DELETE":
                if sid:
                    self.auth.end_session(sid)
                req.set_cookies.append("JSESSIONID=; Path=/; Max-Age=0")
                return Response(200, b"")
            # The session made (or reused) by authenticate() is the one to report.
            for cookie in req.set_cookies:
                if cookie.startswith("JSESSIONID="):
                    sid = cookie.split(";", 1)[0].split("=", 1)[1]
            if not sid or self.auth.session_user(sid) != user:
                sid = self.auth.new_session(user)
                self._set_session_cookie(req, sid)
            return Response.text(sid)
        if head == "auth" and len(segs) == 1:
            return Response.text(f"User '{user}' is logged in")
        if head == "version":
            raise HTTPError(404, "Not found")
        if head == "services":
            return self.service(req, segs[1:], user)
        if head == "prearchive":
            return self.services.prearchive(req, segs[1:], user)
        if head == "config" and segs[1:] == ["anon", "script"] and m == "GET":
            return self.site_anon_script(req)
        if head == "search" and len(segs) >= 2 and segs[1] == "elements":
            return self.search_elements(req, segs[2:])
        if head in ("projects", "subjects", "experiments"):
            target = self.resolver.resolve(segs, user)
            return self.data.dispatch(req, target, user)
        raise HTTPError(404, f"Not found: {req.path}")

    def site_anon_script(self, req: Request) -> Response:
        """`GET /data/config/anon/script`: the site script as XNAT's config service stores it
        (`ConfigResource`); its `id` is the code DicomEdit records in each anonymized file."""
        enabled = bool(self.settings.get("anonymize", True))
        row = {
            "id": anonymize.SITE_SCRIPT_ID,
            "tool": "anon",
            "path": "script",
            "project": "",
            "user": "admin",
            "reason": "Initial site-wide anonymization script",
            "contents": anonymize.DEFAULT_SCRIPT,
            "status": "enabled" if enabled else "disabled",
            "version": "1",
            "unversioned": "false",
        }
        return listing.render_table(req, [row], list(row))

    def service(self, req: Request, segs: list[str], user: str) -> Response:
        name = segs[0] if segs else ""
        if name == "import":
            return self.services.import_(req, user)
        if name == "archive":
            return self.services.archive(req, user)
        if name == "prearchive":
            return self.services.prearchive_service(req, segs[1:], user)
        if name == "tokens" and len(segs) >= 2:
            return self.tokens(segs[1:], user)
        raise HTTPError(404, f"Unknown service: {name}")

    def tokens(self, segs: list[str], user: str) -> Response:
        """`/data/services/tokens/{OPERATION}[/user/{USERNAME} | /{TOKEN}[/{SECRET}]]`, as
        `AliasTokenRestlet` (routes in `XNATApplication`)."""
        op, rest = segs[0], segs[1:]
        username, token_id, secret = user, "", ""
        if len(rest) == 2 and rest[0] == "user":
            username = rest[1]
        elif len(rest) in (1, 2):
            token_id = rest[0]
            secret = rest[1] if len(rest) == 2 else ""
        elif rest:
            raise HTTPError(404, "Not found")
        token = None
        if token_id:
            token = self.auth.locate_token(token_id) if UUID_FORMAT.fullmatch(token_id) else None
            if token is None:
                what = "alias" if UUID_FORMAT.fullmatch(token_id) else "ID"
                raise HTTPError(404, f"Can't find an alias token with the {what} {token_id}")
        if not username or username == GUEST:
            raise HTTPError(403, "The guest user can't request alias tokens")
        admin = self.auth.is_admin(user)
        if (username != user or (token is not None and token["username"] != user)) and not admin:
            raise HTTPError(
                403,
                "Non-admin users can only request operations on alias tokens for their own account",
            )
        if op == "issue":
            if self.auth.user(username) is None:
                raise HTTPError(400, f"An error occurred retrieving the user: {username}")
            return Response.json(self.auth.issue_token(username))
        if op == "show":
            return Response.json(
                [
                    {
                        "alias": t["alias"],
                        "xdatUserId": t["username"],
                        "estimatedExpirationTime": int(t["expires"] * 1000),
                        "singleUse": False,
                        "enabled": True,
                    }
                    for t in self.auth.tokens_of(username)
                ]
            )
        if op == "validate":
            if not token_id or not secret:
                raise HTTPError(401, "You must specify both token and secret to validate a token.")
            return Response.json({"valid": self.auth.validate_token(token_id, secret)})
        if op == "invalidate":
            if token_id:
                self.auth.invalidate_token(token_id)
            return Response.json({"result": "OK"})
        raise HTTPError(400, f"Unknown operation: {op}")

    def search_elements(self, req: Request, segs: list[str]) -> Response:
        if not segs:
            rows = [
                {"ELEMENT_NAME": n, "SINGULAR": s, "PLURAL": p, "COUNT": "0", "SECURED": "true"}
                for n, s, p in schemas.ELEMENTS
            ]
            return listing.render(
                req, rows, ["ELEMENT_NAME", "SINGULAR", "PLURAL", "COUNT", "SECURED"]
            )
        element = segs[0]
        rows = [
            {
                "FIELD_ID": f,
                "HEADER": f.lower(),
                "SUMMARY": f,
                "TYPE": "string",
                "REQUIRES_VALUE": "false",
                "DESC": f,
                "ELEMENT_NAME": element,
                "SRC": "0",
            }
            for f in schemas.ELEMENT_FIELDS
        ]
        return listing.render(
            req,
            rows,
            [
                "FIELD_ID",
                "HEADER",
                "SUMMARY",
                "TYPE",
                "REQUIRES_VALUE",
                "DESC",
                "ELEMENT_NAME",
                "SRC",
            ],
        )

    # -- /xapi ---------------------------------------------------------------------------
    def xapi(self, req: Request, path: str, user: str) -> Response:
        segs = [s for s in path.split("/")[2:] if s]
        m = req.method
        if segs == ["schemas"] and m == "GET":
            return Response.json(schemas.SCHEMA_NAMES)
        if len(segs) == 2 and segs[0] == "schemas" and m == "GET":
            name = segs[1].removesuffix(".xsd")
            if name not in schemas.SCHEMAS:
                raise HTTPError(404, f"No schema {name}")
            return Response(200, schemas.SCHEMAS[name].encode(), "application/xml")
        if segs == ["users", "username"] and m == "GET":
            return Response.text(user)
        if segs == ["access", "projects"] and m == "GET":
            return Response.json(self.access_projects(user))
        if segs and segs[0] == "users":
            return self.xapi_users(req, segs[1:], user)
        if segs and segs[0] == "anonymize":
            return self.xapi_anonymize(req, segs[1:], user)
        raise HTTPError(404, f"Not found: {req.path}")

    def xapi_anonymize(self, req: Request, segs: list[str], user: str) -> Response:
        """The site-wide parts of XNAT's `AnonymizeApi` (`/xapi/anonymize/...`)."""
        m = req.method
        if segs in (["default"], ["site"]) and m == "GET":
            return Response.text(anonymize.DEFAULT_SCRIPT)
        if segs == ["site", "enabled"] and m == "GET":
            return Response.json(bool(self.settings.get("anonymize", True)))
        if segs == ["site", "enabled"] and m == "PUT":
            if not self.auth.is_admin(user):
                raise HTTPError(403, "Only site administrators may change anonymization")
            value = (req.params.get("enable") or "true").strip().lower()
            self.settings["anonymize"] = value == "true"
            return Response(200, b"")
        raise HTTPError(404, f"Not found: {req.path}")

    def access_projects(self, user: str) -> list[dict]:
        out = []
        for p in self.store.query("SELECT * FROM projects ORDER BY id"):
            acc = self.auth.access(user, p)
            if not acc.read:
                continue
            role = acc.role
            out.append(
                {
                    "ID": p["id"],
                    "secondary_ID": p["secondary_id"],
                    "name": p["name"],
                    "description": p["description"],
                    "URI": f"/data/projects/{p['id']}",
                    "role": GROUP_OF_ROLE.get(role, ""),
                }
            )
        return out

    def xapi_users(self, req: Request, segs: list[str], user: str) -> Response:
        m = req.method
        admin = self.auth.is_admin(user)
        if not segs and m == "GET":
            return Response.json(
                [
                    r["username"]
                    for r in self.store.query("SELECT username FROM users ORDER BY username")
                ]
            )
        if not segs and m == "POST":
            if not admin:
                raise HTTPError(403, "Only site administrators may create users")
            try:
                data = json.loads(b"".join(req.iter_body()) or b"{}")
            except ValueError:
                raise HTTPError(400, "The user must be a JSON object") from None
            if not isinstance(data, dict) or not data.get("username") or not data.get("password"):
                raise HTTPError(400, "A new user needs a username and a password")
            if self.auth.user(data["username"]) is not None:
                raise HTTPError(409, f"User {data['username']} already exists")
            self.auth.ensure_user(
                data["username"],
                data["password"],
                bool(data.get("admin", False)),
                email=data.get("email", ""),
                firstName=data.get("firstName", ""),
                lastName=data.get("lastName", ""),
            )
            return Response.json(self._user_json(data["username"]), 201)
        if len(segs) == 1 and m == "GET":
            if self.auth.user(segs[0]) is None:
                raise HTTPError(404, f"No user {segs[0]}")
            return Response.json(self._user_json(segs[0]))
        raise HTTPError(405 if len(segs) <= 1 else 404, "Unsupported users operation")

    def _user_json(self, name: str) -> dict:
        row = self.auth.user(name)
        return {
            "username": row["username"],
            "email": row["email"],
            "firstName": row["firstname"],
            "lastName": row["lastname"],
            "enabled": bool(row["enabled"]),
            "admin": bool(row["admin"]),
        }
