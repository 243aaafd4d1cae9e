"""Ports of NRG's TestImport PREARCHIVE/MERGE scenarios (xnat-rest-tests, TestImport) on a
manual project, with DICOM-zip as the default handler (so conflicts are 400, as the test's
`conflictStatus` says for a DICOM-zip site)."""

import pytest

from tests.xnatsim.conftest import Series
from tests.xnatsim.nrg_archive_data import (
    files_of,
    new_project,
    post_zip,
    prearchive_rows,
    scan_zips,
    zip_of,
)
from xnatsim.testing import admin_session

P = "PROJ"


@pytest.fixture
def env(xnatsim_factory, tmp_path):
    srv = xnatsim_factory()
    s = admin_session(srv)
    new_project(s, srv.url, P, 0)  # TestImport: new Project().prearchiveCode(MANUAL)
    return srv, s, tmp_path


def dest(label, subject="SUBJ5"):
    return f"/archive/projects/{P}/subjects/{subject}/experiments/{label}"


def test_new_expt_xsi_overwrite_f_delete_f(env):
    # TestImport.testDataProjectExperimentNewExptXSIOverwriteFDeleteF
    srv, s, tmp = env
    assert s.put(f"{srv.url}/data/projects/{P}/subjects/SUBJ3").ok
    base = f"{srv.url}/data/projects/{P}/subjects/SUBJ3/experiments/PET1"
    assert s.put(base, params={"xsiType": "xnat:petSessionData", "date": "2000-01-01"}).ok
    mr = zip_of(tmp, "mr_1", [Series(1, "T1")])
    assert post_zip(s, srv.url, mr, dest=dest("PET1", "SUBJ3")).status_code == 400


@pytest.mark.parametrize("prevent", [True, False])
def test_new_expt_xsi_overwrite_t_delete_f(xnatsim_factory, tmp_path, prevent):
    # TestImport.testDataProjectExperimentNewExptXSIOverwriteTDeleteF: overwrite=delete into
    # a PET session fails while preventCrossModalityMerge is on; with it off the session stays
    # a PET session holding an MR scan.
    srv = xnatsim_factory(settings={"prevent_cross_modality_merge": prevent})
    s = admin_session(srv)
    new_project(s, srv.url, P, 0)
    base = f"{srv.url}/data/projects/{P}/subjects/SUBJ_03/experiments/PET1"
    assert s.put(base, params={"xsiType": "xnat:petSessionData", "date": "2000-01-01"}).ok
    mr = zip_of(tmp_path, "mr_1", [Series(1, "T1")])
    r = post_zip(s, srv.url, mr, dest=dest("PET1", "SUBJ_03"), overwrite="delete")
    if prevent:
        assert r.status_code == 400
        return
    assert r.status_code == 200, r.text
    exps = s.get(f"{srv.url}/data/projects/{P}/subjects/SUBJ_03/experiments").json()
    assert [e["xsiType"] for e in exps["ResultSet"]["Result"]] == ["xnat:petSessionData"]
    scans = s.get(f"{base}/scans").json()["ResultSet"]["Result"]
    assert [(x["ID"], x["xsiType"]) for x in scans] == [("1", "xnat:mrScanData")]


@pytest.mark.parametrize(
    ("second", "ok"),
    [
        ({}, False),  # testDataDuplicateScanFilesOverwriteFDeleteF
        ({"overwrite": "append"}, False),  # testDataDuplicateScanFilesOverwriteTDeleteF
        # testDataDuplicateScanFilesOverwriteTDeleteFWithFileFlag
        ({"overwrite": "append", "overwrite_files": "true"}, True),
        ({"overwrite": "delete"}, True),  # testDataDuplicateScanFilesOverwriteTDeleteT
    ],
)
def test_duplicate_scan_files(env, second, ok):
    # TestImport.testDataDuplicateScanFiles*
    srv, s, tmp = env
    mr = zip_of(tmp, "mr_1", [Series(1, "T1")])
    assert post_zip(s, srv.url, mr, dest=dest("MR0")).status_code == 200
    r = post_zip(s, srv.url, mr, dest=dest("MR0"), **second)
    assert r.status_code == (200 if ok else 400), r.text


