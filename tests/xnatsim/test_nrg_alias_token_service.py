"""NRG's TestAliasTokenService (xnat-rest-tests), ported to xnatsim.

Each scenario runs twice, as the Java does: on a closed site (require_login, the default) and
on an open one (require_login=false). The helpers are those of NRG's grxnat
`AliasTokenSubinterface`: issue is `GET /data/services/tokens/issue[/user/{U}]`, validate is
`GET /data/services/tokens/validate/{alias}/{secret}` (200 with `valid` = the user name, 404
for a token that does not exist), invalidate is `GET /data/services/tokens/invalidate/{alias}`.
"""

from __future__ import annotations

import pytest
import requests

MAIN, OTHER = ("main", "pw-main"), ("other", "pw-other")
ADMIN = ("admin", "admin")
BOGUS = {"alias": "1-2-3-4-5-6-7-8", "secret": "hidden secret number"}


@pytest.fixture(params=[True, False], ids=["closed", "open"])
def site(request, xnatsim_factory):
    """The Java's @BeforeClass: each user creates a private project of their own."""
    srv = xnatsim_factory(
        users=[{"username": u, "password": p} for u, p in (MAIN, OTHER)],
        settings={"require_login": request.param},
    )
    for project, auth in (("MAINPRIV", MAIN), ("OTHERPRIV", OTHER)):
        r = requests.put(
            f"{srv.url}/data/projects/{project}", params={"accessibility": "private"}, auth=auth
        )
        assert r.status_code == 200, r.text
    return srv, request.param


def _issue(srv, auth, for_user: str | None = None) -> requests.Response:
    tail = f"/user/{for_user}" if for_user else ""
    return requests.get(f"{srv.url}/data/services/tokens/issue{tail}", auth=auth)


def _token(srv, auth, for_user: str | None = None) -> dict:
    r = _issue(srv, auth, for_user)
    assert r.status_code == 200, r.text
    return r.json()


def _check(srv, token: dict, main_status: int, other_status: int) -> None:
    """checkAliasToken: the token is the basic-auth user and password of a fresh client."""
    auth = (token["alias"], token["secret"])
    assert requests.get(f"{srv.url}/data/projects/MAINPRIV", auth=auth).status_code == main_status
    r = requests.get(f"{srv.url}/data/projects/OTHERPRIV", auth=auth)
    assert r.status_code == other_status


def _validate(srv, auth, token: dict, expected_user: str) -> bool:
    """AliasTokenSubinterface.validateAliasToken / validateTokenResponse."""
    r = requests.get(
        f"{srv.url}/data/services/tokens/validate/{token['alias']}/{token['secret']}", auth=auth
    )
    if r.status_code == 404:
        return False
    assert r.status_code == 200, r.text
    assert r.json()["valid"] == expected_user
    return True


# TestAliasTokenService.testSelfAliasTokenClosedXnat / testSelfAliasTokenOpenXnat
def test_self_alias_token(site):
    srv, _closed = site
    token = _token(srv, MAIN)
    assert token["xdatUserId"] == "main"
    # checkAliasTokenForMainUser: own private project 200, someone else's 404 (not 403)
    _check(srv, token, 200, 404)


# TestAliasTokenService.testProxyAliasTokenClosedXnat / testProxyAliasTokenOpenXnat
def test_proxy_alias_token(site):
    srv, closed = site
    # only admins issue tokens for other accounts; admin for itself sees everything
    _check(srv, _token(srv, ADMIN, "admin"), 200, 200)
    # without credentials: 401 on a closed site, 403 as guest on an open one
    r = requests.get(f"{srv.url}/data/services/tokens/issue/user/main")
    assert r.status_code == (401 if closed else 403)
    # another user may not issue one for main; the refusal names admins (grxnat checks this)
    r = _issue(srv, OTHER, "main")
    assert r.status_code == 403 and "admin" in r.text
    proxy = _token(srv, ADMIN, "main")
    assert proxy["xdatUserId"] == "main"
    _check(srv, proxy, 200, 404)


# TestAliasTokenService.testAliasTokenValidationClosedXnat / testAliasTokenValidationOpenXnat
def test_alias_token_validation(site):
    srv, _closed = site
    token = _token(srv, MAIN)
    _check(srv, token, 200, 404)
    token_auth = (token["alias"], token["secret"])
    for auth in (token_auth, MAIN):
        assert _validate(srv, auth, token, "main") is True
        assert _validate(srv, auth, BOGUS, "main") is False
    # a bogus token as credentials is a failed login, open site or not
    _check(srv, BOGUS, 401, 401)
    r = requests.get(f"{srv.url}/data/services/tokens/invalidate/{token['alias']}", auth=token_auth)
    assert r.status_code == 200
    # invalidatedTokenCode(): 401 on versions after 1.7.4
    _check(srv, token, 401, 401)
    assert _validate(srv, MAIN, token, "main") is False


def test_validate_with_a_wrong_secret_and_someone_elses_token(site):
    """Not in the Java: AliasTokenRestlet answers `{"valid": null}` for a known alias with the
    wrong secret, and refuses operations on another user's token to non-admins (403)."""
    srv, _closed = site
    token = _token(srv, MAIN)
    url = f"{srv.url}/data/services/tokens/validate/{token['alias']}"
    r = requests.get(f"{url}/wrong", auth=MAIN)
    assert r.status_code == 200 and r.json() == {"valid": None}
    r = requests.get(f"{url}/{token['secret']}", auth=OTHER)
    assert r.status_code == 403
    assert requests.get(f"{url}/{token['secret']}", auth=ADMIN).json() == {"valid": "main"}
    # validating needs the secret
    assert requests.get(url, auth=MAIN).status_code == 401
