"""Start and stop an xnatsim server: waitress in a background thread, plus the prearchive
rebuilder. `start_server` is the one entry point tests, benchmarks and the CLI use."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from xnatsim.app import XnatApp
from xnatsim.auth import ROLE_GROUPS, Auth, load_users
from xnatsim.faults import FaultInjector
from xnatsim.modality import PET_MR_SETTINGS
from xnatsim.requestlog import RequestLog
from xnatsim.store import Store
from xnatsim.web import HTTPError, Request, Response

log = logging.getLogger("xnatsim")

DEFAULT_SETTINGS: dict[str, Any] = {
    "session_timeout_seconds": 900,
    "prearchive_idle_seconds": 300,
    "prearchive_interval_seconds": 60,
    "checksums": True,
    # The XNAT version reported by buildInfo. Before 1.8.10 the DICOM-zip handler ignores
    # `dest` and `overwrite_files`, and sessions wait in the prearchive, as on a real server.
    "version": "1.8.11",
    # The site-wide anonymization script (XNAT's default `id.das`) runs on imports, as on a
    # default XNAT; `prevent_anon=true` on a DICOM-zip import skips it.
    "anonymize": True,
    # XNAT's site PET/MR setting (`sitewidePetMr`): "petmr" builds one xnat:petmrSessionData
    # from PET and MR series, "pet" a xnat:petSessionData.
    "pet_mr": "petmr",
    # The prearchive code a new project gets: XNAT's site preference
    # defaultProjectAutoArchiveSetting (0 manual, 4 auto-archive, 5 auto-archive overwrite).
    "default_prearchive_code": 4,
    # XNAT's site preference preventCrossModalityMerge: refuse to merge data of another
    # session type into an existing session.
    "prevent_cross_modality_merge": True,
    # SiteConfigPreferences.useSopInstanceUidToUniquelyIdentifyDicom: when a session merges
    # into an archived one, DICOM files are matched by SOPInstanceUID before their names.
    "use_sop_instance_uid": True,
    # SiteConfigPreferences.requireLogin: when false, requests without credentials (or with an
    # expired session) run as the guest account instead of getting 401.
    "require_login": True,
}


class AdminHooks:
    """`/xnatsim/faults` and `/xnatsim/requests`: test controls, site admins only."""

    def __init__(self, faults: FaultInjector, request_log: RequestLog) -> None:
        self.faults = faults
        self.request_log = request_log

    def _json_body(self, req: Request) -> Any:
        try:
            return json.loads(b"".join(req.iter_body()) or b"null")
        except ValueError:
            raise HTTPError(400, "The body must be JSON") from None

    def handle(self, req: Request, path: str) -> Response:
        m = req.method
        if path == "/xnatsim/faults":
            if m == "GET":
                return Response.json(self.faults.rules())
            if m == "PUT":
                rules = self._json_body(req)
                if not isinstance(rules, list):
                    raise HTTPError(400, "PUT /xnatsim/faults takes a JSON list of rules")
                self._call(self.faults.set_rules, rules)
                return Response.json(self.faults.rules())
            if m == "POST":
                rule = self._json_body(req)
                if not isinstance(rule, dict):
                    raise HTTPError(400, "POST /xnatsim/faults takes one JSON rule object")
                self._call(self.faults.add_rule, rule)
                return Response.json(self.faults.rules())
            if m == "DELETE":
                self.faults.clear()
                return Response.json([])
            raise HTTPError(405, "Method not allowed")
        if path == "/xnatsim/requests":
            if m == "GET":
                return Response.json(self.request_log.entries())
            if m == "DELETE":
                self.request_log.clear()
                return Response.json([])
            raise HTTPError(405, "Method not allowed")
        raise HTTPError(404, f"Not found: {path}")

    @staticmethod
    def _call(fn, arg) -> None:
        try:
            fn(arg)
        except (ValueError, TypeError, KeyError) as exc:
            raise HTTPError(400, f"Invalid fault rule: {exc}") from None


class SimServer:
    """A running simulator. Use `stop()` or a `with` block."""

    def __init__(
        self,
        store: Store,
        app: XnatApp,
        wsgi,
        host: str,
        port: int,
        settings: dict[str, Any],
        faults: FaultInjector,
        request_log: RequestLog,
    ) -> None:
        self.store = store
        self.app = app
        self.settings = settings
        self.faults = faults
        self.request_log = request_log
        self.data_dir = store.data_dir
        self._server = create_server(
            wsgi,
            host=host,
            port=port,
            # Requests answered at once. XNAT's Tomcat serves up to 200; 8 held a client's
            # concurrent reads (a snapshot keeps 24 in flight) to a queue under latency.
            threads=32,
            max_request_body_size=1 << 42,
            channel_timeout=300,
            connection_limit=200,
            inbuf_overflow=1 << 20,
            outbuf_overflow=1 << 22,
            clear_untrusted_proxy_headers=True,
            ident="xnatsim",
        )
        self.host = host
        self.port = int(self._server.socket.getsockname()[1])
        self.url = f"http://{host}:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, name=f"xnatsim-{self.port}", daemon=True
        )
        self._prearchive = threading.Thread(
            target=self._rebuild_loop, name=f"xnatsim-prearchive-{self.port}", daemon=True
        )
        self._thread.start()
        self._prearchive.start()

    def _serve(self) -> None:
        """waitress's own run() loops forever; this loop stops within 0.1 s of stop()."""
        smap = self._server._map
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.1, map=smap, use_poll=True, count=1)

    def _rebuild_loop(self) -> None:
        interval = float(self.settings["prearchive_interval_seconds"])
        idle = float(self.settings["prearchive_idle_seconds"])
        while not self._stop.wait(interval):
            try:
                self.app.archiver.rebuild_idle(idle)
                self.app.auth.purge_expired()
            except Exception:
                log.exception("Prearchive rebuild failed")

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._prearchive.join(timeout=10)
        for channel in list(self._server._map.values()):
            try:
                channel.close()
            except Exception:
                log.debug("closing a connection failed", exc_info=True)
        self._server.task_dispatcher.shutdown(timeout=5)
        self.store.close()

    def __enter__(self) -> SimServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"SimServer({self.url}, data={self.data_dir})"


