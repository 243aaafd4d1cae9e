"""The REST client against mocked HTTP: errors, retries, listings, sessions, uploads."""

from __future__ import annotations

import socket

import pytest
import responses

from planner.backend import XnatBackend
from planner.errors import (
    AuthenticationFailed,
    BadRequest,
    Conflict,
    MalformedReply,
    NetworkError,
    NotFound,
    PermissionDenied,
    ServerError,
)
from xnatctl.client import XnatClient, reason_from_body
from xnatctl.errors import RateLimited, SessionExpired

URL = "https://xnat.test"
ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Status page</title></head><body>"
    "<h3>Unable to find the specified subject.</h3><p>404 Not Found</p></body></html>"
)


def client(**kwargs) -> XnatClient:
    kwargs.setdefault("retry_base_delay", 0.0001)
    kwargs.setdefault("token", "ABCDEF0123456789")
    return XnatClient(URL, **kwargs)


def test_client_satisfies_the_planner_protocol():
    assert isinstance(client(), XnatBackend)
    assert client().url == URL


def test_reason_comes_from_the_h3_else_the_first_text_line():
    assert reason_from_body(ERROR_PAGE) == "Unable to find the specified subject."
    assert reason_from_body("\n  plain reason here\nsecond line") == "plain reason here"
    assert len(reason_from_body("x" * 5000)) == 300


@responses.activate
def test_get_rows_returns_string_rows():
    responses.get(
        f"{URL}/data/projects",
        json={"ResultSet": {"Result": [{"ID": "P1", "n": 3, "x": None}], "totalRecords": "1"}},
    )
    assert client().get_rows("/data/projects") == [{"ID": "P1", "n": "3", "x": ""}]
    assert responses.calls[0].request.params == {"format": "json"}


@responses.activate
def test_get_rows_match_column_names_without_case():
    # XNAT's SQL-built listings answer lower-case names on PostgreSQL
    # (DefaultGroupsAndPermissionsCache.getProjectsForDatatypeAction).
    responses.get(
        f"{URL}/data/projects",
        json={"ResultSet": {"Result": [{"id": "P1", "secondary_id": "one"}]}},
    )
    (row,) = client().get_rows("/data/projects", {"permissions": "edit"})
    assert row["ID"] == "P1" and row.get("secondary_ID") == "one"
    assert list(row) == ["id", "secondary_id"]


@responses.activate
def test_get_rows_rejects_a_reply_that_is_not_a_listing():
    responses.get(f"{URL}/data/projects", json={"items": []})
    with pytest.raises(MalformedReply, match="ResultSet"):
        client().get_rows("/data/projects")
    responses.get(f"{URL}/data/other", body="<html>login</html>", content_type="text/html")
    with pytest.raises(MalformedReply, match="expected JSON"):
        client().get_json("/data/other")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (400, BadRequest),
        (417, BadRequest),
        (500, ServerError),
    ],
)
@responses.activate
def test_status_codes_map_to_typed_errors_with_xnat_reason(status, cls):
    responses.get(f"{URL}/data/projects/P/subjects/S", body=ERROR_PAGE, status=status)
    with pytest.raises(cls) as info:
        client().get_text("/data/projects/P/subjects/S", {"secret_param": "hunter2"})
    exc = info.value
    assert exc.status == status
    assert exc.reason == "Unable to find the specified subject."
    assert "GET /data/projects/P/subjects/S" in str(exc)
    assert "hunter2" not in str(exc)


@responses.activate
def test_transient_errors_are_retried_then_succeed():
    path = f"{URL}/data/projects"
    responses.get(path, status=503)
    responses.get(path, status=502)
    responses.get(path, body="ok")
    assert client().get_text("/data/projects") == "ok"
    assert len(responses.calls) == 3


@responses.activate
def test_retries_stop_after_the_configured_attempts():
    responses.get(f"{URL}/data/projects", status=503, body="<h3>down</h3>")
    with pytest.raises(ServerError, match="down"):
        client(retries=3).get_text("/data/projects")
    assert len(responses.calls) == 3


@responses.activate
def test_a_400_is_never_retried():
    responses.get(f"{URL}/data/projects", status=400)
    with pytest.raises(BadRequest):
        client().get_text("/data/projects")
    assert len(responses.calls) == 1


@responses.activate
def test_post_is_not_retried_unless_marked_idempotent():
    responses.post(f"{URL}/data/services/import", status=503)
    with pytest.raises(ServerError):
        client().request_text("POST", "/data/services/import")
    assert len(responses.calls) == 1
    with pytest.raises(ServerError):
        client(retries=2).request_text("POST", "/data/services/import", idempotent=True)
    assert len(responses.calls) == 3


@responses.activate
def test_429_is_retried_honouring_retry_after():
    responses.get(f"{URL}/data/projects", status=429, headers={"Retry-After": "0"})
    responses.get(f"{URL}/data/projects", body="ok")
    assert client().get_text("/data/projects") == "ok"
    responses.get(f"{URL}/data/x", status=429, headers={"Retry-After": "0"})
    with pytest.raises(RateLimited) as info:
        client(retries=2).get_text("/data/x")
    assert info.value.transient


