"""Request log middleware over real HTTP through waitress on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests
from waitress import wasyncore
from waitress.server import create_server

from xnatsim.faults import FaultInjector
from xnatsim.requestlog import RequestLog, basic_auth_user


def tiny_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("application failure")
    if path == "/session-user":
        environ["xnatsim.user"] = "cookie-user"
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


@pytest.fixture
def logged() -> Iterator[tuple[RequestLog, FaultInjector, str]]:
    log = RequestLog(max_entries=50)
    faults = FaultInjector()
    server = create_server(log.wrap(faults.wrap(tiny_app)), host="127.0.0.1", port=0, threads=2)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield log, faults, f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    stop.set()
    thread.join(5)
    server.close()
    server.task_dispatcher.shutdown(timeout=5)


def test_records_method_path_query_status_and_user(logged):
    log, _, url = logged
    requests.get(f"{url}/data/projects", params={"format": "json"}, auth=("alice", "s3cret"))
    requests.put(f"{url}/missing")
    first, second = log.entries()
    assert {k: first[k] for k in ("method", "path", "query", "status", "user")} == {
        "method": "GET",
        "path": "/data/projects",
        "query": "format=json",
        "status": 200,
        "user": "alice",
    }
    assert (second["method"], second["status"], second["user"]) == ("PUT", 404, None)
    assert isinstance(first["time"], float) and first["time"] <= second["time"]


def test_never_keeps_the_password(logged):
    log, _, url = logged
    requests.get(f"{url}/x", auth=("bob", "hunter2-password"))
    assert "hunter2" not in repr(log.entries())


def test_user_from_the_app_when_no_basic_auth(logged):
    log, _, url = logged
    requests.get(f"{url}/session-user", cookies={"JSESSIONID": "ABC"})
    assert log.entries()[0]["user"] == "cookie-user"


def test_skips_xnatsim_paths_and_clears(logged):
    log, _, url = logged
    requests.get(f"{url}/xnatsim/requests")
    requests.get(f"{url}/data")
    assert [e["path"] for e in log.entries()] == ["/data"]
    log.clear()
    assert log.entries() == []


def test_records_injected_faults_and_app_errors(logged):
    log, faults, url = logged
    faults.add_rule({"path": "/data/*", "status": 503})
    requests.get(f"{url}/data/x")
    requests.get(f"{url}/boom")
    assert [e["status"] for e in log.entries()] == [503, 500]


def test_bounded(logged):
    log, _, url = logged
    with requests.Session() as s:
        for i in range(60):
            s.get(f"{url}/n{i}")
    entries = log.entries()
    assert len(entries) == 50 and entries[0]["path"] == "/n10" and entries[-1]["path"] == "/n59"


def test_entries_are_copies(logged):
    log, _, url = logged
    requests.get(f"{url}/a")
    log.entries()[0]["path"] = "/changed"
    assert log.entries()[0]["path"] == "/a"


@pytest.mark.parametrize(
    ("header", "user"),
    [
        ("Basic YWxpY2U6cHc=", "alice"),
        ("basic YWxpY2U6", "alice"),
        ("Basic !!notbase64", None),
        ("Bearer abc", None),
        ("Basic bm9jb2xvbg==", None),
        ("", None),
    ],
)
def test_basic_auth_user(header, user):
    assert basic_auth_user({"HTTP_AUTHORIZATION": header}) == user
