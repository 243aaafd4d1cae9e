"""A URL that is not an XNAT (a plain web server) is named as such, never as a missing project.

XNAT serves ``/data/JSESSION`` and, since 1.7, an open ``/xapi/siteConfig/buildInfo``; a plain
web server answers them with 404 or with a page of its own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from xnatctl.client import XnatClient
from xnatctl.errors import ExitCode

from .conftest import PROJECT


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server(tmp_path: Path) -> Iterator[str]:
    """A plain web server on 127.0.0.1 serving one page, like a wrong URL would reach."""
    (tmp_path / "index.html").write_text("<html><body><h1>Welcome</h1></body></html>")
    handler = partial(_Quiet, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_transfer_check_names_a_server_that_is_not_xnat(seeded, cli, web_server):
    assert cli("config", "add-profile", "web", "--url", web_server).code == 0
    args = ["-p", "src", "-P", PROJECT, "--dest-profile", "web", "--dest-project", PROJECT]
    result = cli("project", "transfer-check", *args, "-o", "json")
    assert result.code == 1
    checks = {c["name"]: c for c in json.loads(result.out)["checks"]}
    reach = checks["destination reachable"]
    assert reach["status"] == "fail"
    assert "does not look like an XNAT server" in reach["detail"]
    assert "GET /data/JSESSION answered HTTP 404" in reach["detail"]
    assert "XNAT site's own address" in reach["hint"]
    assert checks["source reachable"]["status"] == "pass"


def test_transfer_to_a_server_that_is_not_xnat_exits_unreachable(seeded, cli, web_server):
    args = ["-p", "src", "-P", PROJECT, "--dest-url", web_server, "--dest-user", "admin"]
    result = cli("project", "transfer", *args, "--dest-pass", "admin", "--dest-project", PROJECT)
    assert result.code == ExitCode.UNREACHABLE == 4, result.err
    assert "does not look like an XNAT server" in result.err
    assert "GET /data/JSESSION" in result.err
    assert "not found" not in result.err.lower()


def test_a_cached_session_on_a_server_that_is_not_xnat(seeded, cli, web_server, monkeypatch):
    # No login request to fail first: the snapshot's 404 for the project is checked against
    # buildInfo before it is reported, so the cause is the URL, not a missing project.
    from planner.errors import NotXnat
    from planner.snapshot import take_snapshot

    client = XnatClient(web_server, token="0123456789ABCDEF0123456789ABCDEF")
    with pytest.raises(NotXnat) as info:
        take_snapshot(client, PROJECT)
    assert "does not look like an XNAT server" in str(info.value)
    client.close()