@responses.activate
def test_expired_token_is_renewed_once_with_the_password():
    calls = []
    responses.get(f"{URL}/data/projects", status=401)
    responses.get(f"{URL}/data/projects", body="ok")
    responses.get(f"{URL}/data/JSESSION", body="NEWTOKEN0123456789")
    c = client(user="alice", password="pw", on_session=calls.append)
    assert c.get_text("/data/projects") == "ok"
    assert calls == ["NEWTOKEN0123456789"]
    assert c.token == "NEWTOKEN0123456789"
    assert responses.calls[0].request.headers["Cookie"] == "JSESSIONID=ABCDEF0123456789"
    assert "Authorization" in responses.calls[1].request.headers  # the login
    assert responses.calls[2].request.headers["Cookie"] == "JSESSIONID=NEWTOKEN0123456789"
    assert "Authorization" not in responses.calls[2].request.headers


@responses.activate
def test_expired_token_without_password_names_the_profile():
    responses.get(f"{URL}/data/projects", status=401)
    with pytest.raises(SessionExpired) as info:
        client(profile="prod").get_text("/data/projects")
    assert str(info.value) == (
        "Session for profile 'prod' expired or invalid; run \"xnatctl auth login -p prod\""
    )


@responses.activate
def test_wrong_password_at_login_is_an_authentication_error_without_the_password():
    responses.get(f"{URL}/data/JSESSION", status=401, body="<h3>Login attempt failed.</h3>")
    c = XnatClient(URL, user="alice", password="s3cret-pw", retry_base_delay=0.0001)
    with pytest.raises(AuthenticationFailed) as info:
        c.get_text("/data/projects")
    assert "alice" in str(info.value)
    assert "s3cret-pw" not in str(info.value)
    assert len(responses.calls) == 1


@responses.activate
def test_user_agent_names_xnatctl():
    responses.get(f"{URL}/xapi/users/username", body="alice\n")
    assert client().whoami() == "alice"
    assert responses.calls[0].request.headers["User-Agent"].startswith("xnatctl/")


@responses.activate
def test_upload_streams_the_file_with_its_length(tmp_path):
    src = tmp_path / "f.bin"
    src.write_bytes(b"a" * 3_000_000)
    seen = []

    def check(request):
        assert request.headers["Content-Length"] == "3000000"
        assert request.headers["Content-Type"] == "application/octet-stream"
        return (200, {}, str(len(request.body)))

    responses.add_callback(responses.PUT, f"{URL}/data/projects/P/resources/R/files/f.bin", check)
    reply = client().upload(
        "PUT", "/data/projects/P/resources/R/files/f.bin", src, on_bytes=seen.append
    )
    assert reply == "3000000"
    assert sum(seen) == 3_000_000


def test_unreachable_server_is_a_network_error_naming_the_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = XnatClient(f"http://127.0.0.1:{port}", retries=2, retry_base_delay=0.0001)
    with pytest.raises(NetworkError) as info:
        c.get_text("/data/projects")
    assert str(info.value) == (
        f"cannot reach http://127.0.0.1:{port} (connection refused); check the URL and that "
        "the server is up"
    )


@responses.activate
def test_download_counts_bytes_and_writes_the_file(tmp_path):
    responses.get(f"{URL}/data/files/a.zip", body=b"z" * 2_500_000)
    seen = []
    dest = tmp_path / "a.zip"
    n = client().download("/data/files/a.zip", dest, on_bytes=seen.append)
    assert n == 2_500_000 == dest.stat().st_size == sum(seen)
    assert responses.calls[0].request.headers["Accept-Encoding"] == "identity"


@responses.activate
def test_retry_after_sets_the_wait_capped_by_the_maximum():
    waits = []
    responses.get(f"{URL}/data/a", status=429, headers={"Retry-After": "7"})
    responses.get(f"{URL}/data/a", status=503, headers={"Retry-After": "900"})
    responses.get(f"{URL}/data/a", status=503)
    responses.get(f"{URL}/data/a", body="ok")
    c = client(retry_base_delay=0.25, retry_max_delay=60, sleep=waits.append)
    assert c.get_text("/data/a") == "ok"
    assert waits[:2] == [7.0, 60.0]
    assert 0.25 <= waits[2] <= 60  # exponential backoff with jitter when no Retry-After


def test_profile_ca_bundle_becomes_the_verify_setting(tmp_path):
    from xnatctl.profiles import Profile

    assert Profile("a", "https://a.org", ca_bundle="/etc/ca.pem").verify == "/etc/ca.pem"
    assert Profile("a", "https://a.org", verify_ssl=False).verify is False
    assert XnatClient(URL, verify="/etc/ca.pem").session.verify == "/etc/ca.pem"