def _apply_users(auth: Auth, users: list[dict]) -> None:
    for entry in users:
        name = entry.get("username")
        if not name or "password" not in entry:
            raise ValueError("every user needs a username and a password")
        auth.ensure_user(
            name,
            str(entry["password"]),
            bool(entry.get("admin", False)),
            email=entry.get("email", ""),
        )
        for project, role in (entry.get("roles") or {}).items():
            role = ROLE_GROUPS.get(role, str(role).lower())
            if role not in ("owner", "member", "collaborator"):
                raise ValueError(f"user {name}: unknown role {role!r} for {project}")
            auth.set_role(project, name, role)


def start_server(
    data_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    site_id: str = "XNATSIM",
    users: Path | list[dict] | None = None,
    faults: Path | list[dict] | None = None,
    settings: dict | None = None,
) -> SimServer:
    merged = {**DEFAULT_SETTINGS, **(settings or {})}
    unknown = set(merged) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ValueError(f"unknown xnatsim settings: {', '.join(sorted(unknown))}")
    if merged["pet_mr"] not in PET_MR_SETTINGS:
        raise ValueError(f"pet_mr must be one of {', '.join(PET_MR_SETTINGS)}")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(data_dir, site_id)
    auth = Auth(store, float(merged["session_timeout_seconds"]))
    auth.ensure_user("admin", "admin", admin=True)
    _apply_users(auth, load_users(users))
    rules = FaultInjector.load(faults) if isinstance(faults, (str, Path)) else faults
    injector = FaultInjector(rules or None)
    request_log = RequestLog()
    hooks = AdminHooks(injector, request_log)
    app = XnatApp(store, auth, merged, hooks)
    wsgi = request_log.wrap(injector.wrap(app))
    return SimServer(store, app, wsgi, host, port, merged, injector, request_log)
