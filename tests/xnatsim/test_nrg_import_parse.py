"""How imports are parsed, ported from NRG's TestImport and TestDicomModalityAssignment
(XNAT 1.8.11: `DicomZipImporter`, `GradualDicomImporter`, `PrearcSessionArchiver.correctScanID`,
`HandlePetMr`).

TestImport's merge and prearchive scenarios are in test_nrg_import_merge.py. Not ported:
TestImport.testUserCacheUploadAndImport*, which upload to a user's cache
(`/data/user/cache/...`) and follow XNAT's event tracking, neither of which xnatsim serves nor a
transfer uses; and
TestDicomModalityAssignment.testModalityExtractionPetMrSplit: splitting one PET/MR upload into
a PET and an MR session (`PrearchiveSeparatePetMrHandler`) is an archive-side operation xnatsim
does not perform, so `pet_mr` takes only "petmr" and "pet".
"""

from __future__ import annotations

import pytest

from tests.xnatsim.nrg_dicom import SOP, Instance, post_zip, rows, write_zip
from xnatsim.testing import admin_session

SUBJ = "SPP_0x220790"
SESS = "SPP_0x220790_MR2"
MR_1 = {f"{i:06d}.dcm": Instance(instance=i, patient_name=SUBJ, patient_id=SESS) for i in range(6)}
NON_DICOM = "non_dicom_text_file.dcm"


@pytest.fixture
def mr_1(tmp_path):
    path = tmp_path / "mr_1.zip"
    write_zip(path, MR_1)
    return path


def _exists(s, srv, path: str) -> bool:
    return s.get(f"{srv.url}{path}", params={"format": "json"}).status_code == 200


# -- routing by parameters and headers ----------------------------------------------------------


def test_data_project(srv, admin, mr_1):
    # TestImport.testDataProject: dest=/archive/projects/{P}; subject and session from the
    # headers (PatientName, PatientID).
    r = post_zip(admin, srv, mr_1, dest="/archive/projects/P1")
    assert r.status_code == 200, r.text
    assert _exists(admin, srv, f"/data/projects/P1/subjects/{SUBJ}/experiments/{SESS}")


def test_data_subject(srv, admin, mr_1):
    # TestImport.testDataSubject: dest=/archive/projects/{P}/subjects/SUBJ1
    r = post_zip(admin, srv, mr_1, dest="/archive/projects/P1/subjects/SUBJ1")
    assert r.status_code == 200, r.text
    assert _exists(admin, srv, f"/data/projects/P1/subjects/SUBJ1/experiments/{SESS}")
    assert not _exists(admin, srv, f"/data/projects/P1/subjects/{SUBJ}")


def test_data_project_experiment_new(srv, admin, mr_1):
    # TestImport.testDataProjectExperimentNew
    r = post_zip(admin, srv, mr_1, dest="/archive/projects/P1/subjects/SUBJ2/experiments/MR0")
    assert r.status_code == 200, r.text
    assert r.text == "/data/archive/projects/P1/subjects/SUBJ2/experiments/MR0\r\n"
    [exp] = rows(admin, f"{srv.url}/data/projects/P1/subjects/SUBJ2/experiments")
    assert (exp["label"], exp["xsiType"]) == ("MR0", "xnat:mrSessionData")


# -- Ignore-Unparsable -------------------------------------------------------------------------


def _with_text(tmp_path):
    path = tmp_path / "mr_1_with_txt.zip"
    write_zip(path, {**MR_1, NON_DICOM: b"I'm actually a text file!"})
    return path


@pytest.mark.parametrize("param", [None, "false"])
def test_upload_ignore_unparsable_missing_or_false(srv, admin, tmp_path, param):
    # TestImport.testUploadIgnoreUnparsableMissingParam / testUploadIgnoreUnparsableFalse
    extra = {} if param is None else {"Ignore-Unparsable": param}
    r = post_zip(admin, srv, _with_text(tmp_path), PROJECT_ID="P1", **extra)
    assert r.status_code == 400
    assert f"unable to read DICOM object {NON_DICOM}" in r.text
    assert rows(admin, f"{srv.url}/data/prearchive/projects/P1") == []


def test_upload_ignore_unparsable_true(srv, admin, tmp_path):
    # TestImport.testUploadIgnoreUnparsableTrue: the session lands in the prearchive without
    # the text file; committing it archives all 6 DICOM files. (The Java commits with AA=true
    # and expects 301; xnatsim's commit answers 301 only for auto-archive projects.)
    r = post_zip(admin, srv, _with_text(tmp_path), PROJECT_ID="P1", **{"Ignore-Unparsable": "true"})
    assert r.status_code == 200, r.text
    uri = r.text.strip()
    assert uri.startswith("/data/prearchive/projects/P1/")
    c = admin.post(f"{srv.url}{uri}", params={"action": "commit", "AA": "true"})
    assert c.status_code in (200, 301), c.text
    files = rows(
        admin, f"{srv.url}/data/projects/P1/experiments/{SESS}/scans/1/resources/DICOM/files"
    )
    assert sorted(f["Name"] for f in files) == sorted(MR_1)


