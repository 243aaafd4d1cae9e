"""Fault injection as WSGI middleware: error replies, delays, broken and short transfers.

Transfer tools are judged by what they do when the network or the server misbehaves, so the
simulator can be told, per method and path, to fail in the ways real XNAT sites do. Rules are
plain dicts (from YAML/JSON files or the `/xnatsim/faults` admin endpoint):

    {"method": "POST", "path": "/data/services/import*", "status": 503, "first": 2}

Match keys: `method` ("GET", "*", or a list) and `path` (glob on PATH_INFO) or `path_regex`.
Actions: `status` (+ `body`, `headers`, `reason`), `latency` (seconds, then pass through;
may be combined with another action), `drop_after` (close the connection after N body bytes)
and `truncate` (send only N body bytes, keeping the announced Content-Length).
Triggers: `every` N, `first` N, or `probability` p with `seed`; without one, always.
"""

from __future__ import annotations

import copy
import fnmatch
import html
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]

EXEMPT_PREFIX = "/xnatsim/"
ACTIONS = ("status", "drop_after", "truncate")
TRIGGERS = ("every", "first", "probability")
KNOWN_KEYS = {
    "name",
    "method",
    "path",
    "path_regex",
    "status",
    "body",
    "headers",
    "reason",
    "latency",
    "drop_after",
    "truncate",
    "every",
    "first",
    "probability",
    "seed",
}
COUNTER_KEYS = ("matches", "fired")

try:  # waitress treats this as a vanished client: it closes the socket and logs one line
    from waitress.channel import ClientDisconnected as _Abort
except ImportError:  # pragma: no cover - another WSGI server

    class _Abort(ConnectionAbortedError):  # type: ignore[no-redef]
        pass


class InjectedDrop(_Abort):
    """Raised inside a response body to make the server drop the connection."""


def _nonneg_int(rule: dict, key: str, where: str, minimum: int = 0) -> int:
    value = rule[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def validate_rule(rule: Any, where: str = "rule") -> dict:
    """Check one rule and return a normalised copy; ValueError says what is wrong."""
    if not isinstance(rule, dict):
        raise ValueError(f"{where}: a rule must be a mapping, got {type(rule).__name__}")
    rule = {k: v for k, v in rule.items() if k not in COUNTER_KEYS}
    unknown = sorted(set(rule) - KNOWN_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known keys are "
            f"{', '.join(sorted(KNOWN_KEYS))}"
        )
    method = rule.get("method", "*")
    methods = [method] if isinstance(method, str) else method
    if (
        not isinstance(methods, list)
        or not methods
        or not all(isinstance(m, str) and m for m in methods)
    ):
        raise ValueError(f"{where}: 'method' must be a method name, '*', or a list of names")
    rule["method"] = [m.upper() for m in methods]
    if "path" in rule and "path_regex" in rule:
        raise ValueError(f"{where}: give 'path' or 'path_regex', not both")
    if "path_regex" in rule:
        try:
            re.compile(str(rule["path_regex"]))
        except re.error as exc:
            raise ValueError(f"{where}: bad 'path_regex': {exc}") from None
    else:
        path = rule.get("path", "*")
        if not isinstance(path, str) or not path:
            raise ValueError(f"{where}: 'path' must be a non-empty glob string")
        rule["path"] = path
    actions = [a for a in ACTIONS if a in rule]
    if len(actions) > 1:
        raise ValueError(f"{where}: give only one of {', '.join(ACTIONS)}")
    if not actions and "latency" not in rule:
        raise ValueError(
            f"{where}: a rule needs an action: 'status', 'latency', 'drop_after' or 'truncate'"
        )
    if "status" in rule:
        status = _nonneg_int(rule, "status", where, 100)
        if status > 599:
            raise ValueError(f"{where}: 'status' must be an HTTP status code, got {status}")
        if "body" in rule and not isinstance(rule["body"], str):
            raise ValueError(f"{where}: 'body' must be a string")
        headers = rule.get("headers", {})
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) for k, v in headers.items()
        ):
            raise ValueError(f"{where}: 'headers' must map header names to values")
    else:
        for key in ("body", "headers", "reason"):
            if key in rule:
                raise ValueError(f"{where}: '{key}' only goes with 'status'")
    for key in ("drop_after", "truncate"):
        if key in rule:
            _nonneg_int(rule, key, where)
    if "latency" in rule:
        latency = rule["latency"]
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ValueError(f"{where}: 'latency' must be a number of seconds >= 0")
    triggers = [t for t in TRIGGERS if t in rule]
    if len(triggers) > 1:
        raise ValueError(f"{where}: give only one of {', '.join(TRIGGERS)}")
    if "every" in rule:
        _nonneg_int(rule, "every", where, 1)
    if "first" in rule:
        _nonneg_int(rule, "first", where, 0)
    if "probability" in rule:
        p = rule["probability"]
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0 <= p <= 1:
            raise ValueError(f"{where}: 'probability' must be between 0 and 1")
        rule.setdefault("seed", 0)
    if "seed" in rule and "probability" not in rule:
        raise ValueError(f"{where}: 'seed' only goes with 'probability'")
    return rule


