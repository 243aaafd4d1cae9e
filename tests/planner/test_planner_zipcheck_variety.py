"""Zip checks and the probe's header reading over real-world DICOM (tests/xnatsim/variety.py).

Every kind XNAT's importer stores (GradualDicomImporter.call reads any transfer syntax and
bare data sets) passes the zip check and has its SOPInstanceUID read; a DICOMDIR, which the
importer refuses for want of a SOP Class UID, is told apart before any import.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from planner.probedata import _elements, sop_instance_uid
from planner.zipcheck import NotDicom, is_dicomdir, looks_like_dicom, validate_zip
from tests.xnatsim.variety import BY_KEY, VARIANTS, Variant, dataset, variant_bytes, variant_zip


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.key)
def test_every_variant_is_dicom_with_its_uid_readable(variant: Variant) -> None:
    data = variant_bytes(variant, study="zc", series=1, instance=1)
    assert looks_like_dicom(data[:1024])
    assert not is_dicomdir(data[:1024])
    uid = str(dataset(variant, study="zc", series=1, instance=1).SOPInstanceUID)
    assert sop_instance_uid(data) == uid
    elements = _elements(data)
    assert elements["(0008,0018)"][1] == uid
    assert "(7FE0,0010)" not in elements  # pixel data is never compared by the probe


def test_a_zip_of_every_variant_validates(tmp_path: Path) -> None:
    path = tmp_path / "mix.zip"
    entries = variant_zip(path, list(VARIANTS), study="zc", instances=2)
    summary = validate_zip(path, expected_files=len(entries))
    assert summary.entries == 2 * len(VARIANTS)


def test_a_dicomdir_in_a_scan_zip_is_refused_before_import(tmp_path: Path) -> None:
    fs = FileSet()
    fs.add(dataset(BY_KEY["implicit"], study="cd", series=1, instance=1))
    fs.write(tmp_path / "cd")
    dicomdir = (tmp_path / "cd" / "DICOMDIR").read_bytes()
    assert is_dicomdir(dicomdir[:1024]) and looks_like_dicom(dicomdir[:1024])
    assert pydicom.dcmread(io.BytesIO(dicomdir)).get("SOPClassUID") is None
    path = tmp_path / "scan.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("S/scans/1/resources/DICOM/files/DICOMDIR", dicomdir)
        zf.writestr(
            "S/scans/1/resources/DICOM/files/IM1",
            variant_bytes(BY_KEY["implicit"], study="cd", series=1, instance=1),
        )
    with pytest.raises(NotDicom, match="DICOMDIR"):
        validate_zip(path, expected_files=2)
