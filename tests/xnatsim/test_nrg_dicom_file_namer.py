"""File names of imported DICOM, ported from NRG's TestDicomFileNamer (XNAT 1.8.11:
`GradualDicomImporter.getSafeFile`, `TemplatizedDicomFileNamer`, `Restructurer.run`), and how
an incoming session's DICOM entries merge into an archived one (`MergeCatCatalog`,
`MergeSessionsA`, `SessionOverwriteCheck`, the site preference
`useSopInstanceUidToUniquelyIdentifyDicom`, xnatsim's `use_sop_instance_uid` setting).

NRG's FileNamerTest projects are auto-archive-overwrite (prearchive code 5) and its steps
REBUILD and ARCHIVE are `POST .../prearchive/...?action=build` and `/data/services/archive`;
the ports do the same. NRG's test data writer names each file of a transformation by its
index (`0.dcm`, `1.dcm`, ... as sample1_orig_names_instance_1_replaced.json shows); the ports
name them alike.

Not ported, because xnatsim has no such path or setting: the C-STORE tests
(testCstoreFileNaming*, testDicomUidOverwrite, testUidDuplication*, testDicomFilenameWithAnon,
testMergeSameOriginalDicom*, testDicomFilenameMismatchInstanceDuplication: no DICOM receiver),
the ones that change the site's file-name template (testDicomFilenamerUpdate,
testDicomFilenamerInduceDataloss*: no template setting), and the file-backup variant
testMergeSameUidDifferentNameLegacyFilenameSettingBackup (no site backup settings). Where a
merge test begins with C-STORE (testSessionImporterUidOverwrite) the port archives the same
instances under the site template's names with a DICOM-zip `rename=true` import, which names
them as C-STORE does (testDicomZipImportWithRename checks both against sample1.json). NRG's
CATALOG_REFRESH step is checked by looking at the resource directory itself: a refresh would
bring back any replaced file left on disk.
"""

from __future__ import annotations

import io
import sqlite3

import pydicom
import pytest

from tests.xnatsim.nrg_dicom import SOP, Instance, post_zip, rows, scan_files, uid, write_zip
from xnatsim.catmerge import (
    CAT_ENTRY_MATCH,
    DUPLICATE_DICOM,
    HAS_FILES,
    NAME_OF_NON_DICOM,
    NAME_OTHER_UID,
    CatalogConflict,
    Entry,
    merge_catalog,
    overwrite_conflict,
)
from xnatsim.dicomnaming import template_name
from xnatsim.store import Store
from xnatsim.testing import admin_session

DEST = "/archive/projects/P1/subjects/Sample_Patient/experiments/Sample_ID"
EXP = "/data/projects/P1/subjects/Sample_Patient/experiments/Sample_ID"


def _sample(series=(4, 5, 6), instances=2) -> dict[str, Instance]:
    """A small stand-in for NRG's SAMPLE_1: three series, uploaded names per instance."""
    return {
        f"{n}/{n}_{i:03d}.dcm": Instance(series=n, instance=i)
        for n in series
        for i in range(1, instances + 1)
    }


def _header(inst: Instance) -> pydicom.Dataset:
    ds = pydicom.Dataset()
    ds.StudyInstanceUID = uid(inst.study)
    ds.SeriesNumber = inst.series
    ds.InstanceNumber = inst.instance
    ds.SOPClassUID = inst.sop_class_uid
    ds.SOPInstanceUID = inst.sop_instance_uid
    return ds


def test_template_hash_is_javas_list_hash_in_base36():
    # TemplatizedDicomFileNamer.calculateHashString: List.hashCode of the values, & 0xffffffff,
    # Long.toString(..., 36). Arrays.asList("a", "b").hashCode() == 31 * (31 + 97) + 98 == 4066
    # == 3 * 36**2 + 4 * 36 + 34, i.e. "34y" in base 36.
    ds = pydicom.Dataset()
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesNumber = 4
    ds.InstanceNumber = 2
    ds.SOPClassUID = "a"
    ds.SOPInstanceUID = "b"
    assert template_name(ds) == "1.2.3-4-2-34y.dcm"
    del ds.InstanceNumber
    assert template_name(ds) == "1.2.3-4-no-value-for-InstanceNumber-34y.dcm"


def test_dicom_zip_import_without_rename(srv, admin, tmp_path):
    # TestDicomFileNamer.testDicomZipImportWithoutRename
    path = tmp_path / "sample.zip"
    entries = _sample()
    write_zip(path, entries)
    r = post_zip(admin, srv, path, dest=DEST, rename="false")
    assert r.status_code == 200, r.text
    assert scan_files(admin, srv, EXP) == {
        str(n): sorted(k.split("/")[1] for k in entries if k.startswith(f"{n}/")) for n in (4, 5, 6)
    }