class _Rule:
    """A validated rule with its thread-safe counters and private random sequence."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.methods = set(spec["method"])
        regex = spec.get("path_regex")
        self.regex = re.compile(regex) if regex is not None else None
        self.glob = spec.get("path", "*")
        self.random = random.Random(spec.get("seed", 0))
        self.matches = 0
        self.fired = 0
        self.lock = threading.Lock()

    def matches_request(self, method: str, path: str) -> bool:
        if "*" not in self.methods and method not in self.methods:
            return False
        if self.regex is not None:
            return self.regex.search(path) is not None
        return fnmatch.fnmatchcase(path, self.glob)

    def trigger(self) -> bool:
        """Count one matching request and say whether the rule fires for it."""
        spec = self.spec
        with self.lock:
            self.matches += 1
            n = self.matches
            if "every" in spec:
                fire = n % spec["every"] == 0
            elif "first" in spec:
                fire = n <= spec["first"]
            elif "probability" in spec:
                fire = self.random.random() < spec["probability"]
            else:
                fire = True
            if fire:
                self.fired += 1
            return fire

    def view(self) -> dict:
        out = copy.deepcopy(self.spec)
        if len(out["method"]) == 1:
            out["method"] = out["method"][0]
        with self.lock:
            out["matches"] = self.matches
            out["fired"] = self.fired
        return out


def error_body(status: int, reason: str) -> bytes:
    """An XNAT-style status page; clients read the reason from the <h3>."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return (
        "<!DOCTYPE html>\n<html><head><title>Status page</title></head>\n<body>\n"
        f"<h3>{html.escape(reason)}</h3>\n<p>{status} {html.escape(phrase)}</p>\n"
        '<p>You can get technical details <a href="http://www.w3.org/Protocols/rfc2616/'
        f'rfc2616-sec10.html#sec10.{status // 100}">here</a>.<br></p>\n</body>\n</html>\n'
    ).encode()


def _drain(environ: dict) -> None:
    """Read and discard the request body so the connection stays usable."""
    stream = environ.get("wsgi.input")
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    while stream is not None and remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            break
        remaining -= len(chunk)


def _limit(app_iter: Iterable[bytes], limit: int, drop: bool) -> Iterator[bytes]:
    """Pass at most `limit` body bytes; then end quietly (truncate) or abort (drop)."""
    sent = 0
    try:
        for chunk in app_iter:
            if not chunk:
                continue
            room = limit - sent
            if len(chunk) >= room:
                if room > 0:
                    yield chunk[:room]
                    sent += room
                if drop:
                    raise InjectedDrop(f"connection dropped after {sent} bytes (injected fault)")
                return
            sent += len(chunk)
            yield chunk
        if drop:  # the body was shorter than the limit: still break the transfer
            raise InjectedDrop(f"connection dropped after {sent} bytes (injected fault)")
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()