def test_ignore_unparsable_with_nothing_parsable_still_fails(srv, admin, tmp_path):
    # DicomZipImporter.call: with no session imported, the last skipped entry's error is thrown.
    path = tmp_path / "text.zip"
    write_zip(path, {NON_DICOM: b"text"})
    r = post_zip(admin, srv, path, PROJECT_ID="P1", **{"Ignore-Unparsable": "true"})
    assert r.status_code == 400 and f"unable to read DICOM object {NON_DICOM}" in r.text


# -- scan IDs --------------------------------------------------------------------------------


def _frame(n: int, series_uid: str = "") -> Instance:
    return Instance(instance=n, series=1, series_uid=series_uid)


MODIFIED_UID = "1.2.826.0.1.3680043.10.998.42"


def _scan_counts(s, srv, exp: str) -> dict[str, int]:
    out = {}
    for scan in rows(s, f"{srv.url}{exp}/scans"):
        out[scan["ID"]] = len(rows(s, f"{srv.url}{exp}/scans/{scan['ID']}/resources/DICOM/files"))
    return out


def test_modified_series_uids(srv, admin, tmp_path):
    # TestImport.testModifiedSeriesUIDs: frame 1 makes scan 1; frame 2 (same SeriesNumber,
    # another SeriesInstanceUID) makes 1-MR1; frame 3 (frame 2's UID) joins 1-MR1; frames 4 and
    # 5 (the original UID) join scan 1. The Java merges with overwrite=delete, which XNAT applies
    # per scan; xnatsim's archiver replaces the whole session for `delete`, so this port merges
    # with overwrite=append&overwrite_files=true, which keeps every scan as XNAT does.
    dest = "/archive/projects/P1/subjects/SUB5/experiments/MR0"
    exp = "/data/projects/P1/subjects/SUB5/experiments/MR0"
    uploads = [
        {"000001.dcm": _frame(1)},
        {"000002.dcm": _frame(2, MODIFIED_UID)},
        {"000003.dcm": _frame(3, MODIFIED_UID)},
        {"000004.dcm": _frame(4), "000005.dcm": _frame(5)},
    ]
    expected = [{"1": 1}, {"1": 1, "1-MR1": 1}, {"1": 1, "1-MR1": 2}, {"1": 3, "1-MR1": 2}]
    for n, (entries, want) in enumerate(zip(uploads, expected, strict=True)):
        path = tmp_path / f"frame{n}.zip"
        write_zip(path, entries)
        params = {"dest": dest, "Ignore-Unparsable": "true"}
        if n:
            params.update(overwrite="append", overwrite_files="true")
        r = post_zip(admin, srv, path, **params)
        assert r.status_code == 200, r.text
        assert _scan_counts(admin, srv, exp) == want
    scans = {s["ID"]: s for s in rows(admin, f"{srv.url}{exp}/scans")}
    assert scans["1-MR1"]["xsiType"] == "xnat:mrScanData"


def test_modified_series_uids_in_one_upload(srv, admin, tmp_path):
    # The same frames in one upload: the second series under SeriesNumber 1 is 1-MR1.
    path = tmp_path / "all.zip"
    write_zip(
        path,
        {
            "000001.dcm": _frame(1),
            "000002.dcm": _frame(2, MODIFIED_UID),
            "000003.dcm": _frame(3, MODIFIED_UID),
            "000004.dcm": _frame(4),
        },
    )
    r = post_zip(admin, srv, path, dest="/archive/projects/P1/subjects/S/experiments/E")
    assert r.status_code == 200, r.text
    assert _scan_counts(admin, srv, "/data/projects/P1/subjects/S/experiments/E") == {
        "1": 2,
        "1-MR1": 2,
    }


# -- modality ----------------------------------------------------------------------------------


def _modality_case(srv, admin, tmp_path, series: list[tuple[str, str, int]], **params):
    """Upload one study with `series` of (Modality, SOP class key, instances); return the
    session's xsiType and {scan ID: xsiType}."""
    entries = {}
    for n, (mod, sop, count) in enumerate(series, start=1):
        for i in range(1, count + 1):
            entries[f"{n}/{i}.dcm"] = Instance(
                series=n, instance=i, modality=mod, sop_class=SOP[sop]
            )
    path = tmp_path / "modality.zip"
    write_zip(path, entries)
    r = post_zip(admin, srv, path, dest="/archive/projects/P1/subjects/S/experiments/E", **params)
    assert r.status_code == 200, r.text
    [exp] = rows(admin, f"{srv.url}/data/projects/P1/experiments")
    scans = rows(admin, f"{srv.url}/data/projects/P1/experiments/E/scans")
    return exp["xsiType"], {s["ID"]: s["xsiType"] for s in scans}


