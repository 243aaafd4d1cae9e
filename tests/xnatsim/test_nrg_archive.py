"""Ports of NRG's TestArchive (xnat-rest-tests). The site anonymization script is off there;
xnatsim keeps header bytes as uploaded unless the import side changes them.

Not ported: testWebQCGeneration (pipelines, deprecated in 1.8.0), testFixScanTypes (scan type
mapping) and testSetScanProperties (scan PUT, covered by the metadata tests)."""

import pytest

from tests.xnatsim.conftest import Series
from tests.xnatsim.nrg_archive_data import files_of, new_project, post_zip, zip_of
from xnatsim.testing import admin_session


@pytest.fixture
def env(xnatsim_factory, tmp_path):
    srv = xnatsim_factory()
    s = admin_session(srv)
    new_project(s, srv.url, "ARC", 0)
    return srv, s, zip_of(tmp_path, "mr_1", [Series(1, "T1", instances=6)])


def test_import_to_archive(env):
    # TestArchive.testImportToArchive
    srv, s, mr = env
    r = post_zip(
        s,
        srv.url,
        mr,
        dest="/archive",
        project="ARC",
        subject="S1",
        session="MR1",
        overwrite="append",
    )
    assert r.status_code == 200, r.text
    url = f"{srv.url}/data/projects/ARC/experiments/MR1/scans/1/resources/DICOM/files"
    assert len(files_of(s, url)) == 6


@pytest.mark.parametrize("with_params", [False, True])
def test_basic_archive_from_prearc(env, with_params):
    # TestArchive.testBasicArchiveFromPrearc / testBasicArchiveFromPrearcWParams
    srv, s, mr = env
    uri = post_zip(s, srv.url, mr, dest="/prearchive/projects/ARC", overwrite="append").text
    form = {"src": uri.strip(), "overwrite": "append"}
    label = "SESS1"
    if with_params:
        form.update(
            {
                "xnat:mrSessionData/project": "ARC",
                "xnat:mrSessionData/subject_id": "S9",
                "xnat:mrSessionData/label": "MR1",
            }
        )
        label = "MR1"
    r = s.post(f"{srv.url}/data/services/archive", data=form, allow_redirects=False)
    assert r.status_code == 200, r.text
    url = f"{srv.url}/data/projects/ARC/experiments/{label}/scans/1/resources/DICOM/files"
    assert len(files_of(s, url)) == 6
