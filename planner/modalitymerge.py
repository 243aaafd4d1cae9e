"""Scans that XNAT's DICOM import will not merge into a session of another modality.

A scan moves by DICOM import, one scan per import, into the planned session. XNAT builds a
prearchive session from the uploaded files alone and refuses to archive it into an existing
session of another data type while ``preventCrossModalityMerge`` holds, as it does by
default (``PrearcSessionArchiver.checkForConflicts``: "Invalid modification of session
modality via archive process"). So an RT structure set, a secondary capture of modality OT,
an encapsulated PDF or a CT series of an MR session cannot follow its MR scans by import,
although the source session holds them (it was built from one upload of the whole study).

Such a scan is created on the destination with the source's xsiType and series UID, and its
DICOM files are uploaded into its DICOM resource as they are on the source, as a user would
add them by hand. The destination's site anonymization script does not run on a resource
upload, so these files keep the source's header values.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

from planner.backend import XnatBackend
from planner.errors import Conflict
from planner.plan import ImportScan
from planner.zipcheck import repack_relative

_SCAN = re.compile(r"^xnat:(.+)ScanData$")
_SESSION = re.compile(r"^xnat:(.+)SessionData$")


def scan_modality(xsi_type: str) -> str:
    """``xnat:mrScanData`` -> ``mr``; ``""`` for a type that is not a scan type."""
    match = _SCAN.match(xsi_type or "")
    return match.group(1).lower() if match else ""


def session_modalities(xsi_type: str) -> frozenset[str]:
    """The scan modalities whose import builds a session of ``xsi_type``.

    ``xnat:petmrSessionData`` takes both PET and MR series (TestDicomModalityAssignment
    ``testModalityExtractionPetMr``); other types take their own.
    """
    match = _SESSION.match(xsi_type or "")
    if not match:
        return frozenset()
    name = match.group(1).lower()
    return frozenset({"pet", "mr"}) if name == "petmr" else frozenset({name})


def other_modality(session_xsi_type: str, scan_xsi_type: str) -> bool:
    """True when a scan of ``scan_xsi_type`` imported alone may build another session type."""
    modality = scan_modality(scan_xsi_type)
    kinds = session_modalities(session_xsi_type)
    return bool(modality and kinds) and modality not in kinds


def session_xsi_type(dst: XnatBackend, experiment_path: str) -> str:
    """The destination session's xsiType, or ``""`` when it cannot be read."""
    try:
        doc = dst.get_json(experiment_path, {"format": "json"})
        return str(doc["items"][0]["meta"]["xsi:type"])
    except Exception:  # a best effort: without the type the import's refusal stands
        return ""


def put_scan_files(
    dst: XnatBackend, scan_path: str, scan_params: dict[str, str], zip_path: Path
) -> None:
    """Create the scan (200 when it exists with the same xsiType) and upload the zip's files
    into its DICOM resource, replacing same-named files, so a retry is harmless."""
    dst.request_text("PUT", scan_path, scan_params)
    resource = f"{scan_path}/resources/DICOM"
    with contextlib.suppress(Conflict):  # the folder exists already
        dst.request_text("PUT", resource, {"format": "DICOM", "content": "RAW"})
    flat = zip_path.with_name(zip_path.name[: -len(".zip")] + ".files.zip")
    try:
        repack_relative(zip_path, flat)
        dst.upload(
            "PUT",
            f"{resource}/files",
            flat,
            {"extract": "true", "overwrite": "true", "inbody": "true"},
            content_type="application/zip",
        )
    finally:
        flat.unlink(missing_ok=True)


def scan_params(step: ImportScan) -> dict[str, str]:
    """The scan's creation query: its xsiType, type and series UID as on the source."""
    values = {
        "xsiType": step.xsi_type,
        "type": step.type,
        "series_description": step.type,
        "UID": step.uid,
    }
    return {k: str(v) for k, v in values.items() if v not in (None, "")}
