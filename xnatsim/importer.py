"""The DICOM-zip import service: parse an upload into sessions, then prearchive or archive.

Everything is staged under the data dir's tmp folder first; the catalog and the archive change
only once every check passed, so a refused import leaves no trace.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import pydicom

from xnatsim.uploads import extract_archive
from xnatsim.web import HTTPError

SESSION_TYPES = {
    "MR": "xnat:mrSessionData",
    "CT": "xnat:ctSessionData",
    "PT": "xnat:petSessionData",
}
SCAN_TYPES = {"MR": "xnat:mrScanData", "CT": "xnat:ctScanData", "PT": "xnat:petScanData"}
ROUTING_TAGS = ("PatientComments", "StudyComments", "AdditionalPatientHistory")


def sanitise(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", label.strip())


@dataclass
class StagedFile:
    name: str
    path: str
    size: int
    md5: str


@dataclass
class StagedScan:
    scan_id: str
    xsi_type: str
    type: str
    uid: str
    files: list[StagedFile] = field(default_factory=list)


@dataclass
class StagedSession:
    study_uid: str
    project: str
    subject: str
    label: str
    modality: str
    date: str
    scans: dict[str, StagedScan] = field(default_factory=dict)

    @property
    def xsi_type(self) -> str:
        return SESSION_TYPES.get(self.modality, "xnat:otherDicomSessionData")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StagedSession:
        data = json.loads(text)
        scans = {
            k: StagedScan(
                v["scan_id"],
                v["xsi_type"],
                v["type"],
                v["uid"],
                [StagedFile(**f) for f in v["files"]],
            )
            for k, v in data.pop("scans").items()
        }
        return cls(**data, scans=scans)


def _routing_hint(ds: pydicom.Dataset, key: str) -> str:
    for tag in ROUTING_TAGS:
        value = str(ds.get(tag, "") or "")
        match = re.search(rf"{key}:\s*([^\s:]+)", value)
        if match:
            return match.group(1)
    return ""


def _scan_id(ds: pydicom.Dataset) -> str:
    number = ds.get("SeriesNumber", None)
    if number not in (None, ""):
        return str(number)
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    return re.sub(r"[^A-Za-z0-9]", "_", uid) if uid else "NA"


def _dicom_date(value: str) -> str:
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


@dataclass
class Routing:
    project: str = ""
    subject: str = ""
    session: str = ""


def parse_upload(
    archive: Path, staging: Path, routing: Routing, ignore_unparsable: bool
) -> list[StagedSession]:
    """Read every entry's DICOM header and group files into one session per study."""
    entries = extract_archive(archive, staging)
    sessions: dict[str, StagedSession] = {}
    for rel, path, size, md5 in entries:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            study_uid = str(ds.StudyInstanceUID)
        except Exception:  # any unreadable header (pydicom raises many types) is "unparsable"
            if ignore_unparsable:
                path.unlink(missing_ok=True)
                continue
            raise HTTPError(400, f"Unable to parse {rel} as DICOM") from None
        sess = sessions.get(study_uid)
        if sess is None:
            project = (
                routing.project
                or _routing_hint(ds, "Project")
                or str(ds.get("StudyDescription", "") or "")
                or str(ds.get("AccessionNumber", "") or "")
            )
            subject = (
                routing.subject
                or _routing_hint(ds, "Subject")
                or str(ds.get("PatientName", "") or "")
            )
            label = (
                routing.session
                or _routing_hint(ds, "Session")
                or str(ds.get("PatientID", "") or "")
            )
            sess = StagedSession(
                study_uid,
                sanitise(project),
                sanitise(subject),
                sanitise(label),
                "",
                _dicom_date(str(ds.get("StudyDate", ""))),
            )
            sessions[study_uid] = sess
        modality = str(ds.get("Modality", "") or "").upper()
        if not sess.modality or (sess.modality not in SESSION_TYPES and modality in SESSION_TYPES):
            sess.modality = modality
        scan_id = _scan_id(ds)
        scan = sess.scans.get(scan_id)
        if scan is None:
            desc = str(ds.get("SeriesDescription", "") or "")
            scan = StagedScan(
                scan_id,
                SCAN_TYPES.get(modality, "xnat:otherDicomScanData"),
                desc,
                str(ds.get("SeriesInstanceUID", "") or ""),
            )
            sess.scans[scan_id] = scan
        name = PurePosixPath(rel).name
        taken = {f.name for f in scan.files}
        if name in taken:
            stem, n = name, 1
            while f"{stem}-{n}" in taken:
                n += 1
            name = f"{stem}-{n}"
        scan.files.append(StagedFile(name, str(path), size, md5))
    for sess in sessions.values():
        if not sess.project:
            raise HTTPError(400, "No project given and none found in the DICOM headers")
        if not sess.subject or not sess.label:
            raise HTTPError(400, "Could not determine the subject or session label")
    return list(sessions.values())
