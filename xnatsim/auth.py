"""Users, roles, sessions, alias tokens and the access rules XNAT applies to projects."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from xnatsim.store import Store

ROLE_GROUPS = {"Owners": "owner", "Members": "member", "Collaborators": "collaborator"}
GROUP_OF_ROLE = {v: k for k, v in ROLE_GROUPS.items()}
TOKEN_LIFETIME = 2 * 24 * 3600
# The account XNAT gives unauthenticated requests when the site does not require a login
# (`Users.getGuest()`); it has no password, so nobody can log in as it.
GUEST = "guest"
UUID_FORMAT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def hash_password(password: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(8)
    digest = hashlib.sha256((salt + ":" + password).encode()).hexdigest()
    return f"{salt}${digest}"


def check_password(stored: str, password: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(stored, hash_password(password, salt))


def load_users(source: Path | list[dict] | None) -> list[dict]:
    """Read a users file (YAML or JSON list) or pass a list through."""
    if source is None:
        return []
    if isinstance(source, list):
        return source
    text = Path(source).read_text()
    try:
        data = json.loads(text)
    except ValueError:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(text)
    if not isinstance(data, list):
        raise ValueError(f"{source}: a users file must hold a list of users")
    return data


@dataclass
class Access:
    """What one user may do with one project.

    XNAT's default groups (`BaseXnatProjectdata` group setup): owners create, read, edit and
    delete; members create, read and edit but do not delete; collaborators only read. A
    protected project is readable as a project by everyone (guest holds read on
    `xnat:projectData/ID`, `PermissionsServiceImpl.setDefaultAccessibility`), its data by
    nobody outside it; a private project is invisible to outsiders."""

    visible: bool  # the project itself is found (not 404)
    read: bool  # its data is found
    write: bool
    owner: bool  # owners (and site admins) may also delete
    role: str  # owner/member/collaborator or ""


class Auth:
    def __init__(self, store: Store, session_timeout: float) -> None:
        self.store = store
        self.session_timeout = session_timeout
        self._password_cache: dict[tuple[str, str], bool] = {}

    # -- users ---------------------------------------------------------------------------
    def ensure_user(self, username: str, password: str, admin: bool = False, **extra: str) -> None:
        with self.store.write() as c:
            row = c.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()
            if row is None:
                c.execute(
                    "INSERT INTO users (username, password, admin, email, firstname, lastname)"
                    " VALUES (?,?,?,?,?,?)",
                    (
                        username,
                        hash_password(password),
                        int(admin),
                        extra.get("email", ""),
                        extra.get("firstName", ""),
                        extra.get("lastName", ""),
                    ),
                )
            else:
                c.execute(
                    "UPDATE users SET password = ?, admin = ? WHERE username = ?",
                    (hash_password(password), int(admin), username),
                )
        self._password_cache.clear()

    def user(self, username: str):
        return self.store.one("SELECT * FROM users WHERE username = ?", (username,))

    def is_admin(self, username: str | None) -> bool:
        if not username or username == GUEST:
            return False
        row = self.user(username)
        return bool(row and row["admin"])

    def set_role(self, project: str, username: str, role: str | None) -> None:
        with self.store.write() as c:
            if role is None:
                c.execute(
                    "DELETE FROM roles WHERE project = ? AND username = ?", (project, username)
                )
            else:
                c.execute("INSERT OR REPLACE INTO roles VALUES (?,?,?)", (project, username, role))

    def role(self, project: str, username: str) -> str:
        row = self.store.one(
            "SELECT role FROM roles WHERE project = ? AND username = ?", (project, username)
        )
        return row["role"] if row else ""

    def access(self, username: str | None, project_row) -> Access:
        if project_row is None:
            return Access(False, False, False, False, "")
        if self.is_admin(username):
            return Access(True, True, True, True, "owner")
        role = self.role(project_row["id"], username) if username and username != GUEST else ""
        if role:
            return Access(True, True, role in ("owner", "member"), role == "owner", role)
        acc = project_row["accessibility"]
        if acc == "public":
            return Access(True, True, False, False, "")
        if acc == "protected":
            return Access(True, False, False, False, "")
        return Access(False, False, False, False, "")

    # -- credentials ---------------------------------------------------------------------
    def verify_basic(self, header: str) -> str | None:
        """The user name for a valid Basic header (password or alias token), else None."""
        try:
            raw = base64.b64decode(header.split(" ", 1)[1].strip()).decode("utf-8")
        except Exception:
            return None
        username, _, password = raw.partition(":")
        return self.verify_password(username, password)

    def verify_password(self, username: str, password: str) -> str | None:
        if not username or username == GUEST:
            return None
        key = (username, hashlib.sha256(password.encode()).hexdigest())
        cached = self._password_cache.get(key)
        if cached is None:
            row = self.user(username)
            cached = bool(row and row["enabled"] and check_password(row["password"], password))
            self._password_cache[key] = cached
        if cached:
            return username
        token = self.store.one("SELECT * FROM tokens WHERE alias = ?", (username,))
        if (
            token
            and token["expires"] > time.time()
            and hmac.compare_digest(token["secret"], password)
        ):
            return token["username"]
        return None

    def issue_token(self, username: str) -> dict:
        alias, secret = str(uuid.uuid4()), secrets.token_urlsafe(48)
        expires = time.time() + TOKEN_LIFETIME
        with self.store.write() as c:
            c.execute("INSERT INTO tokens VALUES (?,?,?,?)", (alias, secret, username, expires))
        return {
            "alias": alias,
            "secret": secret,
            "xdatUserId": username,
            "estimatedExpirationTime": int(expires * 1000),
            "singleUse": False,
            "enabled": True,
        }

    def locate_token(self, alias: str):
        """The live token row for `alias`, or None (expired tokens are gone for XNAT too)."""
        row = self.store.one("SELECT * FROM tokens WHERE alias = ?", (alias,))
        return row if row is not None and row["expires"] > time.time() else None

    def validate_token(self, alias: str, secret: str) -> str | None:
        """The token's user when `secret` matches (`HibernateAliasTokenService.validateToken`)."""
        token = self.locate_token(alias)
        if token is None or not hmac.compare_digest(token["secret"], secret):
            return None
        return token["username"]

    def tokens_of(self, username: str) -> list:
        return self.store.query(
            "SELECT * FROM tokens WHERE username = ? AND expires > ? ORDER BY expires",
            (username, time.time()),
        )

    def invalidate_token(self, alias: str) -> bool:
        with self.store.write() as c:
            return c.execute("DELETE FROM tokens WHERE alias = ?", (alias,)).rowcount > 0

    # -- sessions ------------------------------------------------------------------------
    def new_session(self, username: str) -> str:
        sid = secrets.token_hex(16).upper()
        with self.store.write() as c:
            c.execute("INSERT INTO sessions VALUES (?,?,?)", (sid, username, time.time()))
        return sid

    def session_user(self, sid: str) -> str | None:
        row = self.store.one("SELECT * FROM sessions WHERE id = ?", (sid,))
        if row is None:
            return None
        now = time.time()
        if now - row["last_access"] > self.session_timeout:
            self.end_session(sid)
            return None
        if now - row["last_access"] > 1.0:
            with self.store.write() as c:
                c.execute("UPDATE sessions SET last_access = ? WHERE id = ?", (now, sid))
        return row["username"]

    def end_session(self, sid: str) -> None:
        with self.store.write() as c:
            c.execute("DELETE FROM sessions WHERE id = ?", (sid,))

    def purge_expired(self) -> None:
        """Drop idle sessions and expired tokens so the tables stay small on long runs."""
        now = time.time()
        with self.store.write() as c:
            c.execute("DELETE FROM sessions WHERE last_access < ?", (now - self.session_timeout,))
            c.execute("DELETE FROM tokens WHERE expires < ?", (now,))