def test_dicom_zip_import_with_rename(srv, admin, tmp_path):
    # TestDicomFileNamer.testDicomZipImportWithRename: the site template names every file.
    path = tmp_path / "sample.zip"
    entries = _sample()
    write_zip(path, entries)
    r = post_zip(admin, srv, path, dest=DEST, rename="true")
    assert r.status_code == 200, r.text
    files = scan_files(admin, srv, EXP)
    for n in (4, 5, 6):
        expected = sorted(
            template_name(pydicom.dcmread(_write(tmp_path, inst), stop_before_pixels=True))
            for k, inst in entries.items()
            if k.startswith(f"{n}/")
        )
        assert files[str(n)] == expected
        assert all(name.split("-")[1] == str(n) for name in files[str(n)])


def _write(tmp_path, inst: Instance):
    from tests.xnatsim.nrg_dicom import dicom_bytes

    p = tmp_path / f"one-{inst.series}-{inst.instance}.dcm"
    p.write_bytes(dicom_bytes(inst))
    return p


def test_session_importer_file_namer(srv, admin, tmp_path):
    # TestDicomFileNamer.testSessionImporterFileNamer: SI keeps the uploaded names.
    path = tmp_path / "sample.zip"
    entries = _sample()
    write_zip(path, entries)
    r = post_zip(admin, srv, path, **{"import-handler": "SI", "dest": DEST})
    assert r.status_code == 200, r.text
    assert scan_files(admin, srv, EXP)["4"] == ["4_001.dcm", "4_002.dcm"]


def _clash(tmp_path):
    """NRG's generateFileClash: instances 1 and 2 of each series, all named alike."""
    path = tmp_path / "clash.zip"
    entries = {
        f"{i}/{n}/repeated_file_name.dcm": Instance(series=n, instance=i)
        for n in (4, 5, 6)
        for i in (1, 2)
    }
    write_zip(path, entries)
    return path, entries


def test_filename_duplication_different_sop_instance_uid_dicom_zip(srv, admin, tmp_path):
    # TestDicomFileNamer.testFilenameDuplicationDifferentSopInstanceUidDicomZip: the first
    # keeps the name, the other instance gets the template's name.
    path, entries = _clash(tmp_path)
    r = post_zip(admin, srv, path, dest=DEST)
    assert r.status_code == 200, r.text
    files = scan_files(admin, srv, EXP)
    for n in (4, 5, 6):
        second = entries[f"2/{n}/repeated_file_name.dcm"]
        assert files[str(n)] == sorted(["repeated_file_name.dcm", template_name(_header(second))])


def test_filename_duplication_different_sop_instance_uid_session_importer(srv, admin, tmp_path):
    # TestDicomFileNamer.testFilenameDuplicationDifferentSopInstanceUidSessionImporter
    path, _ = _clash(tmp_path)
    r = post_zip(admin, srv, path, **{"import-handler": "SI", "dest": DEST})
    assert r.status_code == 200, r.text
    files = scan_files(admin, srv, EXP)
    assert {k: v for k, v in files.items()} == {
        str(n): ["repeated_file_name.dcm", "repeated_file_name.dcm_1"] for n in (4, 5, 6)
    }


def test_same_instance_under_the_same_name_is_stored_once(srv, admin, tmp_path):
    # GradualDicomImporter.getSafeFile: an equal SOPInstanceUID and SOPClassUID under a taken
    # name overwrites ("object are equivalent; ok to overwrite"); another SOP class under the
    # same instance UID is another object (testUidDuplicationDifferentResources' pair).
    inst = Instance(series=4, instance=1)
    other_class = inst.with_(sop_class=SOP["EnhancedMR"])
    path = tmp_path / "dup.zip"
    write_zip(path, {"a/x.dcm": inst, "b/x.dcm": inst, "c/x.dcm": other_class})
    r = post_zip(admin, srv, path, dest=DEST)
    assert r.status_code == 200, r.text
    assert scan_files(admin, srv, EXP) == {
        "4": sorted(["x.dcm", template_name(_header(other_class))])
    }


# -- merging into an archived session ---------------------------------------------------


