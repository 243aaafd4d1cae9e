"""NRG's TestInvalidUserAccess (xnat-rest-tests), ported to xnatsim.

`restDriver.invalidCredentials()` is a client with a wrong password (always 401); the main user
is a plain account outside the project (403 wherever the protected project is visible but not
theirs to change). The Java reads its subject documents from test resources; a small subject
document of our own stands in for `iu_subject_v1.xml`.
"""

from __future__ import annotations

import requests

MAIN = ("main", "pw-main")
BAD = ("main", "not-the-password")
SUBJECT_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<xnat:Subject label="IU1" xmlns:xnat="http://nrg.wustl.edu/xnat" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    '<xnat:demographics xsi:type="xnat:demographicData"><xnat:gender>male</xnat:gender>'
    "</xnat:demographics></xnat:Subject>"
)
XML = {"Content-Type": "text/xml"}


def _both(method: str, url: str, **kwargs) -> tuple[int, int]:
    """(status with invalid credentials, status as the main user)."""
    bad = requests.request(method, url, auth=BAD, **kwargs).status_code
    main = requests.request(method, url, auth=MAIN, **kwargs).status_code
    return bad, main


# TestInvalidUserAccess.testProtectedXMLCRUD
def test_protected_xml_crud(xnatsim_factory):
    srv = xnatsim_factory(users=[{"username": "main", "password": "pw-main"}])
    admin = requests.Session()
    admin.auth = ("admin", "admin")
    project = f"{srv.url}/data/projects/IUP"
    assert admin.put(project).ok
    assert admin.put(f"{project}/accessibility/protected").ok
    assert admin.get(f"{project}/accessibility").text == "protected"

    xml = {"format": "xml"}
    r = requests.get(f"{project}/accessibility", params=xml, auth=BAD)
    assert r.status_code == 401
    # a foreign user may read a protected project's accessibility
    r = requests.get(f"{project}/accessibility", auth=MAIN)
    assert (r.status_code, r.text) == (200, "protected")

    assert _both("PUT", f"{project}/accessibility/public", params=xml) == (401, 403)
    assert admin.get(f"{project}/accessibility").text == "protected"

    assert _both("DELETE", project, params={**xml, "removeFiles": "true"}) == (401, 403)
    assert admin.get(project, params={"format": "json"}).status_code == 200

    assert _both("PUT", project, params={**xml, "alias": "IUALIAS"}) == (401, 403)

    subjects = f"{project}/subjects"
    assert _both("POST", subjects, params=xml, data=SUBJECT_XML, headers=XML) == (401, 403)
    assert _both("PUT", f"{subjects}/2", params=xml, data=SUBJECT_XML, headers=XML) == (401, 403)

    query = {"format": "xml", "req_format": "qs", "gender": "female"}
    assert _both("PUT", f"{subjects}/1", params=query) == (401, 403)
    # nothing was created by any of it
    rows = admin.get(subjects, params={"format": "json"}).json()["ResultSet"]["Result"]
    assert rows == []


def test_posted_subject_document_creates_for_writers(xnatsim_factory):
    """The other side of the POST above: a member's subject document is created, labelled as
    the document says (ProjectSubjectList.handlePost)."""
    srv = xnatsim_factory(
        users=[{"username": "main", "password": "pw-main", "roles": {"IUP": "member"}}]
    )
    admin = requests.Session()
    admin.auth = ("admin", "admin")
    assert admin.put(f"{srv.url}/data/projects/IUP").ok
    admin.put(f"{srv.url}/data/projects/IUP/users/Members/main")
    r = requests.post(
        f"{srv.url}/data/projects/IUP/subjects", data=SUBJECT_XML, headers=XML, auth=MAIN
    )
    assert r.status_code == 201, r.text
    rows = admin.get(
        f"{srv.url}/data/projects/IUP/subjects", params={"columns": "label,gender"}
    ).json()["ResultSet"]["Result"]
    assert [(row["label"], row["gender"]) for row in rows] == [("IU1", "male")]
