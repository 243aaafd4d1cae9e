"""NRG's TestSharing (xnat-rest-tests), ported to xnatsim.

Both projects are protected: the main user sees them but not their data unless a role or a
share lets them in, and data they may not read is not found (404), not forbidden. The REST calls
are those grxnat's helpers make: sharing is `PUT <entity>/projects/{P}?label=L`, unsharing is
`DELETE` of the shared entity in the sharing project, roles are
`PUT|DELETE /data/projects/{P}/users/{group}/{user}`.

Not ported: the reconstruction steps of testUnShared (`.../reconstructions/RECON5` PUT, GET and
DELETE): xnatsim serves no reconstructions, an XNAT data type no client of this project uses.
"""

from __future__ import annotations

import pytest
import requests

MAIN = ("main", "pw-main")
MR = {"xsiType": "xnat:mrSessionData", "date": "2000-01-01"}
QC = {"xsiType": "xnat:qcManualAssessorData", "req_format": "qs"}


class Site:
    def __init__(self, srv) -> None:
        self.url = srv.url
        self.admin = requests.Session()
        self.admin.auth = ("admin", "admin")
        self.main = requests.Session()
        self.main.auth = MAIN

    def project(self, pid: str) -> str:
        return f"{self.url}/data/projects/{pid}"

    def subject(self, pid: str, label: str) -> str:
        return f"{self.project(pid)}/subjects/{label}"

    def session(self, pid: str, subject: str, label: str) -> str:
        return f"{self.subject(pid, subject)}/experiments/{label}"

    def add_user(self, who: requests.Session, pid: str, group: str, user: str) -> None:
        assert who.put(f"{self.project(pid)}/users/{group}/{user}").status_code == 200


@pytest.fixture
def site(xnatsim_factory) -> Site:
    """The Java's @BeforeMethod: the main user creates USERPROJ, the admin ADMINPROJ, both
    protected."""
    srv = xnatsim_factory(users=[{"username": "main", "password": "pw-main"}])
    s = Site(srv)
    for who, pid in ((s.main, "USERPROJ"), (s.admin, "ADMINPROJ")):
        assert who.put(s.project(pid), params={"accessibility": "protected"}).status_code == 200
    return s


def _status(r: requests.Response) -> int:
    return r.status_code


# TestSharing.testUnShared
def test_unshared(site: Site):
    s = site
    main, admin = s.main, s.admin
    subject = s.subject("ADMINPROJ", "1")
    session = s.session("ADMINPROJ", "1", "MR1")
    shared_subject = s.subject("USERPROJ", "TOLSEN1")
    shared_session = s.session("USERPROJ", "TOLSEN1", "TOLSEN_E1")
    details = {
        "group": "control",
        "src": "12",
        "dob": "2001-01-01",
        "gender": "male",
        "handedness": "left",
    }
    assert admin.put(subject, params=details).status_code == 201
    assert admin.put(session, params=MR).status_code == 201

    assert _status(main.get(session, params={"format": "xml"})) == 404
    assert _status(main.get(subject)) == 404
    assert _status(main.delete(session)) == 404
    assert _status(main.delete(subject)) == 404
    assert _status(admin.put(f"{subject}/projects/USERPROJ", params={"label": "TOLSEN1"})) == 200

    assert _status(admin.get(subject)) == 200
    assert _status(main.get(shared_subject)) == 200
    # still can't read the MR
    assert _status(main.get(session)) == 404
    r = admin.put(f"{session}/projects/USERPROJ", params={"label": "TOLSEN_E1"})
    assert r.status_code == 200
    assert _status(admin.get(session)) == 200
    assert _status(main.get(shared_session)) == 200

    assert _status(main.delete(subject)) in (403, 404)
    assert _status(main.delete(session)) in (403, 404)

    # unshares
    assert _status(main.delete(shared_subject)) == 200
    assert _status(admin.get(subject)) == 200
    assert _status(admin.get(session)) == 200
    assert _status(main.get(subject)) == 404
    assert _status(main.delete(session)) == 404

    s.add_user(admin, "ADMINPROJ", "Members", "main")
    assert _status(main.get(subject)) == 200
    assert _status(main.get(session)) == 200

    # the Java logs out and in again here, to refresh cached rights
    jsession = main.get(f"{s.url}/data/JSESSION").text
    assert _status(main.delete(f"{s.url}/data/JSESSION/{jsession}")) == 200
    assert _status(main.put(f"{subject}/projects/USERPROJ", params={"label": "TOLSEN1"})) == 200
    assert _status(main.put(f"{session}/projects/USERPROJ", params={"label": "TOLSEN_E1"})) == 200

    for url in (subject, session, shared_subject, shared_session):
        assert _status(main.get(url)) == 200

    assessor = f"{shared_session}/assessors/QC1"
    main.put(assessor, params={**QC, "format": "xml", "xnat:qcManualAssessorData/pass": "0"})
    assert _status(main.delete(assessor)) == 200

    # unshares (the session's share goes with the subject's)
    assert _status(main.delete(shared_subject)) == 200
    assert _status(main.get(subject)) == 200
    assert _status(main.get(session)) == 200

    assert _status(main.put(f"{session}/projects/USERPROJ")) == 200

    assert _status(main.delete(subject)) == 403  # members can't delete
    assert _status(admin.delete(subject)) == 200

    subject2 = s.subject("ADMINPROJ", "2")
    shared_subject2 = s.subject("USERPROJ", "TOLSEN_2")
    assert admin.put(subject2).status_code == 201
    assert _status(admin.put(f"{subject2}/projects/USERPROJ", params={"label": "TOLSEN_2"})) == 200

    assert _status(main.get(shared_subject2)) == 200
    r = main.put(f"{shared_subject2}/experiments/MR2", params=MR)
    assert r.status_code == 201, r.text
    # mr2 is not available in source project
    assert _status(admin.get(s.session("ADMINPROJ", "2", "MR2"))) == 404

    subject5 = s.subject("ADMINPROJ", "5")
    mr5 = s.session("ADMINPROJ", "5", "MR5_5")
    scan5 = f"{mr5}/scans/SCAN5"
    assert main.put(subject5).status_code == 201
    assert main.put(mr5, params=MR).status_code == 201
    assert main.put(scan5, params={"xsiType": "xnat:mrScanData"}).status_code == 200

    # members can't delete any of this
    assert _status(main.delete(subject5)) == 403
    assert _status(main.delete(mr5)) == 403
    assert _status(main.delete(scan5)) == 403

    # remove user from shared project
    r = admin.delete(f"{s.project('ADMINPROJ')}/users/member/main")
    assert r.status_code == 200

    # recheck that this user cannot access the project resources
    assert _status(main.get(mr5, params={"format": "xml"})) == 404
    assert _status(admin.get(mr5, params={"format": "xml"})) == 200
    assert _status(main.get(subject5)) == 404
    assert _status(admin.get(subject5)) == 200
    assert _status(main.delete(mr5)) == 404
    assert _status(main.delete(subject5)) == 404


