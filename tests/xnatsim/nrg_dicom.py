"""Test data for the ports of NRG's import tests: tiny real DICOM instances with every header
the importer reads under the test's control, zips of them, and small REST helpers."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pydicom
import requests
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from xnatsim.server import SimServer

IMPORT = "/data/services/import"
ROOT = "1.2.826.0.1.3680043.10.998."
SOP = {
    "MR": "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "EnhancedMR": "1.2.840.10008.5.1.4.1.1.4.1",
    "CT": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "PT": "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "XA": "1.2.840.10008.5.1.4.1.1.12.1",  # X-Ray Angiographic Image Storage
    "SC": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "RTSTRUCT": "1.2.840.10008.5.1.4.1.1.481.3",  # RT Structure Set Storage
}


def uid(*parts: object) -> str:
    """A valid, deterministic UID naming `parts`."""
    digest = int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:20], 16)
    return ROOT + str(digest)


@dataclass(frozen=True)
class Instance:
    """One DICOM instance; unset UIDs derive from the study, series and instance numbers."""

    study: str = "study1"
    series: int | None = 1
    instance: int = 1
    modality: str = "MR"
    sop_class: str = ""
    series_uid: str = ""
    sop_uid: str = ""
    description: str = "T1"
    patient_name: str = "SUBJ1"
    patient_id: str = "SESS1"
    study_description: str = ""
    comments: str = ""

    def with_(self, **changes) -> Instance:
        return replace(self, **changes)

    @property
    def sop_class_uid(self) -> str:
        return self.sop_class or SOP.get(self.modality, SOP["MR"])

    @property
    def series_instance_uid(self) -> str:
        return self.series_uid or uid(self.study, self.series)

    @property
    def sop_instance_uid(self) -> str:
        return self.sop_uid or uid(self.study, self.series_instance_uid, self.instance)


def dicom_bytes(inst: Instance) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = inst.sop_class_uid
    meta.MediaStorageSOPInstanceUID = inst.sop_instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("mem", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = inst.sop_class_uid
    ds.SOPInstanceUID = inst.sop_instance_uid
    ds.StudyInstanceUID = uid(inst.study)
    ds.SeriesInstanceUID = inst.series_instance_uid
    if inst.series is not None:
        ds.SeriesNumber = inst.series
    ds.SeriesDescription = inst.description
    if inst.modality:
        ds.Modality = inst.modality
    ds.InstanceNumber = inst.instance
    ds.PatientName = inst.patient_name
    ds.PatientID = inst.patient_id
    ds.StudyDate = "20240102"
    if inst.study_description:
        ds.StudyDescription = inst.study_description
    if inst.comments:
        ds.PatientComments = inst.comments
    ds.Rows = ds.Columns = 2
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(4, dtype=np.uint16) + inst.instance).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write_zip(path: Path, entries: dict[str, Instance | bytes]) -> dict[str, str]:
    """A zip of `entries` (name -> instance or raw bytes); returns {name: md5}."""
    md5s: dict[str, str] = {}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name, item in entries.items():
            data = item if isinstance(item, bytes) else dicom_bytes(item)
            zf.writestr(name, data)
            md5s[name] = hashlib.md5(data).hexdigest()
    return md5s


def post_zip(s: requests.Session, srv: SimServer, path: Path, **params) -> requests.Response:
    """POST a zip to the import service as the body (DICOM-zip unless told otherwise)."""
    params.setdefault("import-handler", "DICOM-zip")
    with open(path, "rb") as fh:
        return s.post(
            f"{srv.url}{IMPORT}",
            params=params,
            data=fh,
            headers={"Content-Type": "application/zip"},
        )


def rows(s: requests.Session, url: str) -> list[dict]:
    r = s.get(url, params={"format": "json"})
    assert r.status_code == 200, r.text
    return r.json()["ResultSet"]["Result"]


def scan_files(s: requests.Session, srv: SimServer, exp_path: str) -> dict[str, list[str]]:
    """{scan ID: sorted DICOM file names} of an archived session (`/data/projects/P/...`)."""
    out: dict[str, list[str]] = {}
    for scan in rows(s, f"{srv.url}{exp_path}/scans"):
        files = rows(s, f"{srv.url}{exp_path}/scans/{scan['ID']}/resources/DICOM/files")
        out[scan["ID"]] = sorted(f["Name"] for f in files)
    return out


def header(s: requests.Session, srv: SimServer, file_uri: str) -> pydicom.Dataset:
    """Download one stored file and read its header."""
    r = s.get(f"{srv.url}{file_uri}")
    assert r.status_code == 200, r.text
    return pydicom.dcmread(io.BytesIO(r.content))
