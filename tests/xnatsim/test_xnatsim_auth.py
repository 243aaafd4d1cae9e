"""Authentication and project access rules."""

import time

import requests

USERS = [
    {"username": "olga", "password": "pw-olga", "roles": {"P1": "owner"}},
    {"username": "mike", "password": "pw-mike", "roles": {"P1": "member"}},
    {"username": "cora", "password": "pw-cora", "roles": {"P1": "collaborator"}},
    {"username": "nora", "password": "pw-nora"},
]


def _server(xnatsim_factory, **kwargs):
    srv = xnatsim_factory(users=USERS, **kwargs)
    admin = requests.Session()
    admin.auth = ("admin", "admin")
    assert admin.put(f"{srv.url}/data/projects/P1").ok
    assert admin.put(f"{srv.url}/data/projects/P1/subjects/S1").status_code == 201
    return srv, admin


def test_wrong_password_is_401_with_basic_challenge(xnatsim_factory):
    srv, _ = _server(xnatsim_factory)
    r = requests.get(f"{srv.url}/data/projects", auth=("admin", "nope"))
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="XNAT"'
    assert "<h3>" in r.text
    r = requests.get(f"{srv.url}/data/projects")
    assert r.status_code == 401
    assert requests.get(f"{srv.url}/xapi/users/username").status_code == 401


def test_jsession_flow(xnatsim_factory):
    srv, _ = _server(xnatsim_factory)
    s = requests.Session()
    sid = s.post(f"{srv.url}/data/JSESSION", auth=("olga", "pw-olga")).text
    assert len(sid) == 32 and sid == sid.upper()
    assert s.cookies["JSESSIONID"] == sid
    assert "SESSION_EXPIRATION_TIME" in s.cookies
    r = s.get(f"{srv.url}/data/projects/P1/subjects")  # cookie only
    assert r.status_code == 200
    assert s.get(f"{srv.url}/data/auth").text == "User 'olga' is logged in"
    assert s.delete(f"{srv.url}/data/JSESSION").status_code == 200
    bare = requests.get(f"{srv.url}/data/projects", cookies={"JSESSIONID": sid})
    assert bare.status_code == 401


def test_form_login_as_xnatpy_does(xnatsim_factory):
    srv, _ = _server(xnatsim_factory)
    s = requests.Session()
    r = s.put(f"{srv.url}/data/services/auth", data={"username": "mike", "password": "pw-mike"})
    assert r.status_code == 200 and len(r.text) == 32
    assert s.get(f"{srv.url}/xapi/users/username").text == "mike"
    bad = requests.put(
        f"{srv.url}/data/services/auth", data={"username": "mike", "password": "wrong"}
    )
    assert bad.status_code == 401


def test_session_expires_when_idle(xnatsim_factory):
    srv, _ = _server(xnatsim_factory, settings={"session_timeout_seconds": 0.5})
    s = requests.Session()
    sid = s.get(f"{srv.url}/data/JSESSION", auth=("olga", "pw-olga")).text
    cookies = {"JSESSIONID": sid}
    assert requests.get(f"{srv.url}/data/auth", cookies=cookies).status_code == 200
    time.sleep(0.8)
    assert requests.get(f"{srv.url}/data/auth", cookies=cookies).status_code == 401


def test_alias_token(xnatsim_factory):
    srv, _ = _server(xnatsim_factory)
    token = requests.get(f"{srv.url}/data/services/tokens/issue", auth=("cora", "pw-cora")).json()
    assert token["alias"] and token["secret"]
    r = requests.get(f"{srv.url}/xapi/users/username", auth=(token["alias"], token["secret"]))
    assert r.text == "cora"
    r = requests.get(f"{srv.url}/xapi/users/username", auth=(token["alias"], "wrong"))
    assert r.status_code == 401