def _prearchive_then_archive(s, srv, path, **archive_form):
    """NRG's DicomZipStep (no dest), REBUILD and ARCHIVE; returns the archive reply."""
    r = post_zip(s, srv, path, PROJECT_ID="P1", rename="false")
    assert r.status_code == 200, r.text
    pre = r.text.strip()
    assert "/prearchive/" in pre
    assert s.post(f"{srv.url}{pre}", params={"action": "build"}).status_code == 200
    return s.post(
        f"{srv.url}/data/services/archive",
        data={"src": pre.removeprefix("/data"), **archive_form},
        allow_redirects=False,
    )


def _one_per_series(instance: int) -> dict[str, Instance]:
    """NRG's subsetWithInstanceNumber(i) of the sample, written `0.dcm`, `1.dcm`, `2.dcm`."""
    return {f"{k}.dcm": Instance(series=n, instance=instance) for k, n in enumerate((4, 5, 6))}


def _stored(s, srv) -> dict[str, dict[str, str]]:
    """{scan: {file name: SOPInstanceUID read back from the stored file}}."""
    out: dict[str, dict[str, str]] = {}
    for scan in rows(s, f"{srv.url}{EXP}/scans"):
        files = rows(s, f"{srv.url}{EXP}/scans/{scan['ID']}/resources/DICOM/files")
        out[scan["ID"]] = {
            f["Name"]: str(
                pydicom.dcmread(io.BytesIO(s.get(f"{srv.url}{f['URI']}").content)).SOPInstanceUID
            )
            for f in files
        }
    return out


def _on_disk(srv, scan: str) -> list[str]:
    folder = srv.data_dir / "archive" / "P1" / "arc001" / "Sample_ID" / "SCANS" / scan / "DICOM"
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def srv5(srv):
    """FileNamerTest.createTestProject: P1 auto-archives and overwrites (code 5)."""
    assert admin_session(srv).put(f"{srv.url}/data/projects/P1/prearchive_code/5").ok
    return srv


@pytest.mark.parametrize("archive_form", [{}, {"overwrite": "delete"}])
def test_filename_duplication_different_sop_instance_uid_dicom_zip_merge(
    srv5, admin, tmp_path, archive_form
):
    # TestDicomFileNamer.testFilenameDuplicationDifferentSopInstanceUidDicomZipMerge: instance 2
    # arrives under instance 1's archived name. MergeCatCatalog.throwForDicomUidConflict refuses
    # it even when exceptions are overridden (ArchiveParams().delete()); MergeSessionsA.call
    # wraps the conflict thrown by mergeSessions as a server error; nothing changes.
    srv = srv5
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    named = {"patient_name": "Sample_Patient", "patient_id": "Sample_ID"}  # the routing
    write_zip(first, {k: i.with_(**named) for k, i in _one_per_series(1).items()})
    write_zip(second, {k: i.with_(**named) for k, i in _one_per_series(2).items()})
    assert _prearchive_then_archive(admin, srv, first).status_code < 400
    before = _stored(admin, srv)
    assert before == {
        str(n): {f"{n - 4}.dcm": Instance(series=n, instance=1).sop_instance_uid} for n in (4, 5, 6)
    }
    r = _prearchive_then_archive(admin, srv, second, **archive_form)
    assert r.status_code == 500, r.text
    assert "same name but different UID" in r.text
    assert _stored(admin, srv) == before
    pre = rows(admin, f"{srv.url}/data/prearchive/projects/P1")
    assert [p["status"] for p in pre] == ["ERROR"]


def test_dicom_zip_import_of_a_clashing_name_fails_with_400(srv5, admin, tmp_path):
    # DicomZipImporter.call reports any archive failure, this one included, as 400.
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    write_zip(first, _one_per_series(1))
    write_zip(second, _one_per_series(2))
    assert post_zip(admin, srv5, first, dest=DEST).status_code == 200
    r = post_zip(admin, srv5, second, dest=DEST, overwrite="append")
    assert r.status_code == 400
    assert "unable to archive" in r.text


def test_matching_by_file_name_when_the_preference_is_off(xnatsim_factory, tmp_path):
    # SiteConfigPreferences.useSopInstanceUidToUniquelyIdentifyDicom=false: MergeCatCatalog
    # matches by name only and skips the UID check, so instance 2 overwrites instance 1.
    srv = xnatsim_factory(settings={"use_sop_instance_uid": False})
    s = admin_session(srv)
    assert s.put(f"{srv.url}/data/projects/P1").ok
    assert s.put(f"{srv.url}/data/projects/P1/prearchive_code/5").ok
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    write_zip(first, _one_per_series(1))
    write_zip(second, _one_per_series(2))
    assert post_zip(s, srv, first, dest=DEST).status_code == 200
    assert post_zip(s, srv, second, dest=DEST, overwrite="append").status_code == 200
    assert _stored(s, srv) == {
        str(n): {f"{n - 4}.dcm": Instance(series=n, instance=2).sop_instance_uid} for n in (4, 5, 6)
    }


