"""Fault injection middleware, exercised over real HTTP through waitress on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from waitress import wasyncore
from waitress.server import create_server

from xnatsim.faults import FaultInjector, validate_rule

BIG = bytes(range(256)) * 400  # 102400 bytes


def tiny_app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        out = str(len(body)).encode()
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(out)))]
        )
        return [out]
    if path.startswith("/big-cl"):
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BIG)))],
        )
        return (BIG[i : i + 8192] for i in range(0, len(BIG), 8192))
    if path.startswith("/big"):
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return (BIG[i : i + 8192] for i in range(0, len(BIG), 8192))
    body = f"ok {path}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


class Served:
    def __init__(self, app) -> None:
        self.server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.port = self.server.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wasyncore.loop(timeout=0.05, map=self.server._map, use_poll=True, count=1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()
        self.server.task_dispatcher.shutdown(timeout=5)


@pytest.fixture
def served() -> Iterator[tuple[FaultInjector, str]]:
    injector = FaultInjector()
    srv = Served(injector.wrap(tiny_app))
    yield injector, srv.url
    srv.stop()


def statuses(url: str, n: int, method: str = "GET") -> list[int]:
    with requests.Session() as s:
        return [s.request(method, url).status_code for _ in range(n)]


def test_always_status_with_xnat_error_page(served):
    inj, url = served
    inj.add_rule({"method": "GET", "path": "/data/*", "status": 503})
    r = requests.get(f"{url}/data/projects")
    assert r.status_code == 503
    assert "<h3>Service Unavailable (injected fault)</h3>" in r.text
    assert r.headers["Content-Type"].startswith("text/html")
    assert requests.get(f"{url}/other").status_code == 200


def test_custom_body_headers_and_reason(served):
    inj, url = served
    inj.set_rules(
        [
            {"path": "/a", "status": 429, "body": "slow down", "headers": {"Retry-After": "3"}},
            {"path": "/b", "status": 500, "reason": "Disk full"},
        ]
    )
    r = requests.get(f"{url}/a")
    assert (r.status_code, r.text, r.headers["Retry-After"]) == (429, "slow down", "3")
    r = requests.get(f"{url}/b")
    assert r.status_code == 500 and "<h3>Disk full</h3>" in r.text


def test_every_nth_match(served):
    inj, url = served
    inj.add_rule({"method": "GET", "path": "/x", "status": 502, "every": 3})
    assert statuses(f"{url}/x", 7) == [200, 200, 502, 200, 200, 502, 200]
    (rule,) = inj.rules()
    assert (rule["matches"], rule["fired"]) == (7, 2)


def test_first_n_matches_only(served):
    inj, url = served
    inj.add_rule({"path": "/x", "status": 503, "first": 2})
    assert statuses(f"{url}/x", 4) == [503, 503, 200, 200]


def test_probability_is_deterministic_per_seed(served):
    inj, url = served
    rule = {"path": "/p", "status": 500, "probability": 0.5, "seed": 42}
    inj.add_rule(rule)
    first = statuses(f"{url}/p", 40)
    inj.set_rules([rule])  # fresh counters and a fresh sequence
    second = statuses(f"{url}/p", 40)
    assert first == second
    assert 5 < first.count(500) < 35  # both outcomes occur
    inj.set_rules([{**rule, "seed": 7}])
    assert statuses(f"{url}/p", 40) != first


def test_method_filter_and_list(served):
    inj, url = served
    inj.add_rule({"method": ["PUT", "POST"], "path": "/echo", "status": 503})
    assert requests.get(f"{url}/echo").status_code == 200
    assert requests.put(f"{url}/echo", data=b"abc").status_code == 503
    assert requests.post(f"{url}/echo", data=b"abc").status_code == 503
    assert requests.delete(f"{url}/echo").status_code == 200


def test_path_regex(served):
    inj, url = served
    inj.add_rule({"path_regex": r"^/data/experiments/[^/]+/scans$", "status": 404})
    assert requests.get(f"{url}/data/experiments/E1/scans").status_code == 404
    assert requests.get(f"{url}/data/experiments/E1/scans/1").status_code == 200


def test_first_firing_rule_acts_and_all_rules_count(served):
    inj, url = served
    inj.set_rules(
        [
            {"path": "/x", "status": 501, "every": 2},
            {"path": "/x", "status": 502},
        ]
    )
    assert statuses(f"{url}/x", 4) == [502, 501, 502, 501]
    a, b = inj.rules()
    assert (a["matches"], a["fired"], b["matches"], b["fired"]) == (4, 2, 4, 4)


def test_xnatsim_paths_are_exempt(served):
    inj, url = served
    inj.add_rule({"path": "*", "status": 500})
    assert requests.get(f"{url}/xnatsim/faults").status_code == 200
    assert requests.get(f"{url}/data").status_code == 500
    assert inj.rules()[0]["matches"] == 1


def test_status_with_large_upload_body_does_not_hang(served):
    inj, url = served
    inj.add_rule({"method": "POST", "path": "/echo", "status": 503, "first": 1})
    payload = b"x" * (3 << 20)
    with requests.Session() as s:
        assert s.post(f"{url}/echo", data=payload, timeout=10).status_code == 503
        r = s.post(f"{url}/echo", data=payload, timeout=10)  # same connection still works
        assert (r.status_code, r.text) == (200, str(len(payload)))


def test_latency_delays_then_passes_through(served):
    inj, url = served
    inj.add_rule({"path": "/slow", "latency": 0.3})
    start = time.monotonic()
    r = requests.get(f"{url}/slow")
    assert r.status_code == 200 and r.text == "ok /slow"
    assert time.monotonic() - start >= 0.3


@pytest.mark.parametrize("path", ["/big", "/big-cl"])
def test_drop_after_breaks_the_transfer(served, path):
    inj, url = served
    inj.add_rule({"path": path, "drop_after": 10000, "first": 1})
    with pytest.raises(
        (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    ):
        requests.get(f"{url}{path}").content  # noqa: B018
    got = bytearray()
    inj.set_rules([{"path": path, "drop_after": 10000}])
    broken = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    with pytest.raises(broken), requests.get(f"{url}{path}", stream=True) as r:
        for chunk in r.iter_content(4096):
            got.extend(chunk)
    assert bytes(got) == BIG[: len(got)] and len(got) <= 10000
    inj.clear()
    assert requests.get(f"{url}{path}").content == BIG


def test_truncate_without_length_gives_a_short_body(served):
    inj, url = served
    inj.add_rule({"path": "/big", "truncate": 1000})
    r = requests.get(f"{url}/big")
    assert r.status_code == 200 and r.content == BIG[:1000]


def test_truncate_keeps_the_announced_length(served):
    inj, url = served
    inj.add_rule({"path": "/big-cl", "truncate": 1000})
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /big-cl HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(BIG)}".encode() in head
    assert body == BIG[:1000]
    with pytest.raises(
        (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    ):
        requests.get(f"{url}/big-cl").content  # noqa: B018


def test_rules_view_reports_counters_and_round_trips(served):
    inj, url = served
    inj.add_rule({"method": "GET", "path": "/x", "status": 503, "first": 1})
    statuses(f"{url}/x", 3)
    (view,) = inj.rules()
    assert view == {
        "method": "GET",
        "path": "/x",
        "status": 503,
        "first": 1,
        "matches": 3,
        "fired": 1,
    }
    inj.set_rules(inj.rules())  # the view is accepted back as a rule; counters restart
    assert inj.rules()[0]["matches"] == 0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"path": "/x"}, "needs an action"),
        ({"status": 503, "truncate": 4}, "only one of"),
        ({"status": 503, "every": 0}, "'every' must be an integer >= 1"),
        ({"status": 503, "first": 1, "every": 2}, "only one of"),
        ({"status": 503, "probability": 1.5}, "between 0 and 1"),
        ({"status": 503, "colour": "red"}, "unknown key(s) colour"),
        ({"status": 99}, "'status' must be an integer >= 100"),
        ({"path_regex": "(", "status": 500}, "bad 'path_regex'"),
        ({"latency": -1}, "'latency' must be"),
        ({"drop_after": "ten"}, "'drop_after' must be an integer"),
        ({"truncate": 5, "body": "x"}, "'body' only goes with 'status'"),
        ("status 503", "must be a mapping"),
    ],
)
def test_invalid_rules_are_refused_with_a_reason(rule, message):
    with pytest.raises(ValueError) as err:
        validate_rule(rule)
    assert message in str(err.value)
    with pytest.raises(ValueError):
        FaultInjector().add_rule(rule)  # type: ignore[arg-type]


def test_load_yaml_and_json(tmp_path: Path):
    y = tmp_path / "faults.yaml"
    y.write_text(
        "# retry tests\n- method: POST\n  path: /data/services/import*\n"
        "  status: 503\n  first: 2\n- path: /data/*\n  latency: 0.1\n"
    )
    rules = FaultInjector.load(y)
    assert rules[0]["status"] == 503 and rules[0]["method"] == ["POST"]
    assert rules[1]["latency"] == 0.1
    j = tmp_path / "faults.json"
    j.write_text(json.dumps({"rules": [{"path": "/x", "truncate": 3}]}))
    assert FaultInjector.load(j)[0]["truncate"] == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("- path: /x\n  status: 503\n- path: /y\n")
    with pytest.raises(ValueError, match=r"bad.yaml rule 2: a rule needs an action"):
        FaultInjector.load(bad)
    with pytest.raises(ValueError, match="cannot read fault rules file"):
        FaultInjector.load(tmp_path / "missing.yaml")
    (tmp_path / "notlist.json").write_text('{"path": "/x"}')
    with pytest.raises(ValueError, match="must hold a list"):
        FaultInjector.load(tmp_path / "notlist.json")


def test_counters_are_exact_under_concurrency(served):
    inj, url = served
    inj.add_rule({"path": "/c", "status": 503, "first": 10})
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        got = statuses(f"{url}/c", 5)
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and results.count(503) == 10
    (rule,) = inj.rules()
    assert (rule["matches"], rule["fired"]) == (40, 10)
