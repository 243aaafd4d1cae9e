"""Real-world DICOM through xnatsim's DICOM-zip import, as XNAT 1.8.11 treats it.

XNAT's gradual importer reads each entry with dcm4che's `DicomInputStream`, which takes any
transfer syntax, a file without preamble and a bare data set alike; it stores the object in
the transfer syntax it came in (`GradualDicomImporter.write`: file meta, the data set as read,
then the rest of the stream copied byte for byte; decompression happens only where the JAI
codecs are installed, which a default XNAT is not), always as a Part 10 file (a bare data set
gets file meta, Explicit VR Little Endian unless the upload names another syntax). The site
anonymization script (DicomEdit, on by default) changes three values and adds its code item;
everything else, pixel data and transfer syntax included, stays as sent.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path, PurePath

import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import ExplicitVRLittleEndian

from .variety import BY_KEY, VARIANTS, Variant, dataset, variant_bytes, variant_zip

IMPORT = "/data/services/import"


def _post(admin, srv, path: Path, **params: str):
    with open(path, "rb") as fh:
        return admin.post(
            f"{srv.url}{IMPORT}",
            params={"import-handler": "DICOM-zip", "dest": "/archive", **params},
            data=fh,
            headers={"Content-Type": "application/zip"},
        )


def _files(admin, srv, exp: str) -> dict[str, dict]:
    r = admin.get(f"{srv.url}/data/projects/P1/experiments/{exp}/scans/ALL/files")
    assert r.status_code == 200, r.text
    return {row["Name"]: row for row in r.json()["ResultSet"]["Result"]}


def _stored(admin, srv, exp: str) -> dict[str, bytes]:
    out = {}
    for name, row in _files(admin, srv, exp).items():
        r = admin.get(f"{srv.url}{row['URI']}")
        assert r.status_code == 200, r.text
        out[name] = r.content
    return out


def _pixels(ds: pydicom.Dataset) -> bytes:
    for keyword in ("PixelData", "EncapsulatedDocument"):
        if keyword in ds:
            return ds[keyword].value
    return b""


def _text(value: str | bytes) -> str:
    return value.decode().rstrip() if isinstance(value, bytes) else value


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.key)
def test_each_variant_imports_and_keeps_syntax_and_pixels(srv, admin, tmp_path, variant: Variant):
    # GradualDicomImporter.call / write: every kind is read, stored as a Part 10 file in its
    # own transfer syntax; the default site script (SiteConfigPreferences, id.das) rewrites
    # PatientName/PatientID/StudyDescription only.
    path = tmp_path / "up.zip"
    sent = variant_zip(path, [variant], study=variant.key)
    r = _post(admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL=variant.key)
    assert r.status_code == 200, r.text

    scans = admin.get(f"{srv.url}/data/projects/P1/experiments/{variant.key}/scans").json()
    rows = scans["ResultSet"]["Result"]
    assert [(s["ID"], s["type"], s["xsiType"]) for s in rows] == [
        ("1", variant.description or variant.key, variant.scan_xsi)
    ]
    stored = _stored(admin, srv, variant.key)
    assert sorted(stored) == sorted(PurePath(n).name for n in sent)
    for name, data in sent.items():
        before = pydicom.dcmread(io.BytesIO(data), force=True)
        got = stored[PurePath(name).name]
        assert got[128:132] == b"DICM", "stored as a Part 10 file"
        after = pydicom.dcmread(io.BytesIO(got))
        want_syntax = ExplicitVRLittleEndian if variant.raw else variant.syntax
        assert after.file_meta.TransferSyntaxUID == want_syntax
        assert after.SOPInstanceUID == before.SOPInstanceUID
        assert after.file_meta.MediaStorageSOPInstanceUID == before.SOPInstanceUID
        assert after.SOPClassUID == variant.sop_class
        assert _pixels(after) == _pixels(before)
        # The site script's three values and its code item; the rest as sent.
        assert (str(after.PatientName), after.PatientID) == ("S1", variant.key)
        assert after.StudyDescription == "P1"
        assert [i.CodeValue for i in after.DeidentificationMethodCodeSequence] == ["1"]
        assert after.SeriesDescription == before.SeriesDescription
        if variant.charset:
            assert after.SpecificCharacterSet == variant.charset
            block = after.private_block(0x0029, "XNATCTL TEST")
            # Implicit VR carries no VR: a private value reads back as its raw bytes (UN).
            assert _text(block[0x10].value) == "private value"
            assert block[0x11].value == b"\x01\x02\x03\x04"
            assert after.AnatomicRegionSequence[0].CodeMeaning == "Brain"
        if "PerFrameFunctionalGroupsSequence" in before:
            assert after.NumberOfFrames == 3
            assert len(after.PerFrameFunctionalGroupsSequence) == 3
        if "ROIContourSequence" in before:
            assert after.ROIContourSequence[0].ContourSequence[0].ContourData == [
                0,
                0,
                0,
                1,
                0,
                0,
                0,
                1,
                0,
            ]


def test_prevent_anon_stores_part10_files_byte_for_byte(srv, admin, tmp_path):
    # GradualDicomImporter.write copies a Part 10 file's file meta and data set as read, so
    # without the site script (prevent_anon) every kind arrives byte for byte; a bare data set
    # gains preamble and file meta (initFileMetaInformation, Explicit VR Little Endian).
    path = tmp_path / "up.zip"
    sent = variant_zip(path, list(VARIANTS), study="mix", instances=1)
    r = _post(
        admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL="MIX", prevent_anon="true"
    )
    assert r.status_code == 200, r.text
    stored = _stored(admin, srv, "MIX")
    assert len(stored) == len(VARIANTS)
    for name, data in sent.items():
        got = stored[PurePath(name).name]
        variant = BY_KEY[PurePath(name).parent.name]
        if not variant.raw:
            assert got == data, variant.key
            continue
        assert got[128:132] == b"DICM" and data[:4] != b"DICM"
        after = pydicom.dcmread(io.BytesIO(got))
        assert after.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        before = pydicom.dcmread(io.BytesIO(data), force=True)
        assert after.SOPInstanceUID == before.SOPInstanceUID
        assert after.PixelData == before.PixelData


def test_a_mixed_study_is_one_session_of_many_scans(srv, admin, tmp_path):
    # One StudyInstanceUID is one session (GradualDicomImporter: the prearchive session is
    # keyed by study UID); each series a scan numbered by SeriesNumber, typed by its SOP class
    # or Modality (TestDicomModalityAssignment); the MR images make it an MR session.
    path = tmp_path / "up.zip"
    variant_zip(path, list(VARIANTS), study="mix", instances=2)
    r = _post(admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL="MIX")
    assert r.status_code == 200, r.text
    scans = admin.get(f"{srv.url}/data/projects/P1/experiments/MIX/scans").json()
    rows = {s["ID"]: s["xsiType"] for s in scans["ResultSet"]["Result"]}
    assert rows == {str(n): v.scan_xsi for n, v in enumerate(VARIANTS, start=1)}
    doc = admin.get(f"{srv.url}/data/projects/P1/experiments/MIX?format=json").json()
    assert doc["items"][0]["meta"]["xsi:type"] == "xnat:mrSessionData"
    assert len(_files(admin, srv, "MIX")) == 2 * len(VARIANTS)


def test_non_ascii_routing_from_headers(srv, admin, tmp_path):
    # Without routing parameters the subject comes from PatientName (the default
    # DicomObjectIdentifier); XNAT's label rules turn what is not [A-Za-z0-9_-] into "_", and
    # the header is decoded by its SpecificCharacterSet before that.
    variant = BY_KEY["latin1"]
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as zf:
        ds = dataset(variant, study="lat", series=1, instance=1)
        ds.PatientComments = "Project: P1 Session: LAT1"
        out = io.BytesIO()
        ds.preamble = b"\0" * 128
        ds.save_as(out, enforce_file_format=True)
        zf.writestr("lat/1.dcm", out.getvalue())
    r = _post(admin, srv, path)
    assert r.status_code == 200, r.text
    assert r.text.strip() == "/data/archive/projects/P1/subjects/M_ller_J_rgen/experiments/LAT1"


def _media_zip(tmp_path: Path, extras: dict[str, bytes]) -> tuple[Path, set[str]]:
    """A zip of a DICOM media file set (DICOMDIR plus upper-case, extension-less names in
    nested folders, as pydicom's FileSet lays them out) plus `extras`."""
    fs = FileSet()
    uids = set()
    for n, variant in enumerate((BY_KEY["implicit"], BY_KEY["jpeg"], BY_KEY["enhanced"]), 1):
        ds = dataset(variant, study="media", series=n, instance=1)
        uids.add(str(ds.SOPInstanceUID))
        fs.add(ds)
    root = tmp_path / "media"
    fs.write(root)
    path = tmp_path / "media.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for file in sorted(root.rglob("*")):
            if file.is_file():
                zf.write(file, "CD/" + file.relative_to(root).as_posix())
        for name, data in extras.items():
            zf.writestr(name, data)
    return path, uids


MAC_EXTRAS = {
    "__MACOSX/CD/._DICOMDIR": b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ",
    "CD/.DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(64),
}


@pytest.mark.parametrize("extras", [{}, MAC_EXTRAS], ids=["dicomdir", "dicomdir+macos"])
def test_media_zip_needs_ignore_unparsable(srv, admin, tmp_path, extras):
    # DICOMDIR has no SOP Class UID in its data set (only MediaStorageSOPClassUID in the file
    # meta): GradualDicomImporter.call refuses it ("contains no SOP Class UID"), and
    # DicomZipImporter.importZipFile fails the whole upload on it unless Ignore-Unparsable,
    # as it does for __MACOSX/ AppleDouble files and .DS_Store.
    path, uids = _media_zip(tmp_path, extras)
    refused = _post(admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL="CD")
    assert refused.status_code == 400, refused.text
    assert admin.get(f"{srv.url}/data/projects/P1/experiments/CD").status_code == 404

    r = _post(
        admin,
        srv,
        path,
        PROJECT_ID="P1",
        SUBJECT_ID="S1",
        EXPT_LABEL="CD",
        **{"Ignore-Unparsable": "true"},
    )
    assert r.status_code == 200, r.text
    listed = admin.get(f"{srv.url}/data/projects/P1/experiments/CD/scans/ALL/files").json()
    rows = listed["ResultSet"]["Result"]
    # Names as uploaded (upper case, no extension): GradualDicomImporter.getSafeFile.
    assert len(rows) == 3 and all(r["Name"] == "IM000000" for r in rows), rows
    got = set()
    for row in rows:
        data = admin.get(f"{srv.url}{row['URI']}").content
        got.add(str(pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID))
    assert got == uids


def test_bare_dataset_in_a_zip_with_part10_files(srv, admin, tmp_path):
    # A bare data set (no preamble, no file meta) is a DICOM object to XNAT's importer
    # (DicomInputStream guesses its transfer syntax): it is stored, not skipped as unparsable.
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for n, key in enumerate(("raw_implicit", "raw_explicit", "implicit"), 1):
            data = variant_bytes(BY_KEY[key], study="bare", series=1, instance=n)
            zf.writestr(f"deep/er/still/{key.upper()}", data)
    r = _post(admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL="BARE")
    assert r.status_code == 200, r.text
    assert sorted(_stored(admin, srv, "BARE")) == ["IMPLICIT", "RAW_EXPLICIT", "RAW_IMPLICIT"]


@pytest.mark.parametrize("key", ["implicit", "bigendian", "deflated", "jpeg"])
def test_file_meta_without_preamble_keeps_its_transfer_syntax(srv, admin, tmp_path, key):
    # File meta but no preamble and no "DICM": DicomInputStream reads the meta, and
    # GradualDicomImporter.call keeps it (fileMetaInfo), so the file is stored as Part 10 in
    # the syntax the meta names, pixel data unchanged.
    variant = BY_KEY[key]
    data = variant_bytes(variant, study=f"np{key}", series=1, instance=1)[132:]
    path = tmp_path / "up.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("IM1", data)
    label = f"NP_{key}"
    r = _post(admin, srv, path, PROJECT_ID="P1", SUBJECT_ID="S1", EXPT_LABEL=label)
    assert r.status_code == 200, r.text
    got = _stored(admin, srv, label)["IM1"]
    assert got[128:132] == b"DICM"
    after = pydicom.dcmread(io.BytesIO(got))
    before = pydicom.dcmread(io.BytesIO(data), force=True)
    assert after.file_meta.TransferSyntaxUID == variant.syntax
    assert after.PixelData == before.PixelData
    assert after.SOPInstanceUID == before.SOPInstanceUID