def test_roles(xnatsim_factory):
    srv, _ = _server(xnatsim_factory)
    url = f"{srv.url}/data/projects/P1/subjects"
    # collaborators read but cannot write
    assert requests.get(url, auth=("cora", "pw-cora")).status_code == 200
    assert requests.put(f"{url}/S9", auth=("cora", "pw-cora")).status_code == 403
    assert requests.delete(f"{url}/S1", auth=("cora", "pw-cora")).status_code == 403
    # members write
    assert requests.put(f"{url}/S9", auth=("mike", "pw-mike")).status_code == 201
    edit = requests.get(
        f"{srv.url}/data/projects", params={"restrict": "edit"}, auth=("cora", "pw-cora")
    ).json()["ResultSet"]["Result"]
    assert edit == []
    roles = {
        r["ID"]: r["role"]
        for r in requests.get(f"{srv.url}/xapi/access/projects", auth=("mike", "pw-mike")).json()
    }
    assert roles == {"P1": "Members"}


def test_user_without_role_sees_nothing_of_private_project(xnatsim_factory):
    srv, admin = _server(xnatsim_factory)
    nora = ("nora", "pw-nora")
    listed = requests.get(f"{srv.url}/data/projects", auth=nora).json()["ResultSet"]
    assert listed["Result"] == [] and listed["totalRecords"] == "0"
    # A private project is not found by outsiders (ProjectSubjectList and ProjectResource look
    # it up with the user's rights): 404, not 403 (TestAliasTokenService.checkAliasToken).
    assert requests.get(f"{srv.url}/data/projects/P1/subjects", auth=nora).status_code == 404
    assert requests.get(f"{srv.url}/data/subjects", auth=nora).json()["ResultSet"]["Result"] == []
    assert requests.get(f"{srv.url}/data/projects/P1?format=json", auth=nora).status_code == 404
    # public projects are readable by anyone logged in
    assert admin.put(f"{srv.url}/data/projects/P1/accessibility/public").ok
    assert requests.get(f"{srv.url}/data/projects/P1/subjects", auth=nora).status_code == 200
    assert requests.put(f"{srv.url}/data/projects/P1/subjects/X", auth=nora).status_code == 403


def test_users_and_project_roles_over_rest(xnatsim_factory):
    srv, admin = _server(xnatsim_factory)
    r = admin.post(
        f"{srv.url}/xapi/users",
        json={"username": "newbie", "password": "pw-n", "email": "n@example.org"},
    )
    assert r.status_code == 201
    assert (
        requests.post(
            f"{srv.url}/xapi/users",
            auth=("mike", "pw-mike"),
            json={"username": "x", "password": "y"},
        ).status_code
        == 403
    )
    newbie = ("newbie", "pw-n")
    # not found rather than forbidden, as XNAT's secured project lookup (ProjectSubjectList)
    assert requests.get(f"{srv.url}/data/projects/P1/subjects", auth=newbie).status_code == 404
    r = requests.put(f"{srv.url}/data/projects/P1/users/Members/newbie", auth=("olga", "pw-olga"))
    assert r.status_code == 200
    assert requests.put(f"{srv.url}/data/projects/P1/subjects/N1", auth=newbie).status_code == 201
    assert (
        requests.put(
            f"{srv.url}/data/projects/P1/users/Owners/cora", auth=("mike", "pw-mike")
        ).status_code
        == 403
    )
    # Any user may create a project and owns it: uiAllowNonAdminProjectCreation defaults to
    # true (SiteConfigPreferences; ProjectResource.handlePut checks it).
    assert requests.put(f"{srv.url}/data/projects/P2", auth=newbie).status_code == 200
    roles = requests.get(f"{srv.url}/xapi/access/projects", auth=newbie).json()
    assert {r["ID"]: r["role"] for r in roles} == {"P1": "Members", "P2": "Owners"}
    # ...but an existing project it cannot see is not its to create (ProjectResource.handlePut
    # finds no project, and the new one conflicts with the existing ID)
    assert requests.put(f"{srv.url}/data/projects/P2", auth=("cora", "pw-cora")).status_code == 409