def _scan_parts(tmp):
    """scan1_first_11_files, scan1_last_5_files (disjoint), scan1_last_6_files (one shared)."""
    whole = Series(1, "T1", instances=16)
    out = {}
    for name, keep in (
        ("first11", range(1, 12)),
        ("last5", range(12, 17)),
        ("last6", range(11, 17)),
    ):
        path = zip_of(tmp, name, [whole])
        import zipfile

        with zipfile.ZipFile(path) as zf:
            entries = {n: zf.read(n) for n in zf.namelist()}
        with zipfile.ZipFile(path, "w") as zf:
            for n, data in entries.items():
                if int(n.rsplit(".", 2)[-2]) in keep:
                    zf.writestr(n, data)
        out[name] = path
    return out


@pytest.mark.parametrize(
    ("part", "overwrite", "ok"),
    [
        ("last5", "append", True),  # testDataScan2partsFilesOverwriteTDeleteF
        ("last6", "delete", True),  # testDataScan2partsOverlapFilesOverwriteTDeleteT
        ("last6", "append", False),  # testDataScan2partsOverlapFilesOverwriteTDeleteF
    ],
)
def test_scan_in_two_parts(env, part, overwrite, ok):
    # TestImport.testDataScan2parts*
    srv, s, tmp = env
    parts = _scan_parts(tmp)
    assert post_zip(s, srv.url, parts["first11"], dest=dest("MR0")).status_code == 200
    r = post_zip(s, srv.url, parts[part], dest=dest("MR0"), overwrite=overwrite)
    assert r.status_code == (200 if ok else 400), r.text
    if ok:
        url = f"{srv.url}/data/projects/{P}/experiments/MR0/scans/1/resources/DICOM/files"
        assert len(files_of(s, url)) == 16


def test_prearc_merge_new_scan(env):
    # TestImport.testPrearcMergeNewScan: two scans of one study into one named prearchive slot
    srv, s, tmp = env
    scan1, scan2, _ = scan_zips(tmp)
    slot = f"/prearchive/projects/{P}/20000101_100001/MR0"
    for z in (scan1, scan2):
        assert post_zip(s, srv.url, z, overwrite="append", dest=slot).status_code == 200
    for n in (1, 2):
        r = s.get(f"{srv.url}/data{slot}/scans/{n}/resources/DICOM/files/MR.{n}.1.dcm")
        assert r.status_code == 200 and r.content.startswith(b"\0" * 128)


def test_prearc_merge_diff_uid_dicom_zip(env):
    # TestImport.testPrearcMergeDiffUidDicomZip: another study into the same slot fails (400)
    # and the slot keeps its single scan.
    srv, s, tmp = env
    scan1, _, scan2b = scan_zips(tmp)
    slot = f"/prearchive/projects/{P}/20000101_100001/MR0"
    assert post_zip(s, srv.url, scan1, overwrite="append", dest=slot).status_code == 200
    assert post_zip(s, srv.url, scan2b, overwrite="append", dest=slot).status_code == 400
    assert len(prearchive_rows(s, srv.url, P)) == 1
    scans = s.get(f"{srv.url}/data{slot}/scans").json()["ResultSet"]["Result"]
    assert [x["ID"] for x in scans] == ["1"]


# TestImport.testPrearcMergeDiffUidSi is not ported here: it exercises the session importer
# (SI), whose prearchive merging belongs to the import parsing side.


def test_prearc_gradual_import(env):
    # TestImport.testPrearcGradualImport: both uploads answer the same prearchive URI; commit
    # on a manual project answers that URI again; files are readable there.
    srv, s, tmp = env
    scan1, scan2, _ = scan_zips(tmp)
    uris = [
        post_zip(s, srv.url, z, dest=f"/prearchive/projects/{P}").text.strip()
        for z in (scan1, scan2)
    ]
    assert uris[0] == uris[1] and uris[0].startswith(f"/data/prearchive/projects/{P}/")
    r = s.post(f"{srv.url}{uris[0]}", params={"action": "commit"}, allow_redirects=False)
    assert r.status_code == 200 and r.text.strip() == uris[0]
    for n in (1, 2):
        r = s.get(f"{srv.url}{uris[0]}/scans/{n}/resources/DICOM/files/MR.{n}.1.dcm")
        assert r.status_code == 200


