"""Named server profiles in ``config.yaml``, rewritten so a user's comments and order survive."""

from __future__ import annotations

import contextlib
import difflib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from xnatctl.errors import ConfigFileError, UsageError
from xnatctl.fileio import atomic_write

DEFAULT_TIMEOUT = 60.0
PROFILE_KEYS = ("url", "user", "verify_ssl", "ca_bundle", "timeout")
# config.yaml's top level: as strict as a profile's settings (a typo is reported, not ignored).
TOP_KEYS = ("default_profile", "profiles")


@dataclass(frozen=True)
class Profile:
    name: str
    url: str
    user: str | None = None
    verify_ssl: bool = True
    ca_bundle: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    @property
    def verify(self) -> bool | str:
        """What requests takes as ``verify``: a CA bundle path wins over the flag."""
        if self.ca_bundle:
            return self.ca_bundle
        return self.verify_ssl

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "user": self.user,
            "verify_ssl": self.verify_ssl,
            "ca_bundle": self.ca_bundle,
            "timeout": self.timeout,
        }


def normalize_url(url: str) -> str:
    """Check that ``url`` is an http(s) server address and drop trailing slashes."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"invalid server URL {text!r}",
            hint="give a full address such as https://xnat.example.org",
        )
    if parts.username or parts.password:
        raise UsageError(
            "the server URL must not contain a user name or password",
            hint="give the user with --user and the password when asked",
        )
    if parts.query or parts.fragment:
        raise UsageError(f"invalid server URL {text!r}: it has a query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UsageError(f"invalid server URL {text!r}: bad port number") from None
    return text.rstrip("/")


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.preserve_quotes = True
    return yaml


class ProfileStore:
    """Reads and rewrites one ``config.yaml``; every change is saved at once, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._doc: CommentedMap | None = None

    # -- reading -------------------------------------------------------------------------
    def _load(self) -> CommentedMap:
        if self._doc is not None:
            return self._doc
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = ""
        except UnicodeDecodeError as exc:
            raise ConfigFileError(
                f"{self.path}: not UTF-8 text ({exc.reason} at byte {exc.start})",
                hint="fix the file or remove it and add profiles again",
            ) from None
        except OSError as exc:
            raise ConfigFileError(
                f"cannot read {self.path}: {exc.strerror}", hint="check its permissions"
            ) from None
        try:
            doc = _yaml().load(text) if text.strip() else None
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"{self.path}, line {mark.line + 1}" if mark else str(self.path)
            problem = exc.problem or exc.context or "not valid YAML"
            raise ConfigFileError(
                f"{where}: {problem}", hint="fix the file or remove it and add profiles again"
            ) from None
        except YAMLError as exc:
            raise ConfigFileError(f"{self.path}: {exc}", hint="fix the file") from None
        if doc is None:
            doc = CommentedMap()
        if not isinstance(doc, CommentedMap):
            raise ConfigFileError(
                f"{self.path}: the file must be a mapping with 'profiles'", hint="fix the file"
            )
        unknown = [str(k) for k in doc if str(k) not in TOP_KEYS]
        if unknown:
            key = unknown[0]
            close = difflib.get_close_matches(key, TOP_KEYS, n=1)
            raise ConfigFileError(
                f"{self._where(doc, key)}: unknown setting {key!r}"
                + (f" (did you mean {close[0]!r}?)" if close else ""),
                hint=f"known top-level settings: {', '.join(TOP_KEYS)}",
            )
        profiles = doc.get("profiles")
        if profiles is None:
            doc["profiles"] = CommentedMap()
        elif not isinstance(profiles, CommentedMap):
            raise ConfigFileError(
                f"{self._where(doc, 'profiles')}: 'profiles' must be a mapping of names to "
                "settings",
                hint="fix the file",
            )
        self._doc = doc
        return doc

    def _where(self, node: Any, key: str | None = None) -> str:
        try:
            line = node.lc.key(key)[0] if key is not None else node.lc.line
            return f"{self.path}, line {line + 1}"
        except (AttributeError, KeyError, TypeError):
            return str(self.path)

    def names(self) -> list[str]:
        return [str(name) for name in self._load()["profiles"]]

    @property
    def default_name(self) -> str | None:
        value = self._load().get("default_profile")
        return str(value) if value else None

    def get(self, name: str) -> Profile:
        profiles = self._load()["profiles"]
        if name not in profiles:
            known = ", ".join(self.names()) or "none"
            raise UsageError(
                f"unknown profile {name!r} (known profiles: {known})",
                hint=f'add it with "xnatctl config add-profile {name} --url URL"',
            )
        return self._parse(name, profiles[name], profiles)

    def all(self) -> list[Profile]:
        return [self.get(name) for name in self.names()]

    def resolve(self, name: str | None) -> Profile:
        """The named profile, else the default one; a clear usage error when there is none."""
        if name:
            return self.get(name)
        default = self.default_name
        if default:
            return self.get(default)
        if not self.names():
            raise UsageError(
                "no profile given and none configured",
                hint='add one with "xnatctl config add-profile NAME --url URL"',
            )
        raise UsageError(
            "no profile given and no default profile set",
            hint='pass -p NAME or set one with "xnatctl config use NAME"',
        )

    def _parse(self, name: str, node: Any, parent: CommentedMap) -> Profile:
        where = self._where(parent, name)
        if not isinstance(node, dict):
            raise ConfigFileError(
                f"{where}: profile {name!r} must be a mapping of settings", hint="fix the file"
            )
        unknown = sorted(set(map(str, node)) - set(PROFILE_KEYS))
        if unknown:
            raise ConfigFileError(
                f"{where}: profile {name!r} has unknown setting(s) {', '.join(unknown)}",
                hint=f"known settings: {', '.join(PROFILE_KEYS)}",
            )
        try:
            url = normalize_url(str(node.get("url") or ""))
        except UsageError as exc:
            raise ConfigFileError(f"{where}: profile {name!r}: {exc.message}") from None
        verify = node.get("verify_ssl", True)
        if not isinstance(verify, bool):
            raise ConfigFileError(f"{where}: profile {name!r}: verify_ssl must be true or false")
        timeout = node.get("timeout", DEFAULT_TIMEOUT)
        if timeout is None:
            timeout = DEFAULT_TIMEOUT
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigFileError(
                f"{where}: profile {name!r}: timeout must be a positive number of seconds"
            )
        user = node.get("user")
        ca_bundle = node.get("ca_bundle")
        return Profile(
            name=str(name),
            url=url,
            user=str(user) if user else None,
            verify_ssl=verify,
            ca_bundle=str(ca_bundle) if ca_bundle else None,
            timeout=float(timeout),
        )

    # -- changing ------------------------------------------------------------------------
    def add(self, profile: Profile, *, make_default: bool = False, replace: bool = False) -> None:
        doc = self._load()
        profiles = doc["profiles"]
        if profile.name in profiles and not replace:
            raise UsageError(
                f"profile {profile.name!r} already exists",
                hint="pass --replace to overwrite it, or choose another name",
            )
        entry = profiles.get(profile.name)
        if not isinstance(entry, CommentedMap):
            entry = CommentedMap()
        entry["url"] = normalize_url(profile.url)
        entry["user"] = profile.user
        entry["verify_ssl"] = profile.verify_ssl
        entry["ca_bundle"] = profile.ca_bundle
        timeout = profile.timeout
        entry["timeout"] = int(timeout) if float(timeout).is_integer() else timeout
        profiles[profile.name] = entry
        if make_default or not doc.get("default_profile"):
            self._set_default(doc, profile.name)
        self.save()

    def use(self, name: str) -> None:
        self.get(name)
        self._set_default(self._load(), name)
        self.save()

    def remove(self, name: str) -> None:
        self.get(name)
        doc = self._load()
        del doc["profiles"][name]
        if doc.get("default_profile") == name:
            remaining = self.names()
            doc["default_profile"] = remaining[0] if remaining else None
        self.save()

    @staticmethod
    def _set_default(doc: CommentedMap, name: str) -> None:
        if "default_profile" in doc:
            doc["default_profile"] = name
        else:
            doc.insert(0, "default_profile", name)

    def save(self) -> None:
        buf = io.StringIO()
        _yaml().dump(self._load(), buf)
        mode = 0o600
        with contextlib.suppress(FileNotFoundError):
            mode = self.path.stat().st_mode & 0o777
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, buf.getvalue().encode("utf-8"), mode=mode)
