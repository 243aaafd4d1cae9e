"""The destination probe's synthetic session: tiny real DICOM, and how headers came back.

The probe (``planner.probe``) imports one small MR study with two series into a scratch
subject and downloads it again. The study's PatientName, PatientID and StudyDescription are
deliberately unlike the scratch labels and the project, so a server that rewrites headers on
import (XNAT's site-wide anonymization script sets (0008,1030), (0010,0010) and (0010,0020)
from the project, subject and session labels) shows it in the comparison.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERIES_NUMBERS = (1, 2)
INSTANCES_PER_SERIES = 2
MATRIX = 8
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

# Deliberately unlike any label the probe uses, so a rewrite of them is visible.
PATIENT_NAME = "XNATCTL^PROBE^PATIENT"
PATIENT_ID = "XNATCTL-PROBE-PID"
STUDY_DESCRIPTION = "XNATCTL PROBE STUDY"


@dataclass(frozen=True)
class ProbeInstance:
    name: str  # file name in the upload
    sop_instance_uid: str
    data: bytes  # the file as sent


@dataclass(frozen=True)
class ProbeSeries:
    number: int
    uid: str
    description: str
    instances: tuple[ProbeInstance, ...]

    def write_zip(self, path: Path) -> Path:
        """One zip of this series' files, named as sent (one series per import request)."""
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            for inst in self.instances:
                zf.writestr(inst.name, inst.data)
        return path


@dataclass(frozen=True)
class ProbeStudy:
    study_uid: str
    series: tuple[ProbeSeries, ...]

    def instances(self) -> Iterator[ProbeInstance]:
        for s in self.series:
            yield from s.instances


def make_study() -> ProbeStudy:
    """A new study: fresh UIDs every time, so nothing on any server can already hold it."""
    from pydicom.uid import generate_uid

    study_uid = generate_uid()
    series = []
    for number in SERIES_NUMBERS:
        series_uid = generate_uid()
        instances = []
        for k in range(1, INSTANCES_PER_SERIES + 1):
            sop_uid = generate_uid()
            data = _dicom_bytes(study_uid, series_uid, sop_uid, number, k)
            instances.append(ProbeInstance(f"probe_s{number}_i{k}.dcm", sop_uid, data))
        series.append(ProbeSeries(number, series_uid, f"xnatctl probe {number}", tuple(instances)))
    return ProbeStudy(study_uid, tuple(series))


def _dicom_bytes(
    study_uid: str, series_uid: str, sop_uid: str, series: int, instance: int
) -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("probe.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = MR_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "MR"
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.StudyDescription = STUDY_DESCRIPTION
    ds.SeriesDescription = f"xnatctl probe {series}"
    ds.StudyDate = ds.SeriesDate = "20000101"
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.StudyID = "1"
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.Rows = ds.Columns = MATRIX
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = bytes((series * 16 + instance + i) % 256 for i in range(MATRIX * MATRIX * 2))
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# -- comparing what came back ----------------------------------------------------------------


@dataclass(frozen=True)
class TagChange:
    tag: str  # "(0010,0010)"
    keyword: str
    sent: str | None  # None when the tag was not sent
    received: str | None  # None when the tag is gone

    def describe(self) -> str:
        name = f"{self.tag} {self.keyword}".strip()
        return f"{name} {_shown(self.sent)} -> {_shown(self.received)}"


def _shown(value: str | None) -> str:
    return "(absent)" if value is None else repr(value)


@dataclass
class HeaderReport:
    """How the downloaded files' headers differ from the ones sent."""

    changes: list[TagChange] = field(default_factory=list)
    matched: int = 0  # files paired by SOPInstanceUID
    unreadable: list[str] = field(default_factory=list)  # entries that were not DICOM


def _elements(data: bytes) -> dict[str, tuple[str, str]]:
    """Tag -> (keyword, value as text) for the data set (not the file meta) of one file."""
    import pydicom

    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    out: dict[str, tuple[str, str]] = {}
    for elem in ds:
        if elem.tag == 0x7FE00010:  # pixel data: compared by bytes would only be noise here
            continue
        tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
        out[tag] = (elem.keyword or elem.name, _value_text(elem.value))
    return out


def _value_text(value: Any) -> str:
    """One short line per value: a sequence as its items' code values (or its length), so a
    rewrite such as DicomEdit's DeidentificationMethodCodeSequence reads at a glance."""
    import pydicom

    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, pydicom.Sequence):
        codes = [str(item.get("CodeValue", "")) for item in value]
        if codes and all(codes):
            return f"{len(codes)} item(s), code values {', '.join(codes)}"
        return f"{len(value)} item(s)"
    return str(value)


def sop_instance_uid(data: bytes) -> str:
    import pydicom

    ds = pydicom.dcmread(
        io.BytesIO(data), force=True, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]
    )
    return str(getattr(ds, "SOPInstanceUID", "") or "")


def compare_headers(
    sent: Iterable[ProbeInstance], received: dict[str, bytes]
) -> tuple[HeaderReport, dict[str, str]]:
    """Pair received files (entry name -> bytes) with the sent ones by SOPInstanceUID.

    Returns the report (each changed tag once, with its first old and new value) and the
    received SOPInstanceUID of each entry.
    """
    by_uid = {inst.sop_instance_uid: inst for inst in sent}
    report = HeaderReport()
    seen: dict[str, TagChange] = {}
    uids: dict[str, str] = {}
    for name, data in sorted(received.items()):
        try:
            uid = sop_instance_uid(data)
        except Exception:
            uid = ""
        if not uid:  # not DICOM, or no SOPInstanceUID: nothing to pair it with
            report.unreadable.append(name)
            continue
        uids[name] = uid
        inst = by_uid.get(uid)
        if inst is None:
            continue
        report.matched += 1
        before, after = _elements(inst.data), _elements(data)
        for tag in sorted(set(before) | set(after)):
            old, new = before.get(tag), after.get(tag)
            if old is not None and new is not None and old[1] == new[1]:
                continue
            if tag in seen:
                continue
            keyword = (new or old or ("", ""))[0]
            seen[tag] = TagChange(tag, keyword, old and old[1], new and new[1])
    report.changes = [seen[t] for t in sorted(seen)]
    return report, uids
