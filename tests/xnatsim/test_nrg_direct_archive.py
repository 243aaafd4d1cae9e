"""Ports of NRG's TestDirectArchive (xnat-rest-tests).

testDirectArchiveCStore, testDirectArchiveConflict, testDirectArchiveError and
testDirectArchiveProjectFilter send data by DICOM C-STORE to an SCP receiver, and
testDirectArchiveAPICommit reads `/xapi/direct-archive`: xnatsim has neither a DICOM SCP nor
the direct-archive table, so they cannot apply. With Direct-Archive=true xnatsim archives at
once."""

from tests.xnatsim.conftest import Series
from tests.xnatsim.nrg_archive_data import new_project, post_zip, zip_of
from xnatsim.testing import admin_session


def test_direct_archive_api(xnatsim_factory, tmp_path):
    # TestDirectArchive.testDirectArchiveAPI
    srv = xnatsim_factory()
    s = admin_session(srv)
    new_project(s, srv.url, "DA", None)
    mr = zip_of(tmp_path, "mr_1", [Series(1, "T1")], patient_name="SPP", patient_id="SPP_MR2")
    r = post_zip(s, srv.url, mr, project="DA", **{"Direct-Archive": "true"})
    assert r.status_code == 200, r.text
    assert s.get(f"{srv.url}/data/projects/DA/subjects/SPP/experiments/SPP_MR2").status_code == 200
