"""The lost-session rule for sites that do not require a login, against mocked HTTP.

On such a site XNAT never answers 401 to an expired session: `XnatSecureGuard.authenticate`
lets the request through as guest, and `XnatExpiredPasswordFilter` (which calls
`request.getSession()` on every request) gives it a new session, whose JSESSIONID cookie the
reply sets. `/xapi/users/username` (`UsersApi.getUsername`, restrictTo Authenticated, which
guest passes when login is not required) then answers `guest`.
"""

from __future__ import annotations

import pytest
import requests
import responses

from planner.errors import NotFound
from xnatctl.client import XnatClient, new_session_id
from xnatctl.errors import SessionExpired

URL = "https://xnat.test"
OLD = "ABCDEF0123456789"
GUEST_SID = "GUEST00000000000000000000000000A"
NEW = "NEWTOKEN0123456789"
GUEST_COOKIE = {"Set-Cookie": f"JSESSIONID={GUEST_SID}; Path=/; HttpOnly"}
LISTING = {"ResultSet": {"Result": [{"ID": "S1"}], "totalRecords": "1"}}
EMPTY = {"ResultSet": {"Result": [], "totalRecords": "0"}}


def client(**kwargs) -> XnatClient:
    kwargs.setdefault("retry_base_delay", 0.0001)
    kwargs.setdefault("token", OLD)
    return XnatClient(URL, **kwargs)


def cookie_of(call) -> str:
    return call.request.headers.get("Cookie", "")


def paths() -> list[str]:
    return [call.request.path_url.split("?")[0] for call in responses.calls]


def reply(status: int = 200, cookie: str | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    if cookie is not None:
        response.cookies.set("JSESSIONID", cookie, path="/")
    return response


def test_new_session_id_is_a_different_non_empty_cookie():
    assert new_session_id(reply(cookie="B"), "A") == "B"
    assert new_session_id(reply(cookie="A"), "A") is None  # the same session
    assert new_session_id(reply(cookie=""), "A") is None  # a logout clearing it
    assert new_session_id(reply(), "A") is None
    assert new_session_id(reply(cookie="B"), None) is None  # we sent no session


@responses.activate
def test_a_404_in_a_new_guest_session_is_renewed_and_retried():
    sessions = []
    responses.get(f"{URL}/data/projects/P/subjects", status=404, headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="guest")
    responses.get(f"{URL}/data/JSESSION", body=NEW)
    responses.get(f"{URL}/data/projects/P/subjects", json=LISTING)
    c = client(user="alice", password="pw", on_session=sessions.append)
    assert c.get_rows("/data/projects/P/subjects") == [{"ID": "S1"}]
    assert paths() == [
        "/data/projects/P/subjects",
        "/xapi/users/username",
        "/data/JSESSION",
        "/data/projects/P/subjects",
    ]
    assert cookie_of(responses.calls[1]) == f"JSESSIONID={GUEST_SID}"  # asked in the new one
    assert cookie_of(responses.calls[3]) == f"JSESSIONID={NEW}"
    assert sessions == [NEW] and c.token == NEW


@responses.activate
def test_an_empty_listing_in_a_new_guest_session_is_not_believed():
    # guest sees a protected project's listings as empty (200), not as 404
    responses.get(f"{URL}/data/projects/P/subjects", json=EMPTY, headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="guest")
    responses.get(f"{URL}/data/JSESSION", body=NEW)
    responses.get(f"{URL}/data/projects/P/subjects", json=LISTING)
    c = client(user="alice", password="pw")
    assert c.get_rows("/data/projects/P/subjects") == [{"ID": "S1"}]


@responses.activate
def test_a_plain_404_costs_no_extra_request():
    responses.get(f"{URL}/data/projects/P/subjects", status=404)
    with pytest.raises(NotFound):
        client(user="alice", password="pw").get_rows("/data/projects/P/subjects")
    assert paths() == ["/data/projects/P/subjects"]


@responses.activate
def test_a_renamed_session_of_ours_is_kept_and_its_reply_stands():
    sessions = []
    responses.get(f"{URL}/data/projects/P/subjects", status=404, headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="alice")
    c = client(user="alice", password="pw", on_session=sessions.append)
    with pytest.raises(NotFound):
        c.get_rows("/data/projects/P/subjects")
    assert paths() == ["/data/projects/P/subjects", "/xapi/users/username"]  # no login
    assert c.token == GUEST_SID and sessions == [GUEST_SID]


@responses.activate
def test_without_a_password_a_lost_session_is_session_expired():
    responses.get(f"{URL}/data/projects/P/subjects", status=404, headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="guest")
    with pytest.raises(SessionExpired) as info:
        client(profile="prod").get_rows("/data/projects/P/subjects")
    assert str(info.value) == (
        "Session for profile 'prod' expired or invalid; run \"xnatctl auth login -p prod\""
    )
    assert "guest" in info.value.reason


@responses.activate
def test_a_second_lost_session_in_one_request_stops():
    responses.get(f"{URL}/data/a", status=404, headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="guest")
    responses.get(f"{URL}/data/JSESSION", body=NEW)
    with pytest.raises(SessionExpired):
        client(user="alice", password="pw").get_text("/data/a")
    assert paths().count("/data/JSESSION") == 1


@responses.activate
def test_a_write_that_succeeded_in_a_new_session_is_not_repeated():
    responses.post(f"{URL}/data/services/x", body="done", headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="guest")
    responses.get(f"{URL}/data/JSESSION", body=NEW)
    c = client(user="alice", password="pw")
    assert c.request_text("POST", "/data/services/x") == "done"
    assert paths() == ["/data/services/x", "/xapi/users/username", "/data/JSESSION"]
    assert c.token == NEW


@responses.activate
def test_a_refused_write_in_a_new_session_is_retried_after_renewal():
    responses.put(f"{URL}/data/projects/P/subjects/S", status=403, headers=GUEST_COOKIE)
    responses.get(f"{URL}/xapi/users/username", body="guest")
    responses.get(f"{URL}/data/JSESSION", body=NEW)
    responses.put(f"{URL}/data/projects/P/subjects/S", body="XNAT_S00001", status=201)
    c = client(user="alice", password="pw")
    assert c.request_text("PUT", "/data/projects/P/subjects/S") == "XNAT_S00001"


@responses.activate
def test_logout_of_a_lost_session_asks_nothing_more():
    responses.delete(
        f"{URL}/data/JSESSION",
        headers=[
            ("Set-Cookie", f"JSESSIONID={GUEST_SID}; Path=/"),
            ("Set-Cookie", "JSESSIONID=; Path=/; Max-Age=0"),
        ],
    )
    c = client(user="alice", password="pw")
    c.logout()
    assert paths() == ["/data/JSESSION"] and c.token is None
