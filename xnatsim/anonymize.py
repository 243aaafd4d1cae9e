"""XNAT's default site-wide anonymization script, applied to imported DICOM.

A default XNAT 1.8 site has the site-wide script enabled
(`SiteConfigPreferences.getEnableSitewideAnonymizationScript`, default true) and its script is
the `META-INF/xnat/defaults/id.das` resource:

    version "6.1"
    project != "Unassigned" ? (0008,1030) := project
    (0010,0010) := subject
    (0010,0020) := session

so every imported file carries the routed project (StudyDescription), subject (PatientName) and
session label (PatientID). DicomEdit also records each script it applies as one more item of
DeidentificationMethodCodeSequence (0012,0064), whose CodeValue is the script's ID in XNAT's
config service (NRG's TestAnonymizerLegacy reads `codes[0]` and compares it with
`GET /data/config/anon/script`), so every anonymized file's bytes, size and MD5 change, even
when the three values were already right. The gradual-DICOM path (used by
DICOM-zip) runs it per stored file unless the import says `prevent_anon=true`
(`GradualDicomImporter.call`); the session importer runs it over the session when it archives
(`SessionImporter.call`, `SiteWideAnonymizer`), whatever `prevent_anon` says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

# The default script, as XNAT serves it from GET /xapi/anonymize/default.
DEFAULT_SCRIPT = (
    'version "6.1"\n'
    'project != "Unassigned" ? (0008,1030) := project\n'
    "(0010,0010) := subject\n"
    "(0010,0020) := session\n"
)
# The site script's ID in the config service (`GET /data/config/anon/script`); a fresh XNAT
# stores it as the first configuration.
SITE_SCRIPT_ID = "1"
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


def _record_script(ds: pydicom.Dataset) -> None:
    """Append the site script's code item to DeidentificationMethodCodeSequence, as DicomEdit
    does for every script it applies."""
    item = Dataset()
    item.CodeValue = SITE_SCRIPT_ID
    item.CodingSchemeDesignator = "XNAT"
    item.CodeMeaning = "Site-wide anonymization script"
    if "DeidentificationMethodCodeSequence" not in ds:
        ds.DeidentificationMethodCodeSequence = Sequence()
    ds.DeidentificationMethodCodeSequence.append(item)


def apply_default_script(path: Path, labels: Labels) -> None:
    """Rewrite `path` in place as the default script would, recording the script.

    The rewrite goes to a sibling file first and replaces the original atomically, so a
    failure never leaves a half-written file.
    """
    ds = pydicom.dcmread(path)
    for tag, value in labels.assignments().items():
        if _current(ds, tag) == value:
            continue
        if tag in ds:
            ds[tag].value = value
        else:
            ds.add_new(tag, VRS[tag], value)
    _record_script(ds)
    tmp = path.with_name(path.name + ".anon")
    try:
        ds.save_as(tmp, enforce_file_format=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