def _si(s, srv, path, **params):
    """NRG's SessionImporterStep: the session importer to the archive."""
    return post_zip(s, srv, path, **{"import-handler": "SI", "dest": DEST, **params})


def test_overwrite_project_merge(srv5, admin, tmp_path):
    # TestDicomFileNamer.testOverwriteProjectMerge: instance 1 of each series comes again under
    # a new name with overwrite=delete. Matched by SOPInstanceUID, it replaces the archived
    # file, whose old name goes from the catalog and the disk (MergeCatCatalog
    # .handleFilenameChange); overwrite=delete merges and deletes nothing else.
    sample, per_series = tmp_path / "sample.zip", tmp_path / "one.zip"
    entries = _sample(instances=3)
    write_zip(sample, entries)
    write_zip(per_series, _one_per_series(1))
    assert _si(admin, srv5, sample).status_code == 200
    assert scan_files(admin, srv5, EXP)["4"] == ["4_001.dcm", "4_002.dcm", "4_003.dcm"]
    r = _si(admin, srv5, per_series, overwrite="delete")
    assert r.status_code == 200, r.text
    expected = {str(n): sorted([f"{n - 4}.dcm", f"{n}_002.dcm", f"{n}_003.dcm"]) for n in (4, 5, 6)}
    assert scan_files(admin, srv5, EXP) == expected
    for n in (4, 5, 6):  # CATALOG_REFRESH would find nothing more
        assert _on_disk(srv5, str(n)) == expected[str(n)]
    stored = _stored(admin, srv5)
    assert stored["4"]["0.dcm"] == Instance(series=4, instance=1).sop_instance_uid


def test_merge_same_uid_different_name_legacy_filename_setting(xnatsim_factory, tmp_path):
    # TestDicomFileNamer.testMergeSameUidDifferentNameLegacyFilenameSetting: matched by name
    # only, the same instances under new names are added (sample1_orig_names_instance_1_added).
    srv = xnatsim_factory(settings={"use_sop_instance_uid": False})
    s = admin_session(srv)
    assert s.put(f"{srv.url}/data/projects/P1").ok
    assert s.put(f"{srv.url}/data/projects/P1/prearchive_code/5").ok
    sample, per_series = tmp_path / "sample.zip", tmp_path / "one.zip"
    write_zip(sample, _sample(instances=3))
    write_zip(per_series, _one_per_series(1))
    assert _si(s, srv, sample).status_code == 200
    assert _si(s, srv, per_series, overwrite="delete").status_code == 200
    expected = {
        str(n): sorted([f"{n - 4}.dcm", f"{n}_001.dcm", f"{n}_002.dcm", f"{n}_003.dcm"])
        for n in (4, 5, 6)
    }
    assert scan_files(s, srv, EXP) == expected
    for n in (4, 5, 6):
        assert _on_disk(srv, str(n)) == expected[str(n)]


def test_session_importer_uid_overwrite(srv5, admin, tmp_path):
    # TestDicomFileNamer.testSessionImporterUidOverwrite: the sample archived under the site
    # template's names (C-STORE there, DICOM-zip rename=true here), then the session importer
    # with overwrite=delete sends it again under its original names: every instance matches by
    # UID and takes its new name (sample1_orig_names.json).
    path = tmp_path / "sample.zip"
    entries = _sample(instances=3)
    write_zip(path, entries)
    assert post_zip(admin, srv5, path, dest=DEST, rename="true").status_code == 200
    templated = scan_files(admin, srv5, EXP)
    assert all(name.split("-")[1] == n for n, names in templated.items() for name in names)
    r = _si(admin, srv5, path, overwrite="delete")
    assert r.status_code == 200, r.text
    expected = {
        str(n): sorted(k.split("/")[1] for k in entries if k.startswith(f"{n}/")) for n in (4, 5, 6)
    }
    assert scan_files(admin, srv5, EXP) == expected
    for n in (4, 5, 6):
        assert _on_disk(srv5, str(n)) == expected[str(n)]


