"""`GET /data/projects?permissions=ACTION&dataType=TYPE`, as XNAT 1.8.11 serves it.

`ProjectListResource.PermissionsProjectHandler` hands the request to
`DefaultGroupsAndPermissionsCache.getProjectsForDatatypeAction`, which runs
`SELECT ID,secondary_ID FROM xnat_projectData ...` on PostgreSQL, which folds unquoted column
names to lower case, and sorts on `secondary_id`. The table goes out through `representTable`
with no metadata: only `id` and `secondary_id`, no URI, no totalRecords.
"""

from __future__ import annotations

import csv
import io

import pytest
import requests

USERS = [
    {"username": "olga", "password": "o", "roles": {"PB": "owner"}},
    {"username": "mike", "password": "m", "roles": {"PA": "member", "PC": "collaborator"}},
]


@pytest.fixture
def srv(xnatsim_factory):
    srv = xnatsim_factory(users=USERS)
    admin = ("admin", "admin")
    # secondary IDs sort the other way round from the IDs
    for pid, secondary, access in (
        ("PA", "Z_A", "private"),
        ("PB", "Y_B", "private"),
        ("PC", "X_C", "private"),
        ("PD", "W_D", "public"),
    ):
        params = {"secondary_ID": secondary, "accessibility": access}
        assert requests.put(f"{srv.url}/data/projects/{pid}", params=params, auth=admin).ok
    for user in USERS:
        for project, role in user["roles"].items():
            group = {"owner": "Owners", "member": "Members", "collaborator": "Collaborators"}
            url = f"{srv.url}/data/projects/{project}/users/{group[role]}/{user['username']}"
            assert requests.put(url, auth=admin).ok
    return srv


def _get(srv, auth, **params):
    return requests.get(f"{srv.url}/data/projects", params=params, auth=auth)


def test_rows_are_lower_case_id_and_secondary_id_sorted_by_secondary_id(srv):
    r = _get(srv, ("admin", "admin"), permissions="edit", dataType="xnat:subjectData")
    body = r.json()["ResultSet"]
    assert "totalRecords" not in body
    # a data admin gets every project
    assert body["Result"] == [
        {"id": "PD", "secondary_id": "W_D"},
        {"id": "PC", "secondary_id": "X_C"},
        {"id": "PB", "secondary_id": "Y_B"},
        {"id": "PA", "secondary_id": "Z_A"},
    ]
    # the raw table ignores columns= and filters
    r = _get(
        srv, ("admin", "admin"), permissions="edit", dataType="xnat:subjectData", columns="ID,URI"
    )
    assert list(r.json()["ResultSet"]["Result"][0]) == ["id", "secondary_id"]
    text = _get(
        srv, ("admin", "admin"), permissions="edit", dataType="xnat:subjectData", format="csv"
    ).text
    assert next(csv.reader(io.StringIO(text))) == ["id", "secondary_id"]


def test_which_projects_each_action_lists(srv):
    def ids(auth, action):
        r = _get(srv, auth, permissions=action, dataType="xnat:mrSessionData")
        assert r.status_code == 200, r.text
        return [row["id"] for row in r.json()["ResultSet"]["Result"]]

    mike, olga = ("mike", "m"), ("olga", "o")
    # members and owners create and edit; collaborators and guest's public read do not
    assert ids(mike, "edit") == ["PA"]
    assert ids(mike, "create") == ["PA"]
    assert ids(olga, "edit") == ["PB"]
    # only owners delete
    assert ids(mike, "delete") == []
    assert ids(olga, "delete") == ["PB"]
    # reading adds collaborations and the public projects guest may read
    assert ids(mike, "read") == ["PD", "PC", "PA"]
    # project rights sit on xnat:projectData/ID, which the query never matches
    r = _get(srv, mike, permissions="read", dataType="xnat:projectData")
    assert r.json()["ResultSet"]["Result"] == []


def test_bad_permissions_or_data_type_fail_as_in_xnat(srv):
    # getProjectsForDatatypeAction throws, and ProjectListResource turns that into a 500
    assert (
        _get(srv, ("mike", "m"), permissions="own", dataType="xnat:subjectData").status_code == 500
    )
    assert _get(srv, ("mike", "m"), permissions="edit").status_code == 500


def test_other_project_listings_keep_display_field_names(srv):
    """The default listing (`DefaultProjectHandler`, display fields) keeps `ID`,
    `secondary_ID` and the URI; restrict=edit lists the projects the user owns."""
    body = _get(srv, ("mike", "m")).json()["ResultSet"]
    assert body["totalRecords"] == "3"
    assert {r["ID"] for r in body["Result"]} == {"PA", "PC", "PD"}
    assert {"ID", "secondary_ID", "URI"} <= set(body["Result"][0])
    rows = _get(srv, ("olga", "o"), restrict="edit").json()["ResultSet"]["Result"]
    assert [r["ID"] for r in rows] == ["PB"]


def test_project_users_listing_has_the_sql_names(srv):
    """`ProjectUserListResource` is plain SQL too: `SELECT g.id AS "GROUP_ID",
    displayname,login,firstname,lastname,email ... ORDER BY g.id DESC`."""
    requests.put(
        f"{srv.url}/data/projects/PB/users/Members/mike", auth=("admin", "admin")
    ).raise_for_status()
    body = requests.get(f"{srv.url}/data/projects/PB/users", auth=("olga", "o")).json()
    rows = body["ResultSet"]["Result"]
    assert list(rows[0]) == ["GROUP_ID", "displayname", "login", "firstname", "lastname", "email"]
    # the admin who created PB is one of its owners, as XNAT makes a project's creator
    assert [(r["GROUP_ID"], r["displayname"], r["login"]) for r in rows] == [
        ("PB_owner", "Owners", "admin"),
        ("PB_owner", "Owners", "olga"),
        ("PB_member", "Members", "mike"),
    ]
