"""Helpers for the xnatsim server tests: tiny real DICOM files written with pydicom."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from xnatsim.testing import admin_session

SOP_CLASS = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2"}
ROOT = "1.2.826.0.1.3680043.10.999."


@dataclass(frozen=True)
class Series:
    number: int
    description: str
    modality: str = "MR"
    instances: int = 2


def _uid(*parts: object) -> str:
    digest = int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:20], 16)
    return ROOT + str(digest)


def write_dicom(
    path: Path,
    *,
    study: str,
    series: Series,
    instance: int,
    patient_name: str,
    patient_id: str,
    comments: str = "",
    study_description: str = "",
) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS.get(series.modality, SOP_CLASS["MR"])
    meta.MediaStorageSOPInstanceUID = _uid(study, series.number, instance)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(study)
    ds.SeriesInstanceUID = _uid(study, series.number)
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.Modality = series.modality
    ds.InstanceNumber = instance
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.StudyDate = "20240102"
    if comments:
        ds.PatientComments = comments
    if study_description:
        ds.StudyDescription = study_description
    ds.Rows = ds.Columns = 4
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(16, dtype=np.uint16) + instance).tobytes()
    ds.save_as(path, enforce_file_format=True)


def dicom_zip(
    out: Path,
    series: list[Series],
    *,
    study: str = "study1",
    patient_name: str = "SUBJ1",
    patient_id: str = "SESS1",
    comments: str = "",
    study_description: str = "",
    extra: dict[str, bytes] | None = None,
) -> dict[str, str]:
    """Write a zip of DICOM files; returns {entry base name: md5} of the DICOM files."""
    tmp = out.parent / (out.stem + "_files")
    tmp.mkdir(parents=True, exist_ok=True)
    md5s: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for s in series:
            for i in range(1, s.instances + 1):
                name = f"{s.modality}.{s.number}.{i}.dcm"
                path = tmp / name
                write_dicom(
                    path,
                    study=study,
                    series=s,
                    instance=i,
                    patient_name=patient_name,
                    patient_id=patient_id,
                    comments=comments,
                    study_description=study_description,
                )
                zf.write(path, f"{study}/{s.number}/{name}")
                md5s[name] = hashlib.md5(path.read_bytes()).hexdigest()
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return md5s


@pytest.fixture
def make_zip(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, str]]]:
    counter = iter(range(10_000))

    def make(series: list[Series], **kwargs) -> tuple[Path, dict[str, str]]:
        out = tmp_path / f"upload{next(counter)}.zip"
        return out, dicom_zip(out, series, **kwargs)

    return make


@pytest.fixture
def series_cls() -> type[Series]:
    return Series


@pytest.fixture
def srv(xnatsim_factory):
    """One server with project P1 (private), owned by admin."""
    server = xnatsim_factory()
    s = admin_session(server)
    assert s.put(f"{server.url}/data/projects/P1", params={"name": "Project 1"}).ok
    return server


@pytest.fixture
def admin(srv):
    return admin_session(srv)
