"""Which query parameters set which object fields, as XNAT's REST layer reads them.

XNAT accepts two spellings on PUT: a short name from its fixed shortcut table (`gender`,
`visit_id`, `quality`...) or a full XML path with a namespace (`xnat:mrSessionData/note`,
`xnat:subjectData/fields/field[name=site]/field`). Any other bare name is silently dropped,
so a client that relies on one is caught here as it would be against a real server.

Fields are kept under canonical keys: the element path below the object's root
(`note`, `acquisition_site`, `investigator/firstname`), demographic elements by their bare
name, and custom fields as `fields/NAME`.
"""

from __future__ import annotations

import re

CUSTOM_PREFIX = "fields/"

DEMOGRAPHICS = (
    "dob",
    "yob",
    "age",
    "gender",
    "handedness",
    "ses",
    "education",
    "educationDesc",
    "race",
    "ethnicity",
    "weight",
    "height",
    "gestational_age",
    "post_menstrual_age",
    "birth_weight",
)

SUBJECT_SHORTCUTS = {
    "group": "group",
    "src": "src",
    "pi_firstname": "investigator/firstname",
    "pi_lastname": "investigator/lastname",
    **{k: k for k in DEMOGRAPHICS},
}

_VALIDATION = {
    "validation_method": "validation/method",
    "validation_status": "validation/status",
    "validation_date": "validation/date",
    "validation_notes": "validation/notes",
}

EXPERIMENT_SHORTCUTS = {
    "visit_id": "visit_id",
    "visit": "visit",
    "date": "date",
    "time": "time",
    "note": "note",
    "pi_firstname": "investigator/firstname",
    "pi_lastname": "investigator/lastname",
    **_VALIDATION,
    "scanner": "scanner",
    "operator": "operator",
    "dcmAccessionNumber": "dcmAccessionNumber",
    "dcmPatientId": "dcmPatientId",
    "dcmPatientName": "dcmPatientName",
    "session_type": "session_type",
    "modality": "modality",
    "UID": "UID",
    "studyInstanceUID": "UID",
    "coil": "coil",
    "fieldStrength": "fieldStrength",
    "marker": "marker",
    "stabilization": "stabilization",
    "studyType": "studyType",
    "patientID": "patientID",
    "patientName": "patientName",
    "scan_start_time": "start_time_scan",
    "injection_start_time": "start_time_injection",
    "tracer_name": "tracer/name",
    "tracer_startTime": "tracer/startTime",
    "tracer_dose": "tracer/dose",
    "tracer_sa": "tracer/specificActivity",
    "tracer_totalmass": "tracer/totalMass",
    "tracer_intermediate": "tracer/intermediate",
    "tracer_isotope": "tracer/isotope",
    "tracer_transmissions": "tracer/transmissions",
    "tracer_transmissions_start": "tracer/transmissions_starttime",
}

SCAN_SHORTCUTS = {
    "type": "type",
    "UID": "UID",
    "note": "note",
    "quality": "quality",
    "condition": "condition",
    "series_description": "series_description",
    "documentation": "documentation",
    "scanner": "scanner",
    "modality": "modality",
    "frames": "frames",
    **_VALIDATION,
    "scanTime": "startTime",
    "coil": "coil",
    "fieldStrength": "fieldStrength",
    "marker": "marker",
    "stabilization": "stabilization",
}

# Scan fields kept in their own catalog columns (listed by default).
SCAN_COLUMN_KEYS = {"type", "UID", "note", "quality", "series_description", "frames"}

SHORTCUTS = {
    "subject": SUBJECT_SHORTCUTS,
    "experiment": EXPERIMENT_SHORTCUTS,
    "scan": SCAN_SHORTCUTS,
}

