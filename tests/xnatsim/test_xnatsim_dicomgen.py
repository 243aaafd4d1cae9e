"""Sample DICOM: valid Part-10 files, deterministic UIDs, STORED zips that scale with size."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pydicom
import pytest

from xnatsim.dicomgen import (
    UID_ROOT,
    SeriesSpec,
    StudySpec,
    series_uid,
    study_uid,
    write_series_zip,
    write_study,
    write_study_zip,
)

SPEC = StudySpec(
    patient_name="SUBJ001",
    patient_id="SUBJ001_MR1",
    study_date="20240315",
    series=(
        SeriesSpec(1, "Localizer", instances=2, rows=16, cols=16),
        SeriesSpec(2, "T1w_MPRAGE", instances=3, rows=32, cols=24),
    ),
    seed=5,
)


def test_files_are_valid_part10_with_expected_tags(tmp_path: Path):
    paths = write_study(SPEC, tmp_path)
    assert len(paths) == 5
    raw = paths[0].read_bytes()
    assert raw[128:132] == b"DICM"
    seen = set()
    for path in paths:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.StudyInstanceUID == study_uid(SPEC)
        assert ds.SeriesInstanceUID == series_uid(SPEC, int(ds.SeriesNumber))
        assert (str(ds.PatientName), ds.PatientID, ds.StudyDate, ds.Modality) == (
            "SUBJ001",
            "SUBJ001_MR1",
            "20240315",
            "MR",
        )
        series = SPEC.series[int(ds.SeriesNumber) - 1]
        assert ds.SeriesDescription == series.description
        assert (ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel) == (
            series.rows,
            series.cols,
            16,
            1,
        )
        assert ds.PixelRepresentation == 0 and ds.PhotometricInterpretation == "MONOCHROME2"
        assert ds.pixel_array.shape == (series.rows, series.cols)
        assert "PatientComments" not in ds
        seen.add((int(ds.SeriesNumber), int(ds.InstanceNumber), ds.SOPInstanceUID))
    assert {(s, i) for s, i, _ in seen} == {(1, 1), (1, 2), (2, 1), (2, 2), (2, 3)}
    assert len({uid for _, _, uid in seen}) == 5
    assert len({p.name for p in paths}) == 5  # XNAT keeps base names: they must be unique


def test_uids_are_valid_and_deterministic_per_seed():
    uids = [study_uid(SPEC), series_uid(SPEC, 1), series_uid(SPEC, 2)]
    for uid in uids:
        assert uid.startswith(UID_ROOT) and len(uid) <= 64
        assert all(
            part.isdigit() and (part == "0" or not part.startswith("0")) for part in uid.split(".")
        )
    assert len(set(uids)) == 3
    assert study_uid(replace(SPEC)) == study_uid(SPEC)
    assert study_uid(replace(SPEC, seed=6)) != study_uid(SPEC)
    assert study_uid(replace(SPEC, patient_id="SUBJ001_MR2")) != study_uid(SPEC)
    assert series_uid(replace(SPEC, seed=6), 1) != series_uid(SPEC, 1)


def test_same_spec_gives_identical_bytes_and_other_seed_differs(tmp_path: Path):
    a = write_study_zip(SPEC, tmp_path / "a.zip")
    b = write_study_zip(SPEC, tmp_path / "b.zip")
    write_study_zip(replace(SPEC, seed=1), tmp_path / "c.zip")
    digest = {
        n: hashlib.md5((tmp_path / n).read_bytes()).hexdigest() for n in ("a.zip", "b.zip", "c.zip")
    }
    assert a == b and digest["a.zip"] == digest["b.zip"]
    assert digest["c.zip"] != digest["a.zip"]


def test_pixels_vary_between_instances(tmp_path: Path):
    paths = write_study(SPEC, tmp_path)
    p1, p2 = (pydicom.dcmread(p).pixel_array for p in paths[:2])
    assert not np.array_equal(p1, p2)


def test_zip_entries_are_stored_and_readable(tmp_path: Path):
    size = write_study_zip(SPEC, tmp_path / "s.zip")
    assert size == (tmp_path / "s.zip").stat().st_size
    with zipfile.ZipFile(tmp_path / "s.zip") as zf:
        infos = zf.infolist()
        assert len(infos) == 5
        assert all(i.compress_type == zipfile.ZIP_STORED for i in infos)
        assert zf.testzip() is None
        ds = pydicom.dcmread(zf.open(infos[-1]))
        assert ds.SeriesDescription == "T1w_MPRAGE"


def test_series_zip_holds_only_that_series(tmp_path: Path):
    write_series_zip(SPEC, 2, tmp_path / "s2.zip")
    with zipfile.ZipFile(tmp_path / "s2.zip") as zf:
        numbers = {int(pydicom.dcmread(zf.open(n)).SeriesNumber) for n in zf.namelist()}
        assert len(zf.namelist()) == 3 and numbers == {2}
    with pytest.raises(ValueError, match="no series number 9"):
        write_series_zip(SPEC, 9, tmp_path / "s9.zip")


def test_size_scales_with_matrix(tmp_path: Path):
    small = StudySpec("P", "S", "20240101", (SeriesSpec(1, "T1", rows=64, cols=64),))
    big = replace(small, series=(SeriesSpec(1, "T1", rows=256, cols=256),))
    s = write_study_zip(small, tmp_path / "small.zip")
    b = write_study_zip(big, tmp_path / "big.zip")
    assert s > 2 * 64 * 64 * 2 and b > 2 * 256 * 256 * 2
    assert 12 < b / s < 17


def test_routing_hints_and_ct(tmp_path: Path):
    spec = StudySpec(
        "Anon",
        "X1",
        "20230101",
        (SeriesSpec(3, "CT_HEAD", modality="CT", instances=1, rows=8, cols=8),),
        project_hint="PROJ",
        subject_hint="SUBJ9",
        session_hint="SUBJ9_CT1",
    )
    (path,) = write_study(spec, tmp_path)
    ds = pydicom.dcmread(path)
    assert ds.PatientComments == "Project: PROJ Subject: SUBJ9 Session: SUBJ9_CT1"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2" and ds.Modality == "CT"


def test_unknown_modality_is_refused(tmp_path: Path):
    spec = StudySpec("P", "S", "20240101", (SeriesSpec(1, "X", modality="ZZ"),))
    with pytest.raises(ValueError, match="unsupported modality 'ZZ'"):
        write_study(spec, tmp_path)