def test_unassigned_manual_archive_gradual_import(env):
    # TestImport.testUnassignedManualArchiveGradualImport: no project -> Unassigned; build;
    # move (301); commit with AA=true (301 with the archive URI).
    srv, s, tmp = env
    scan1, scan2, _ = scan_zips(tmp)
    uris = [post_zip(s, srv.url, z, dest="/prearchive").text.strip() for z in (scan1, scan2)]
    assert uris[0] == uris[1] and "/prearchive/projects/Unassigned/" in uris[0]
    url = f"{srv.url}{uris[0]}"
    assert s.post(url, params={"action": "build"}).status_code == 200
    r = s.post(url, params={"action": "move", "newProject": P}, allow_redirects=False)
    assert r.status_code == 301
    moved = uris[0].replace("Unassigned", P)
    r = s.post(
        f"{srv.url}{moved}", params={"action": "commit", "AA": "true"}, allow_redirects=False
    )
    assert r.status_code == 301 and r.text.startswith("/data/archive")
    for n in (1, 2):
        got = s.get(f"{srv.url}{r.text}/scans/{n}/resources/DICOM/files/MR.{n}.1.dcm")
        assert got.status_code == 200


def test_manual_archive_gradual_import(env):
    # TestImport.testManualArchiveGradualImport
    srv, s, tmp = env
    scan1, scan2, _ = scan_zips(tmp)
    uris = [
        post_zip(s, srv.url, z, dest=f"/prearchive/projects/{P}").text.strip()
        for z in (scan1, scan2)
    ]
    assert uris[0] == uris[1]
    r = s.post(
        f"{srv.url}{uris[0]}", params={"action": "commit", "AA": "true"}, allow_redirects=False
    )
    assert r.status_code == 301 and r.text.startswith("/data/archive") and r.text != uris[0]


def test_data_project_experiment_new_scan(env):
    # TestImport.testDataProjectExperimentNewScan: append a second scan; the first keeps its files
    srv, s, tmp = env
    scan1, scan2, _ = scan_zips(tmp)
    d = dest("MR0", "SUBJ_0009")
    assert post_zip(s, srv.url, scan1, dest=d, overwrite="append").status_code == 200
    files = f"{srv.url}/data/projects/{P}/experiments/MR0/scans/1/resources/DICOM/files"
    before = files_of(s, files)
    assert post_zip(s, srv.url, scan2, dest=d, overwrite="append").status_code == 200
    scans = s.get(f"{srv.url}/data/projects/{P}/experiments/MR0/scans").json()
    assert scans["ResultSet"]["totalRecords"] == "2"
    assert files_of(s, files) == before


def test_non_path_based_import(env):
    # TestImport.testNonPathBasedImport: project/subject/session parameters with action=commit
    # build the session into the prearchive (READY) on a manual project. The status
    # listener (`/data/status/{id}`) is not simulated.
    srv, s, tmp = env
    mr = zip_of(tmp, "mr_1", [Series(1, "T1")])
    r = post_zip(
        s,
        srv.url,
        mr,
        overwrite="append",
        project=P,
        subject="SUBJ_0010",
        session="MR0",
        action="commit",
    )
    assert r.status_code == 200
    assert [x["status"] for x in prearchive_rows(s, srv.url, P)] == ["READY"]


def test_import_into_an_existing_session_keeps_its_date_and_resources(env):
    # TestImport.testDataProjectExperimentOldRes: a session made first (with its own date and a
    # session resource), then a scan imported into it with overwrite=append: the scan is
    # added, the session's date is not overwritten by the DICOM's StudyDate and the resource
    # stays. This is how a transfer fills a session it created.
    srv, s, tmp = env
    base = f"{srv.url}/data/projects/{P}/subjects/SUBJ_0002/experiments/OLDRES"
    assert s.put(base, params={"xsiType": "xnat:mrSessionData", "date": "2000-01-01"}).ok
    body = b"a session resource made before the import"
    put = s.put(
        f"{base}/resources/TEST/files/notes.txt",
        params={"inbody": "true"},
        data=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code in (200, 201), put.text
    mr = zip_of(tmp, "mr_1", [Series(1, "T1")])
    r = post_zip(s, srv.url, mr, dest=dest("OLDRES", "SUBJ_0002"), overwrite="append")
    assert r.status_code == 200, r.text
    scans = s.get(f"{base}/scans", params={"format": "json"}).json()["ResultSet"]["Result"]
    assert len(scans) == 1
    exps = s.get(
        f"{srv.url}/data/projects/{P}/subjects/SUBJ_0002/experiments", params={"format": "json"}
    ).json()["ResultSet"]["Result"]
    assert [e["date"] for e in exps if e["label"] == "OLDRES"] == ["2000-01-01"]
    assert s.get(f"{base}/resources/TEST/files/notes.txt").content == body
