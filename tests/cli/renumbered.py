"""A source scan whose ID is not its SeriesNumber, built with plain REST writes.

Scan 7 of session RENUM_MR1 (subject RENUM) holds a series whose SeriesNumber is 3, as a scan
re-labelled on the source would; a destination's DICOM import numbers it 3
(``Restructurer.determineScanSubdir``; NRG's TestImport.testModifiedSeriesUIDs relies on that
numbering), so plan, verification and drift must pair the two by series UID.
"""

from __future__ import annotations

import io

import numpy as np
import requests
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ADMIN = ("admin", "admin")
SUBJECT, SESSION, SCAN_ID, SERIES_NUMBER = "RENUM", "RENUM_MR1", "7", 3
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def renumbered_instance(
    series_uid: str, study_uid: str, number: int, *, study_description: str = ""
) -> bytes:
    """One 16x16 MR instance of the renumbered series, as Part-10 bytes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = "T2_relabelled"
    if study_description:
        ds.StudyDescription = study_description
    ds.Modality = "MR"
    ds.InstanceNumber = number
    ds.PatientName = SUBJECT
    ds.PatientID = SESSION
    ds.StudyDate = "20240102"
    ds.Rows = ds.Columns = 16
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = (np.arange(256, dtype=np.uint16) + number).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _put(url: str, path: str, params: dict[str, str] | None = None, **kw: object) -> None:
    reply = requests.put(f"{url}{path}", params=params or {}, auth=ADMIN, timeout=30, **kw)
    assert reply.status_code in (200, 201), f"PUT {path}: {reply.status_code} {reply.text}"


def add_renumbered_scan(url: str, project: str, *, instances: int, nifti: bool = False) -> str:
    """Write the renumbered scan into ``project`` on the server at ``url``; return its series
    UID. With ``nifti``, the scan also gets a NIFTI resource of one file."""
    session = f"/data/projects/{project}/subjects/{SUBJECT}/experiments/{SESSION}"
    _put(url, f"/data/projects/{project}/subjects/{SUBJECT}")
    _put(url, session, {"xsiType": "xnat:mrSessionData", "date": "2024-01-02"})
    series, study = generate_uid(), generate_uid()
    scan = f"{session}/scans/{SCAN_ID}"
    _put(url, scan, {"xsiType": "xnat:mrScanData", "type": "T2_relabelled", "UID": series})
    _put(url, f"{scan}/resources/DICOM", {"format": "DICOM"})
    octets = {"Content-Type": "application/octet-stream"}
    for i in range(1, instances + 1):
        body = renumbered_instance(series, study, i, study_description=project)
        _put(
            url,
            f"{scan}/resources/DICOM/files/MR.{SERIES_NUMBER}.{i}.dcm",
            {"inbody": "true"},
            data=body,
            headers=octets,
        )
    if nifti:
        _put(url, f"{scan}/resources/NIFTI", {"format": "NIFTI", "content": "RAW"})
        _put(
            url,
            f"{scan}/resources/NIFTI/files/t2_relabelled.nii.gz",
            {"inbody": "true"},
            data=b"\x1f\x8b not really a volume",
            headers=octets,
        )
    return series
