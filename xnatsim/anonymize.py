"""XNAT's default site-wide anonymization script, applied to imported DICOM.

A default XNAT 1.8 site has the site-wide script enabled
(`SiteConfigPreferences.getEnableSitewideAnonymizationScript`, default true) and its script is
the `META-INF/xnat/defaults/id.das` resource:

    version "6.1"
    project != "Unassigned" ? (0008,1030) := project
    (0010,0010) := subject
    (0010,0020) := session

so every imported file carries the routed project (StudyDescription), subject (PatientName) and
session label (PatientID), and its bytes, size and MD5 change. The gradual-DICOM path (used by
DICOM-zip) runs it per stored file unless the import says `prevent_anon=true`
(`GradualDicomImporter.call`); the session importer runs it over the session when it archives
(`SessionImporter.call`, `SiteWideAnonymizer`), whatever `prevent_anon` says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.tag import Tag

# The default script, as XNAT serves it from GET /xapi/anonymize/default.
DEFAULT_SCRIPT = (
    'version "6.1"\n'
    'project != "Unassigned" ? (0008,1030) := project\n'
    "(0010,0010) := subject\n"
    "(0010,0020) := session\n"
)
UNASSIGNED = "Unassigned"
STUDY_DESCRIPTION = Tag(0x0008, 0x1030)
PATIENT_NAME = Tag(0x0010, 0x0010)
PATIENT_ID = Tag(0x0010, 0x0020)
VRS = {STUDY_DESCRIPTION: "LO", PATIENT_NAME: "PN", PATIENT_ID: "LO"}


@dataclass(frozen=True)
class Labels:
    """The script's variables: the routed project, subject and session (folder) labels."""

    project: str
    subject: str
    session: str

    def assignments(self) -> dict[Tag, str]:
        out: dict[Tag, str] = {}
        if self.project != UNASSIGNED:
            out[STUDY_DESCRIPTION] = self.project
        out[PATIENT_NAME] = self.subject
        out[PATIENT_ID] = self.session
        return out


def _current(ds: pydicom.Dataset, tag: Tag) -> str | None:
    if tag not in ds:
        return None
    value = ds[tag].value
    return "" if value is None else str(value)


def apply_default_script(path: Path, labels: Labels) -> bool:
    """Rewrite `path` in place as the default script would; True if its bytes changed.

    A file whose three values already match is left byte for byte as it was, so importing the
    same labels again is stable. The rewrite goes to a sibling file first and replaces the
    original atomically, so a failure never leaves a half-written file.
    """
    ds = pydicom.dcmread(path)
    changes = {
        tag: value for tag, value in labels.assignments().items() if _current(ds, tag) != value
    }
    if not changes:
        return False
    for tag, value in changes.items():
        if tag in ds:
            ds[tag].value = value
        else:
            ds.add_new(tag, VRS[tag], value)
    tmp = path.with_name(path.name + ".anon")
    try:
        ds.save_as(tmp, enforce_file_format=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True
