"""pytest plugin: fixtures that start real xnatsim servers on 127.0.0.1 ephemeral ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import requests

from xnatsim.server import SimServer, start_server


class SimPair(NamedTuple):
    src: SimServer
    dst: SimServer


def admin_session(srv: SimServer, user: str = "admin", password: str = "admin") -> requests.Session:
    """A requests session with basic auth for `srv` (admin unless told otherwise)."""
    session = requests.Session()
    session.auth = (user, password)
    return session


def add_user(
    srv: SimServer, username: str, password: str, *, project: str = "", group: str = ""
) -> None:
    """Create a user on `srv` (as admin) and, with `project` and `group` (`Owners`,
    `Members` or `Collaborators`), give it that role in the project."""
    admin = admin_session(srv)
    reply = admin.post(
        f"{srv.url}/xapi/users",
        json={"username": username, "password": password, "email": f"{username}@example.org"},
        timeout=30,
    )
    assert reply.status_code in (200, 201), reply.text
    if project and group:
        reply = admin.put(f"{srv.url}/data/projects/{project}/users/{group}/{username}", timeout=30)
        assert reply.status_code == 200, reply.text


@pytest.fixture
def xnatsim_factory(tmp_path: Path) -> Iterator[Callable[..., SimServer]]:
    """Start servers in fresh `tmp_path` subdirs (or a given `data_dir`); all stop at teardown.

    Keyword arguments pass through to `start_server`.
    """
    servers: list[SimServer] = []

    def make(data_dir: Path | None = None, **kwargs: Any) -> SimServer:
        if data_dir is None:
            data_dir = tmp_path / f"xnatsim{len(servers)}"
        srv = start_server(Path(data_dir), **kwargs)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def sim_pair(xnatsim_factory: Callable[..., SimServer]) -> SimPair:
    """Two independent, empty servers: a source and a destination."""
    return SimPair(xnatsim_factory(site_id="SRC"), xnatsim_factory(site_id="DST"))