def test_without_overwrite_files_a_uid_match_refuses_the_merge(srv, admin, tmp_path):
    # MergeSessionsA.checkForConflict without overwrite_files (project code 4, overwrite=append,
    # no override): SessionOverwriteCheck finds an archived entry of the same SOPInstanceUID
    # under another name and refuses with 409, whatever the matching preference.
    sample, per_series = tmp_path / "sample.zip", tmp_path / "one.zip"
    write_zip(sample, _sample(instances=2))
    write_zip(per_series, _one_per_series(1))
    assert _si(admin, srv, sample).status_code == 200
    r = _si(admin, srv, per_series, overwrite="append")
    assert r.status_code == 409
    assert CAT_ENTRY_MATCH in r.text
    r = _si(admin, srv, sample, overwrite="append")  # the same names: FindFirstMatch
    assert r.status_code == 409
    assert HAS_FILES in r.text


def test_a_non_dicom_file_of_the_incoming_name_cannot_be_overridden(srv5, admin, tmp_path):
    # MergeCatCatalog.throwForDicomUidConflict: a file uploaded through REST is a plain
    # cat:entry; a DICOM file of that name cannot merge, even overriding exceptions.
    first, second = tmp_path / "first.zip", tmp_path / "second.zip"
    write_zip(first, {"a.dcm": Instance(series=4, instance=1)})
    write_zip(second, {"b.dcm": Instance(series=4, instance=2)})
    assert post_zip(admin, srv5, first, dest=DEST).status_code == 200
    files = f"{srv5.url}{EXP}/scans/4/resources/DICOM/files"
    assert admin.put(f"{files}/b.dcm", params={"inbody": "true"}, data=b"not DICOM").ok
    r = _si(admin, srv5, second, overwrite="delete")
    assert r.status_code == 500
    assert "non-DICOM file exists with the same name" in r.text
    assert scan_files(admin, srv5, EXP) == {"4": ["a.dcm", "b.dcm"]}


def test_catalog_merge_rules():
    # MergeCatCatalog.merge and SessionOverwriteCheck.detectOverwrite, entry by entry.
    old = [Entry("a.dcm", "1"), Entry("b.dcm", "2"), Entry("notes.txt")]
    with pytest.raises(CatalogConflict) as exc:
        merge_catalog(old, [Entry("x.dcm", "1")], overwrite=False, use_uid=True)
    assert exc.value.message == DUPLICATE_DICOM
    with pytest.raises(CatalogConflict) as exc:
        merge_catalog(old, [Entry("b.dcm", "1")], overwrite=True, use_uid=True)
    assert exc.value.message == NAME_OTHER_UID
    with pytest.raises(CatalogConflict) as exc:
        merge_catalog(old, [Entry("notes.txt", "9")], overwrite=True, use_uid=True)
    assert exc.value.message == NAME_OF_NON_DICOM
    renamed, added = merge_catalog(
        old, [Entry("x.dcm", "1"), Entry("a.dcm", "3")], overwrite=True, use_uid=True
    )
    assert renamed.replaces == Entry("a.dcm", "1") and renamed.renames
    assert added.replaces is None  # a.dcm's name was freed by the rename
    (by_name,) = merge_catalog(old, [Entry("b.dcm", "1")], overwrite=True, use_uid=False)
    assert by_name.replaces == Entry("b.dcm", "2") and not by_name.renames
    assert overwrite_conflict(old, [Entry("z.dcm", "2")]) == CAT_ENTRY_MATCH
    assert overwrite_conflict(old, [Entry("a.dcm", "7")]) == HAS_FILES
    assert overwrite_conflict(old, [Entry("z.dcm", "7")]) is None


def test_catalogs_made_before_entries_carried_uids_are_migrated(srv, admin, tmp_path):
    # The files table gained the DICOM entry's UID: an older data dir gets it from each
    # importer-made file's header on start; REST uploads stay plain entries.
    path = tmp_path / "one.zip"
    write_zip(path, {"a.dcm": Instance(series=4, instance=1)})
    assert post_zip(admin, srv, path, dest=DEST).status_code == 200
    files = f"{srv.url}{EXP}/scans/4/resources/DICOM/files"
    assert admin.put(f"{files}/notes.txt", params={"inbody": "true"}, data=b"x").ok
    srv.stop()
    db = sqlite3.connect(srv.data_dir / "xnatsim.db")
    db.execute("ALTER TABLE files DROP COLUMN uid")
    db.commit()
    db.close()
    store = Store(srv.data_dir, "XNAT")
    try:
        got = {r["path"]: r["uid"] for r in store.query("SELECT path, uid FROM files")}
    finally:
        store.close()
    assert got == {"a.dcm": Instance(series=4, instance=1).sop_instance_uid, "notes.txt": ""}