MR_SCAN, CT_SCAN, PET_SCAN = "xnat:mrScanData", "xnat:ctScanData", "xnat:petScanData"
RT_SCAN, SC_SCAN = "xnat:rtImageScanData", "xnat:scScanData"


@pytest.mark.parametrize(
    "series, session, scans",
    [
        # TestDicomModalityAssignment.testModalityExtractionStandardMr
        ([("MR", "MR", 2), ("MR", "MR", 3)], "xnat:mrSessionData", [MR_SCAN, MR_SCAN]),
        # testModalityExtractionStandardPet
        ([("PT", "PT", 1)], "xnat:petSessionData", [PET_SCAN]),
        # testModalityExtractionSecondaryCapture
        ([("CT", "SC", 2)], "xnat:ctSessionData", [SC_SCAN]),
        # testModalityExtractionSecondaryCaptureUnmappableModality
        ([("SC", "SC", 1)], "xnat:otherDicomSessionData", [SC_SCAN]),
        # testModalityExtractionMrAndRt
        (
            [("RTSTRUCT", "RTSTRUCT", 1), ("MR", "EnhancedMR", 1)],
            "xnat:mrSessionData",
            [RT_SCAN, MR_SCAN],
        ),
        # testModalityExtractionXa
        ([("XA", "XA", 1)], "xnat:xaSessionData", ["xnat:xaScanData"]),
        # testModalityExtractionCr
        ([("CR", "CR", 2)], "xnat:crSessionData", ["xnat:crScanData"]),
        # testModalityExtractionMrSopClassMissingModality (1.8.5+)
        ([("", "MR", 4)], "xnat:mrSessionData", [MR_SCAN]),
        # testModalityExtractionPetCt
        ([("PT", "PT", 2), ("CT", "CT", 3)], "xnat:petSessionData", [PET_SCAN, CT_SCAN]),
        # testModalityExtractionPetCtRt
        (
            [("RTSTRUCT", "RTSTRUCT", 1), ("PT", "PT", 2), ("CT", "CT", 2)],
            "xnat:petSessionData",
            [RT_SCAN, PET_SCAN, CT_SCAN],
        ),
        # testModalityExtractionPetMr (site or project setting "petmr")
        ([("PT", "PT", 2), ("MR", "MR", 3)], "xnat:petmrSessionData", [PET_SCAN, MR_SCAN]),
    ],
)
def test_modality_assignment(srv, admin, tmp_path, series, session, scans):
    got_session, got_scans = _modality_case(srv, admin, tmp_path, series)
    assert got_session == session
    assert got_scans == {str(n): t for n, t in enumerate(scans, start=1)}


def test_modality_mr_inconsistent_sop_class(srv, admin, tmp_path):
    # TestDicomModalityAssignment.testModalityExtractionMrInconsistentSopClass: one MR series
    # with a Raw Data instance beside an MR image stays one MR scan.
    raw = "1.2.840.10008.5.1.4.1.1.66"
    path = tmp_path / "raw.zip"
    write_zip(
        path,
        {"1.dcm": Instance(instance=1, sop_class=raw), "2.dcm": Instance(instance=2)},
    )
    r = post_zip(admin, srv, path, dest="/archive/projects/P1/subjects/S/experiments/E")
    assert r.status_code == 200, r.text
    [exp] = rows(admin, f"{srv.url}/data/projects/P1/experiments")
    assert exp["xsiType"] == "xnat:mrSessionData"
    assert [
        (s["ID"], s["xsiType"])
        for s in rows(admin, f"{srv.url}/data/projects/P1/experiments/E/scans")
    ] == [("1", MR_SCAN)]


def test_modality_pet_mr_as_pet(xnatsim_factory, tmp_path):
    # TestDicomModalityAssignment.testModalityExtractionPetMrAsPet: the PET/MR setting "pet".
    srv = xnatsim_factory(settings={"pet_mr": "pet"})
    admin = admin_session(srv)
    assert admin.put(f"{srv.url}/data/projects/P1").ok
    session, scans = _modality_case(srv, admin, tmp_path, [("PT", "PT", 2), ("MR", "MR", 3)])
    assert session == "xnat:petSessionData"
    assert scans == {"1": PET_SCAN, "2": MR_SCAN}


def test_pet_mr_setting_is_checked(xnatsim_factory):
    with pytest.raises(ValueError, match="pet_mr"):
        xnatsim_factory(settings={"pet_mr": "separate"})
