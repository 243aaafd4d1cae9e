"""File names of imported DICOM, ported from NRG's TestDicomFileNamer (XNAT 1.8.11:
`GradualDicomImporter.getSafeFile`, `TemplatizedDicomFileNamer`, `Restructurer.run`).

Not ported, because xnatsim has no such path or setting: the C-STORE tests
(testCstoreFileNaming*, testDicomUidOverwrite, testUidDuplication*, testDicomFilenameWithAnon,
testMergeSameOriginalDicom*: no DICOM receiver), the ones that change the site's file-name
template (testDicomFilenamerUpdate, testDicomFilenamerInduceDataloss*: no template setting), the
legacy file-name uniqueness and backup settings (testMergeSameUidDifferentNameLegacy*,
testDicomFilenameMismatchInstanceDuplication), and the archive-side merges
(testFilenameDuplicationDifferentSopInstanceUidDicomZipMerge, testOverwriteProjectMerge,
testSessionImporterUidOverwrite), which belong to the archiver rather than to parsing.
"""

from __future__ import annotations

import pydicom

from tests.xnatsim.nrg_dicom import SOP, Instance, post_zip, scan_files, uid, write_zip
from xnatsim.dicomnaming import template_name

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
