"""Zip validation: what may reach the destination's import service, and what may not."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from planner.zipcheck import (
    InvalidZip,
    looks_like_dicom,
    repack_relative,
    resource_relative_path,
    validate_zip,
)


def dicom_bytes(*, preamble: bool = True, implicit: bool = False, pixels: int = 256) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Test^Subject"
    ds.Modality = "MR"
    ds.PixelData = b"\1" * pixels
    buf = io.BytesIO()
    if preamble:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    else:
        # A bare dataset, as some archives store it: no preamble, no meta header.
        ds.file_meta = FileMetaDataset()
        ds.preamble = None
        pydicom.dcmwrite(buf, ds, implicit_vr=implicit, little_endian=True)
    return buf.getvalue()


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_a_zip_of_dicom_with_the_planned_count_passes(tmp_path: Path) -> None:
    entries = {f"S/scans/1-T1/resources/DICOM/files/{i}.dcm": dicom_bytes() for i in range(3)}
    summary = validate_zip(write_zip(tmp_path / "a.zip", entries), expected_files=3)
    assert summary.entries == 3
    assert summary.uncompressed_bytes == sum(len(v) for v in entries.values())


@pytest.mark.parametrize("implicit", [False, True])
def test_dicom_without_a_preamble_is_recognised(implicit: bool) -> None:
    data = dicom_bytes(preamble=False, implicit=implicit)
    assert data[128:132] != b"DICM"
    assert looks_like_dicom(data[:132])


@pytest.mark.parametrize(
    "head",
    [b"hello world, this is text" * 10, b"\x89PNG\r\n\x1a\n" + b"\0" * 200, b"", b"PK\x03\x04"],
)
def test_other_files_are_not_dicom(head: bytes) -> None:
    assert not looks_like_dicom(head[:132])


def test_wrong_entry_count_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {"a.dcm": dicom_bytes(), "b.dcm": dicom_bytes()})
    with pytest.raises(InvalidZip, match="holds 2 files where the plan expects 3"):
        validate_zip(path, expected_files=3)


def test_a_non_dicom_entry_is_refused(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {"a.dcm": dicom_bytes(), "notes.txt": b"x" * 300})
    with pytest.raises(InvalidZip, match=r"notes\.txt .* is not DICOM"):
        validate_zip(path, expected_files=2)
    assert validate_zip(path, dicom=False).entries == 2


def test_a_corrupted_entry_fails_its_crc(tmp_path: Path) -> None:
    payload = dicom_bytes(pixels=4096)
    path = write_zip(tmp_path / "a.zip", {"a.dcm": payload})
    raw = bytearray(path.read_bytes())
    at = raw.index(payload[-100:])  # stored, so the bytes are there as they are
    raw[at + 10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidZip, match="damaged"):
        validate_zip(path, expected_files=1)


def test_a_truncated_zip_does_not_open(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "a.zip", {f"{i}.dcm": dicom_bytes() for i in range(4)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidZip, match="does not open"):
        validate_zip(path, expected_files=4)
    assert InvalidZip("x").transient, "a bad download is worth downloading again"


def test_directories_do_not_count_as_files(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("S/scans/", b"")
        zf.writestr("S/scans/1.dcm", dicom_bytes())
    assert validate_zip(path, expected_files=1).entries == 1


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("S1/scans/2-T1/resources/NIFTI/files/a/b.nii", "a/b.nii"),
        ("P/resources/DOCS/files/x.pdf", "x.pdf"),
        ("SUBJ/resources/NOTES/files/resources/x/files/y.txt", "resources/x/files/y.txt"),
        ("E1/assessors/QC/out/resources/PDF/files/r.pdf", "r.pdf"),
        ("plain.txt", None),
    ],
)
def test_resource_relative_paths(entry: str, expected: str | None) -> None:
    assert resource_relative_path(entry) == expected


def test_repack_strips_the_layout_prefix_and_keeps_bytes(tmp_path: Path) -> None:
    src = write_zip(
        tmp_path / "in.zip",
        {
            "E1/scans/2-T1/resources/NIFTI/files/a/b.nii": b"n" * 5000,
            "E1/scans/2-T1/resources/NIFTI/files/c.json": b"{}",
        },
    )
    out = tmp_path / "out.zip"
    summary = repack_relative(src, out)
    assert summary.entries == 2
    with zipfile.ZipFile(out) as zf:
        assert sorted(zf.namelist()) == ["a/b.nii", "c.json"]
        assert zf.read("a/b.nii") == b"n" * 5000
        assert zf.testzip() is None


def test_repack_refuses_unsafe_names(tmp_path: Path) -> None:
    src = write_zip(tmp_path / "in.zip", {"X/resources/R/files/../../etc/passwd": b"x"})
    with pytest.raises(InvalidZip, match="unsafe"):
        repack_relative(src, tmp_path / "out.zip")
