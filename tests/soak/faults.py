"""The soak's faults: a seeded random mix of xnatsim fault rules, and expired sessions.

Each fault is what a real site does to a transfer: a gateway's 503, XNAT's own 500, a
connection reset mid-download, a body cut short, a slow network, a full disk (507), and a
login session that ends while the transfer runs (xnatsim forgets every session, as XNAT does
when its session store is cleared or the session times out).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xnatsim.server import SimServer

IMPORT = "/data/services/import*"
FILES = "*/files*"


@dataclass(frozen=True)
class Fault:
    """One kind of fault: a name, which server it hits, and how to make its rule."""

    name: str
    side: str  # "src" or "dst"
    make: Callable[[random.Random], dict[str, Any]]


def _p(rng: random.Random) -> float:
    return round(rng.uniform(0.1, 0.4), 2)


CATALOG: tuple[Fault, ...] = (
    Fault(
        "503 on import",
        "dst",
        lambda r: {"method": "POST", "path": IMPORT, "status": 503, "probability": _p(r)},
    ),
    Fault(
        "500 on import",
        "dst",
        lambda r: {"method": "POST", "path": IMPORT, "status": 500, "probability": _p(r)},
    ),
    Fault(
        "503 on source reads",
        "src",
        lambda r: {"method": "GET", "path": "/data/*", "status": 503, "probability": _p(r) / 2},
    ),
    Fault(
        "500 on destination reads",
        "dst",
        lambda r: {"method": "GET", "path": "/data/*", "status": 500, "probability": _p(r) / 4},
    ),
    Fault(
        "reset during download",
        "src",
        lambda r: {
            "method": "GET",
            "path": FILES,
            "drop_after": r.randint(100, 4000),
            "probability": _p(r),
        },
    ),
    Fault(
        "truncated download",
        "src",
        lambda r: {
            "method": "GET",
            "path": FILES,
            "truncate": r.randint(100, 4000),
            "probability": _p(r),
        },
    ),
    Fault(
        "latency",
        "dst",
        lambda r: {"method": "*", "path": "*", "latency": round(r.uniform(0.02, 0.2), 3)},
    ),
    Fault(
        "latency on source",
        "src",
        lambda r: {"method": "*", "path": "*", "latency": round(r.uniform(0.02, 0.2), 3)},
    ),
    Fault(
        "507 on upload",
        "dst",
        lambda r: {"method": "PUT", "path": FILES, "status": 507, "probability": _p(r)},
    ),
    Fault(
        "503 on writes",
        "dst",
        lambda r: {
            "method": "PUT",
            "path": "/data/projects/*",
            "status": 503,
            "probability": _p(r) / 2,
        },
    ),
)

EXPIRED_SESSIONS = "expired sessions"


@dataclass
class FaultMix:
    """The faults of one round: rules per server, and when sessions expire (seconds)."""

    names: list[str] = field(default_factory=list)
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    expire_at: dict[str, list[float]] = field(default_factory=dict)


def pick(rng: random.Random, horizon: float) -> FaultMix:
    """One to three faults of the catalog, plus, in about a third of rounds, expired sessions
    at random moments within ``horizon`` seconds."""
    mix = FaultMix(rules={"src": [], "dst": []}, expire_at={"src": [], "dst": []})
    for fault in rng.sample(CATALOG, rng.randint(1, 3)):
        rule = fault.make(rng)
        if "probability" in rule:
            rule["seed"] = rng.randrange(1 << 30)
        rule["name"] = fault.name
        mix.rules[fault.side].append(rule)
        mix.names.append(fault.name)
    if rng.random() < 0.35:
        side = rng.choice(("src", "dst"))
        mix.expire_at[side] = sorted(rng.uniform(0.1, horizon) for _ in range(rng.randint(1, 2)))
        mix.names.append(f"{EXPIRED_SESSIONS} ({side})")
    return mix


def end_all_sessions(srv: SimServer) -> None:
    """Forget every login session of ``srv``: the next request in one is answered as for an
    expired session (401)."""
    with srv.store.write() as c:
        c.execute("DELETE FROM sessions")


class Expirer:
    """Ends the sessions of each server at the mix's moments, from a background thread."""

    def __init__(self, servers: dict[str, SimServer], mix: FaultMix) -> None:
        self._events = sorted((t, side) for side, times in mix.expire_at.items() for t in times)
        self._servers = servers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-expirer", daemon=True)
        self.fired = 0

    def __enter__(self) -> Expirer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        elapsed = 0.0
        for moment, side in self._events:
            if self._stop.wait(moment - elapsed):
                return
            elapsed = moment
            end_all_sessions(self._servers[side])
            self.fired += 1


def install(servers: dict[str, SimServer], mix: FaultMix) -> None:
    for side, srv in servers.items():
        srv.faults.set_rules(mix.rules.get(side, []))


def clear(servers: dict[str, SimServer]) -> None:
    for srv in servers.values():
        srv.faults.set_rules([])
