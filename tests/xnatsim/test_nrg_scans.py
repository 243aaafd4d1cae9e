"""NRG's TestScans (xnat-rest-tests) against xnatsim.

Not ported: `testPullDataFromHeadersSession` and `testPullDataFromHeadersScan` are
`@AddedIn(Xnat_1_9_3)`; `pullDataFromHeaders` does not exist in XNAT 1.8.11, which xnatsim
follows.
"""

from __future__ import annotations

from tests.xnatsim.nrg_files_data import session_zip


def test_implicit_scan_type_change_validation(srv, admin, tmp_path):
    # TestScans.testImplicitScanTypeChangeValidation
    zip_path = session_zip(tmp_path / "scan1.zip", "SCAN1", series=1)
    r = admin.post(
        f"{srv.url}/data/services/import",
        params={
            "import-handler": "DICOM-zip",
            "dest": "/archive/projects/P1/subjects/SUBJ/experiments/SESS",
        },
        data=zip_path.read_bytes(),
        headers={"Content-Type": "application/zip"},
    )
    assert r.status_code == 200, r.text
    scans_url = f"{srv.url}/data/projects/P1/subjects/SUBJ/experiments/SESS/scans"
    (scan,) = admin.get(scans_url, params={"format": "json"}).json()["ResultSet"]["Result"]
    assert scan["xsiType"] == "xnat:mrScanData"
    # A field of another scan type is silently ignored (XNAT-7176): 200, nothing changes.
    r = admin.put(f"{scans_url}/{scan['ID']}", params={"xnat:ctScanData/note": "test"})
    assert r.status_code == 200
    (after,) = admin.get(scans_url, params={"format": "json"}).json()["ResultSet"]["Result"]
    assert after["xsiType"] == "xnat:mrScanData"
    assert after["note"] == ""
    assert admin.delete(f"{srv.url}/data/projects/P1/subjects/SUBJ").status_code == 200
    assert admin.get(scans_url, params={"format": "json"}).status_code == 404