class FaultInjector:
    """Holds the rules and wraps a WSGI app so matching requests misbehave on cue."""

    def __init__(self, rules: list[dict] | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        if rules:
            self.set_rules(rules)

    @staticmethod
    def load(path: Path) -> list[dict]:
        """Read a YAML or JSON list of rules (or a mapping with a `rules` list) and validate."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read fault rules file {path}: {exc.strerror}") from None
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                from ruamel.yaml import YAML

                data = YAML(typ="safe", pure=True).load(text)
        except Exception as exc:  # parser errors come in many types
            raise ValueError(f"fault rules file {path} is not valid YAML/JSON: {exc}") from None
        if isinstance(data, dict) and "rules" in data:
            data = data["rules"]
        if data is None:
            return []
        if not isinstance(data, list):
            raise ValueError(f"fault rules file {path} must hold a list of rules")
        return [validate_rule(r, f"{path} rule {i + 1}") for i, r in enumerate(data)]

    def set_rules(self, rules: list[dict]) -> None:
        if not isinstance(rules, list):
            raise ValueError("fault rules must be a list")
        compiled = [_Rule(validate_rule(r, f"rule {i + 1}")) for i, r in enumerate(rules)]
        with self._lock:
            self._rules = compiled

    def add_rule(self, rule: dict) -> None:
        compiled = _Rule(validate_rule(rule))
        with self._lock:
            self._rules = [*self._rules, compiled]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[dict]:
        """The rules with their live `matches` and `fired` counters."""
        with self._lock:
            current = list(self._rules)
        return [r.view() for r in current]

    def _select(self, method: str, path: str) -> dict | None:
        """Advance every matching rule's counter; the first that fires acts."""
        with self._lock:
            current = list(self._rules)
        chosen = None
        for rule in current:
            if rule.matches_request(method, path) and rule.trigger() and chosen is None:
                chosen = rule.spec
        return chosen

    def wrap(self, app: WSGIApp) -> WSGIApp:
        def middleware(environ: dict, start_response: Callable) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "") or "/"
            if path.startswith(EXEMPT_PREFIX) or path == EXEMPT_PREFIX.rstrip("/"):
                return app(environ, start_response)
            method = environ.get("REQUEST_METHOD", "GET").upper()
            rule = self._select(method, path)
            if rule is None:
                return app(environ, start_response)
            if rule.get("latency"):
                time.sleep(float(rule["latency"]))
            if "status" in rule:
                return self._status_reply(rule, environ, start_response)
            if "drop_after" in rule:
                return _limit(app(environ, start_response), rule["drop_after"], drop=True)
            if "truncate" in rule:
                return _limit(app(environ, start_response), rule["truncate"], drop=False)
            return app(environ, start_response)

        return middleware

    @staticmethod
    def _status_reply(rule: dict, environ: dict, start_response: Callable) -> list[bytes]:
        _drain(environ)
        status = int(rule["status"])
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Injected Fault"
        if "body" in rule:
            body = str(rule["body"]).encode("utf-8")
            content_type = "text/plain;charset=UTF-8"
        else:
            reason = rule.get("reason") or f"{phrase} (injected fault)"
            body = error_body(status, reason)
            content_type = "text/html;charset=UTF-8"
        extra = [
            (str(k), str(v))
            for k, v in (rule.get("headers") or {}).items()
            if str(k).lower() != "content-length"
        ]
        headers = [("Content-Length", str(len(body)))]
        if not any(k.lower() == "content-type" for k, _ in extra):
            headers.append(("Content-Type", content_type))
        start_response(f"{status} {phrase}", headers + extra)
        return [body]