# TestSharing.testImageAssessorCreation
def test_image_assessor_creation(site: Site):
    s = site
    main, admin = s.main, s.admin
    # in this test USERPROJ is the aggregator project and ADMINPROJ a site project;
    # cross share users as collaborators
    s.add_user(admin, "ADMINPROJ", "Collaborators", "main")
    s.add_user(main, "USERPROJ", "Collaborators", "admin")

    # create subject in user project and share to admin project
    subject = s.subject("USERPROJ", "6")
    assert main.put(subject).status_code == 201
    assert _status(admin.put(f"{subject}/projects/ADMINPROJ", params={"label": "SHARE_S6"})) == 200

    # create session in admin project (the shared subject addressed by its original label)
    session = s.session("ADMINPROJ", "6", "MR6_6")
    assert admin.put(session, params=MR).status_code == 201
    r = main.put(f"{session}/projects/USERPROJ", params={"label": "SHARE_E6"})
    assert r.status_code == 200, r.text

    # create qc in the user project
    assessor = f"{s.session('USERPROJ', '6', 'SHARE_E6')}/assessors/QC1"
    r = main.put(assessor, params={**QC, "xnat:qcManualAssessorData/pass": "0"})
    assert r.status_code == 201, r.text

    share_url = f"{assessor}/projects/ADMINPROJ"
    assert _status(admin.put(share_url, params={"label": "ADMIN_QC1"})) == 200

    # house cleaning
    assert _status(admin.delete(share_url)) == 200
    assert _status(main.delete(assessor)) == 200
    assert _status(main.delete(f"{session}/projects/USERPROJ")) == 200
    assert _status(admin.delete(session)) == 200
    assert _status(main.delete(subject)) == 200


def test_share_listings(site: Site):
    """`GET <entity>/projects` lists the owning project first, then each sharing project with
    the label there (SecureResource.representProjectsForArchivableItem,
    SubjAssessmentResource.represent); a hand-built table, so no totalRecords."""
    s = site
    admin = s.admin
    subject = s.subject("ADMINPROJ", "1")
    session = s.session("ADMINPROJ", "1", "MR1")
    assert admin.put(subject).status_code == 201
    assert admin.put(session, params=MR).status_code == 201
    assert admin.put(f"{subject}/projects/USERPROJ", params={"label": "S1_U"}).ok
    assert admin.put(f"{session}/projects/USERPROJ", params={"label": "E1_U"}).ok
    for url, labels in ((subject, ("1", "S1_U")), (session, ("MR1", "E1_U"))):
        body = admin.get(f"{url}/projects", params={"format": "json"}).json()["ResultSet"]
        assert "totalRecords" not in body
        rows = body["Result"]
        assert [(r["label"], r["ID"]) for r in rows] == list(
            zip(labels, ("ADMINPROJ", "USERPROJ"), strict=True)
        )
        assert set(rows[0]) == {"label", "ID", "Secondary_ID", "Name"}
    # the same listing through the sharing project
    shared = s.session("USERPROJ", "S1_U", "E1_U")
    rows = admin.get(f"{shared}/projects").json()["ResultSet"]["Result"]
    assert [r["ID"] for r in rows] == ["ADMINPROJ", "USERPROJ"]
    # after unsharing, only the owner remains
    assert admin.delete(s.subject("USERPROJ", "S1_U")).status_code == 200
    rows = admin.get(f"{session}/projects").json()["ResultSet"]["Result"]
    assert [r["ID"] for r in rows] == ["ADMINPROJ"]
    assert admin.post(f"{session}/projects").status_code == 405
