"""Ports of NRG's TestPrearchiveMgmt (xnat-rest-tests).

Not ported: testArchiveEmptySessionAfterProjectAnonRejection (1.9.3, project anonymization
scripts and the PrearchiveDetails screen are not simulated)."""

import pytest

from tests.xnatsim.conftest import Series
from tests.xnatsim.nrg_archive_data import new_project, post_zip, prearchive_rows, zip_of
from xnatsim.testing import admin_session


@pytest.fixture
def env(xnatsim_factory, tmp_path):
    srv = xnatsim_factory()
    s = admin_session(srv)
    for p in ("PM1", "PM2"):
        new_project(s, srv.url, p, 0)
    return srv, s, zip_of(tmp_path, "mr_1", [Series(1, "T1")], patient_id="SPP_MR2")


def test_prearchive_listing(env):
    # TestPrearchiveMgmt.testPrearchiveListing: action=commit builds each session to READY
    srv, s, mr = env
    for subj, sess in (("1", "MR11"), ("1", "MR12"), ("2", "MR21")):
        r = post_zip(
            s,
            srv.url,
            mr,
            project="PM1",
            subject=subj,
            session=sess,
            overwrite="append",
            action="commit",
        )
        assert r.status_code == 200
    rows = prearchive_rows(s, srv.url, "PM1")
    assert sorted((r["subject"], r["name"], r["status"]) for r in rows) == [
        ("1", "MR11", "READY"),
        ("1", "MR12", "READY"),
        ("2", "MR21", "READY"),
    ]
    for r in rows:
        assert s.get(f"{srv.url}/data{r['url']}").status_code == 200


def test_prearchive_session_delete(env):
    # TestPrearchiveMgmt.testPrearchiveSessionDelete
    srv, s, mr = env
    post_zip(s, srv.url, mr, project="PM1", subject="SUBJ1", session="SUBJ1_MR1")
    rows = prearchive_rows(s, srv.url, "PM1")
    assert len(rows) == 1
    assert s.delete(f"{srv.url}/data{rows[0]['url']}").status_code == 200
    assert prearchive_rows(s, srv.url, "PM1") == []


def test_prearchive_with_destination(env):
    # TestPrearchiveMgmt.testPrearchiveWithDestination
    srv, s, mr = env
    d = "/prearchive/projects/PM1/20000101_050505/11223344556677"
    r = post_zip(s, srv.url, mr, dest=d, subject="SUBJ9", session="SUBJ9_MRI", overwrite="append")
    assert r.status_code == 200 and r.text.strip() == "/data" + d
    assert len(prearchive_rows(s, srv.url, "PM1")) == 1
    assert s.delete(f"{srv.url}/data{d}").status_code == 200
    assert prearchive_rows(s, srv.url, "PM1") == []


def test_unassigned_move(env):
    # TestPrearchiveMgmt.testUnassignedMove: Unassigned -> PM1 -> PM2 (services/prearchive/move)
    srv, s, mr = env
    post_zip(s, srv.url, mr, dest="/prearchive", subject="subject1")
    [row] = [r for r in prearchive_rows(s, srv.url) if r["project"] == "Unassigned"]
    r = s.post(
        f"{srv.url}/data/services/prearchive/move", data={"src": row["url"], "newProject": "PM1"}
    )
    assert r.status_code == 200
    [row] = prearchive_rows(s, srv.url, "PM1")
    r = s.post(
        f"{srv.url}/data/services/prearchive/move", data={"src": row["url"], "newProject": "PM2"}
    )
    assert r.status_code == 200
    assert prearchive_rows(s, srv.url, "PM1") == []
    [row] = prearchive_rows(s, srv.url, "PM2")
    r = s.post(f"{srv.url}/data/services/prearchive/delete", data={"src": row["url"]})
    assert r.status_code == 200 and prearchive_rows(s, srv.url, "PM2") == []


# testGradualCommitUnassignedMove uses the gradual-DICOM handler (single files), which
# belongs to the import parsing side; its move and delete steps are covered above.