# Elements a client may not set: the server owns identity and bookkeeping.
SERVER_OWNED = {
    "ID",
    "id",
    "project",
    "label",
    "insert_date",
    "insert_user",
    "last_modified",
    "subject_ID",
    "imageSession_ID",
    "image_session_ID",
    "session_ID",
    "xnat_imagescandata_id",
    "prearchivePath",
    "meta",
}

XML_PATH = re.compile(r"^(\w+):(\w+)/(.+)$")
CUSTOM_PATH = re.compile(r"^fields/field\[name=(.+)\]/field$")
PREDICATE = re.compile(r"\[@xsi:type=[\w:]+\]")
XSI_TYPE = re.compile(r"^\w+:\w+$")


def _known(kind: str) -> dict[str, str]:
    """Canonical keys of `kind`, by lower-cased name (XML paths are matched loosely)."""
    values = set(SHORTCUTS[kind].values())
    return {v.lower(): v for v in values}


_KNOWN = {kind: _known(kind) for kind in SHORTCUTS}


def canonical_path(kind: str, rest: str) -> str | None:
    """The canonical key for an XML path below the root, or None if it is not settable."""
    m = CUSTOM_PATH.match(rest)
    if m:
        return None if kind == "scan" else CUSTOM_PREFIX + m.group(1)
    rest = PREDICATE.sub("", rest).strip("/")
    if kind == "subject" and rest.startswith("demographics/"):
        rest = rest[len("demographics/") :]
    if not rest or rest.split("/", 1)[0] in SERVER_OWNED or "[" in rest:
        return None
    return _KNOWN[kind].get(rest.lower(), rest)


def from_params(kind: str, params: dict[str, str]) -> dict[str, str]:
    """The field changes a PUT's query parameters ask for, under canonical keys."""
    out: dict[str, str] = {}
    shortcuts = SHORTCUTS[kind]
    for key, value in params.items():
        if key in shortcuts:
            out[shortcuts[key]] = value
            continue
        m = XML_PATH.match(key)
        if m is None:
            continue  # XNAT ignores bare names that are not shortcuts
        canon = canonical_path(kind, m.group(3))
        if canon is not None:
            out[canon] = value
    return out


def custom(fields: dict[str, str]) -> dict[str, str]:
    return {k[len(CUSTOM_PREFIX) :]: v for k, v in fields.items() if k.startswith(CUSTOM_PREFIX)}


def root_name(xsi_type: str) -> str:
    """XNAT's document element for a data type: `xnat:mrSessionData` -> `xnat:MRSession`."""
    known = ROOT_NAMES.get(xsi_type)
    if known:
        return known
    ns, _, name = xsi_type.partition(":")
    name = name[:-4] if name.endswith("Data") else name
    return f"{ns}:{name[:1].upper()}{name[1:]}"


def xsi_of_root(tag: str) -> str:
    """The data type named by a document element (inverse of `root_name`)."""
    for xsi, root in ROOT_NAMES.items():
        if root == tag:
            return xsi
    ns, _, name = tag.partition(":")
    return f"{ns}:{name[:1].lower()}{name[1:]}Data"


ROOT_NAMES = {
    "xnat:projectData": "xnat:Project",
    "xnat:subjectData": "xnat:Subject",
    "xnat:mrSessionData": "xnat:MRSession",
    "xnat:ctSessionData": "xnat:CTSession",
    "xnat:petSessionData": "xnat:PETSession",
    "xnat:otherDicomSessionData": "xnat:OtherDicomSession",
    "xnat:mrScanData": "xnat:MRScan",
    "xnat:ctScanData": "xnat:CTScan",
    "xnat:petScanData": "xnat:PETScan",
    "xnat:otherDicomScanData": "xnat:OtherDicomScan",
    "xnat:qcAssessmentData": "xnat:QCAssessment",
    "xnat:qcManualAssessorData": "xnat:QCManualAssessment",
    "xnat:subjectAssessorData": "xnat:SubjectAssessor",
    "xnat:resourceCatalog": "xnat:resourceCatalog",
}
