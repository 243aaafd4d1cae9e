"""Deterministic sample DICOM studies written with pydicom.

Everything (UIDs, pixel values, dates) derives from the spec and its seed, never from the clock
or a global random state, so two runs with the same spec produce byte-identical files. That
lets tests compare digests across servers and benchmarks regenerate data instead of storing it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

UID_ROOT = "1.2.826.0.1.3680043.10.777."
"""Prefix of every generated UID; the rest is a hash of what the UID names."""

SOP_CLASSES = {
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # Positron Emission Tomography Image Storage
    "OT": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
}

ZIP_DATE = (2020, 1, 1, 0, 0, 0)
"""Fixed entry timestamp so zips of the same spec are byte-identical."""


@dataclass(frozen=True)
class SeriesSpec:
    series_number: int
    description: str
    modality: str = "MR"
    instances: int = 2
    rows: int = 64
    cols: int = 64


@dataclass(frozen=True)
class StudySpec:
    patient_name: str
    patient_id: str
    study_date: str
    series: tuple[SeriesSpec, ...]
    seed: int = 0
    project_hint: str | None = None
    subject_hint: str | None = None
    session_hint: str | None = None


def _uid(*parts: object) -> str:
    """A valid DICOM UID (<= 64 chars, no leading zeros) naming `parts`."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    number = int.from_bytes(digest[:16], "big") % 10**30
    return UID_ROOT + str(number or 1)


def study_uid(spec: StudySpec) -> str:
    return _uid("study", spec.seed, spec.patient_name, spec.patient_id, spec.study_date)


def series_uid(spec: StudySpec, series: SeriesSpec | int) -> str:
    number = series if isinstance(series, int) else series.series_number
    return _uid("series", study_uid(spec), number)


def instance_uid(spec: StudySpec, series: SeriesSpec, instance: int) -> str:
    return _uid("instance", series_uid(spec, series), instance)


def routing_comment(spec: StudySpec) -> str:
    """The PatientComments text XNAT's header routing reads, or "" without hints."""
    parts = []
    if spec.project_hint:
        parts.append(f"Project: {spec.project_hint}")
    if spec.subject_hint:
        parts.append(f"Subject: {spec.subject_hint}")
    if spec.session_hint:
        parts.append(f"Session: {spec.session_hint}")
    return " ".join(parts)


def entry_name(spec: StudySpec, series: SeriesSpec, instance: int) -> str:
    """Relative path of one instance inside a study directory or zip.

    The base name is unique within the study because XNAT stores files under their base name.
    """
    base = f"{spec.patient_id}.{series.modality}.{series.series_number}.{instance:05d}.dcm"
    return f"{series.series_number:03d}/{base}"


def _pixels(spec: StudySpec, series: SeriesSpec, instance: int) -> bytes:
    seed = int.from_bytes(
        hashlib.sha256(f"{instance_uid(spec, series, instance)}".encode()).digest()[:8], "big"
    )
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 4096, size=(series.rows, series.cols), dtype=np.uint16)
    return data.astype("<u2", copy=False).tobytes()


def _series_dataset(spec: StudySpec, series: SeriesSpec) -> FileDataset:
    """Everything shared by the instances of one series; per-instance tags are set later."""
    sop_class = SOP_CLASSES.get(series.modality.upper())
    if sop_class is None:
        raise ValueError(
            f"unsupported modality {series.modality!r}; use one of {', '.join(SOP_CLASSES)}"
        )
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID_ROOT + "1"
    meta.ImplementationVersionName = "XNATSIM_1"
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
    ds.SOPClassUID = sop_class
    ds.StudyDate = spec.study_date
    ds.SeriesDate = spec.study_date
    ds.StudyTime = "090000"
    ds.SeriesTime = f"{9 + series.series_number // 60 % 10:02d}{series.series_number % 60:02d}00"
    ds.Modality = series.modality.upper()
    ds.Manufacturer = "xnatsim"
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    comment = routing_comment(spec)
    if comment:
        ds.PatientComments = comment
    if spec.project_hint:
        # What XNAT's default site anonymization script writes (see xnatsim.anonymize), so a
        # study imported into its hinted project, subject and session is stored unchanged.
        ds.StudyDescription = spec.project_hint
    ds.StudyInstanceUID = study_uid(spec)
    ds.SeriesInstanceUID = series_uid(spec, series)
    ds.StudyID = "1"
    ds.SeriesNumber = series.series_number
    ds.SeriesDescription = series.description
    ds.FrameOfReferenceUID = _uid("frame", study_uid(spec))
    ds.SliceThickness = "1.0"
    ds.PixelSpacing = ["1.0", "1.0"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = series.rows
    ds.Columns = series.cols
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


def _instances(spec: StudySpec, series: SeriesSpec) -> Iterator[tuple[str, bytes]]:
    """(entry name, Part-10 bytes) for each instance; one file in memory at a time."""
    ds = _series_dataset(spec, series)
    for instance in range(1, series.instances + 1):
        uid = instance_uid(spec, series, instance)
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = instance
        ds.ImagePositionPatient = ["0", "0", f"{instance - 1:.1f}"]
        ds.SliceLocation = f"{instance - 1:.1f}"
        ds.PixelData = _pixels(spec, series, instance)
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        yield entry_name(spec, series, instance), buf.getvalue()


def _series(spec: StudySpec, series_number: int | None) -> tuple[SeriesSpec, ...]:
    if series_number is None:
        return spec.series
    chosen = tuple(s for s in spec.series if s.series_number == series_number)
    if not chosen:
        raise ValueError(f"the study has no series number {series_number}")
    return chosen


def iter_study(spec: StudySpec, series_number: int | None = None) -> Iterator[tuple[str, bytes]]:
    """(entry name, file bytes) for every instance of the study, or of one series."""
    for series in _series(spec, series_number):
        yield from _instances(spec, series)


def write_study(spec: StudySpec, out_dir: Path) -> list[Path]:
    """One .dcm file per instance under `out_dir/<series number>/`."""
    out_dir = Path(out_dir)
    paths = []
    for name, data in iter_study(spec):
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def _write_zip(spec: StudySpec, zip_path: Path, series_number: int | None) -> int:
    zip_path = Path(zip_path)
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, data in iter_study(spec, series_number):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return zip_path.stat().st_size


def write_study_zip(spec: StudySpec, zip_path: Path) -> int:
    """A zip (entries STORED) of the whole study, written file by file; returns its size."""
    return _write_zip(spec, zip_path, None)


def write_series_zip(spec: StudySpec, series_number: int, zip_path: Path) -> int:
    """A zip (entries STORED) of one series; returns its size."""
    return _write_zip(spec, zip_path, series_number)


def study_size_estimate(spec: StudySpec) -> int:
    """Approximate bytes of the study's DICOM files, for progress and planning."""
    return sum(s.instances * (s.rows * s.cols * 2 + 1500) for s in spec.series)
