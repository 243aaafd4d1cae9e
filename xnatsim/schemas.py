"""Small hand-written XSDs with the XNAT data types this simulator serves.

Clients such as xnatpy build their object model from `/xapi/schemas/{name}`; they need the
type names, their inheritance and the child element names, not XNAT's full schema.
"""

from __future__ import annotations

SCHEMA_NAMES = ["xnat", "xdat", "clin"]

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<xs:schema targetNamespace="{ns}" xmlns:xnat="http://nrg.wustl.edu/xnat"'
    ' xmlns:xdat="{xdat}" xmlns:xs="http://www.w3.org/2001/XMLSchema"'
    ' elementFormDefault="qualified" attributeFormDefault="unqualified">\n'
)


def _el(name: str, type_: str = "xs:string", many: bool = False) -> str:
    occurs = ' maxOccurs="unbounded"' if many else ""
    return f'<xs:element name="{name}" type="{type_}" minOccurs="0"{occurs}/>'


def _attr(name: str, type_: str = "xs:string") -> str:
    return f'<xs:attribute name="{name}" type="{type_}"/>'


def _wrap(name: str, inner: str, type_: str) -> str:
    """A plural wrapper element (`scans` holding `scan`s), as XNAT's schema nests lists."""
    return (
        f'<xs:element name="{name}" minOccurs="0"><xs:complexType><xs:sequence>'
        f'<xs:element name="{inner}" type="{type_}" minOccurs="0" maxOccurs="unbounded"/>'
        "</xs:sequence></xs:complexType></xs:element>"
    )


def _fields() -> str:
    """Custom fields: `<fields><field name="..">value</field></fields>`, as in XNAT's schema."""
    return (
        '<xs:element name="fields" minOccurs="0"><xs:complexType><xs:sequence>'
        '<xs:element name="field" minOccurs="0" maxOccurs="unbounded">'
        '<xs:annotation><xs:appinfo><xdat:element displayIdentifiers="name"/>'
        "</xs:appinfo></xs:annotation><xs:complexType>"
        '<xs:simpleContent><xs:extension base="xs:string">'
        '<xs:attribute name="name" type="xs:string" use="required"/>'
        "</xs:extension></xs:simpleContent></xs:complexType></xs:element>"
        "</xs:sequence></xs:complexType></xs:element>"
    )


def _type(
    name: str, body: str, base: str | None = None, attrs: str = "", abstract: bool = False
) -> str:
    ab = ' abstract="true"' if abstract else ""
    seq = f"<xs:sequence>{body}</xs:sequence>" if body else ""
    if base:
        return (
            f'<xs:complexType name="{name}"{ab}><xs:complexContent>'
            f'<xs:extension base="{base}">{seq}{attrs}</xs:extension>'
            "</xs:complexContent></xs:complexType>\n"
        )
    return f'<xs:complexType name="{name}"{ab}>{seq}{attrs}</xs:complexType>\n'


def _xnat_schema() -> str:
    types = []
    roots = {
        "Project": "projectData",
        "Subject": "subjectData",
        "MRSession": "mrSessionData",
        "CTSession": "ctSessionData",
        "PETSession": "petSessionData",
        "OtherDicomSession": "otherDicomSessionData",
        "MRScan": "mrScanData",
        "CTScan": "ctScanData",
        "PETScan": "petScanData",
        "OtherDicomScan": "otherDicomScanData",
        "QCAssessment": "qcAssessmentData",
        "SubjectAssessor": "subjectAssessorData",
        "ResourceCatalog": "resourceCatalog",
    }
    types.append(
        _type(
            "abstractResource",
            _el("note") + _el("tags"),
            attrs=_attr("label")
            + _attr("file_count", "xs:integer")
            + _attr("file_size", "xs:long"),
            abstract=True,
        )
    )
    types.append(
        _type(
            "resource",
            "",
            "xnat:abstractResource",
            _attr("URI")
            + _attr("format")
            + _attr("description")
            + _attr("content")
            + _attr("cachePath"),
        )
    )
    types.append(_type("resourceCatalog", "", "xnat:resource"))
    types.append(_type("abstractDemographicData", "", abstract=True))
    types.append(
        _type(
            "demographicData",
            _el("dob", "xs:date")
            + _el("yob", "xs:integer")
            + _el("age", "xs:decimal")
            + _el("gender")
            + _el("handedness")
            + _el("ses", "xs:integer")
            + _el("education", "xs:integer")
            + _el("educationDesc")
            + _el("race")
            + _el("ethnicity")
            + _el("weight", "xs:float")
            + _el("height", "xs:float"),
            "xnat:abstractDemographicData",
        )
    )
    types.append(
        _type(
            "projectData",
            _el("name")
            + _el("description")
            + _el("keywords")
            + _wrap("resources", "resource", "xnat:abstractResource"),
            attrs=_attr("ID") + _attr("secondary_ID") + _attr("active"),
        )
    )
    types.append(
        _type(
            "subjectData",
            _wrap("resources", "resource", "xnat:abstractResource")
            + _wrap("experiments", "experiment", "xnat:subjectAssessorData")
            + _el("demographics", "xnat:abstractDemographicData")
            + _fields()
            + _el("group")
            + _el("src")
            + _el("initials"),
            attrs=_attr("ID") + _attr("project") + _attr("label"),
        )
    )
    types.append(
        _type(
            "experimentData",
            _el("date", "xs:date")
            + _el("time", "xs:time")
            + _el("note")
            + _el("acquisition_site")
            + _fields()
            + _wrap("resources", "resource", "xnat:abstractResource"),
            attrs=_attr("ID")
            + _attr("project")
            + _attr("label")
            + _attr("version")
            + _attr("visit_id"),
            abstract=True,
        )
    )
    types.append(_type("subjectAssessorData", _el("subject_ID"), "xnat:experimentData"))
    types.append(
        _type(
            "imageSessionData",
            _el("scanner")
            + _el("operator")
            + _el("prearchivePath")
            + _el("UID")
            + _el("modality")
            + _wrap("scans", "scan", "xnat:imageScanData")
            + _wrap("assessors", "assessor", "xnat:imageAssessorData"),
            "xnat:subjectAssessorData",
        )
    )
    for session in ("mrSessionData", "ctSessionData", "petSessionData", "otherDicomSessionData"):
        types.append(
            _type(
                session,
                _el("fieldStrength") if session.startswith("mr") else "",
                "xnat:imageSessionData",
            )
        )
    types.append(
        _type(
            "imageScanData",
            _el("image_session_ID")
            + _el("note")
            + _el("quality")
            + _el("condition")
            + _el("series_description")
            + _el("documentation")
            + _el("scanner")
            + _el("modality")
            + _el("frames", "xs:integer")
            + _el("file", "xnat:abstractResource", many=True),
            attrs=_attr("ID") + _attr("type") + _attr("UID") + _attr("project"),
            abstract=True,
        )
    )
    for scan in ("mrScanData", "ctScanData", "petScanData", "otherDicomScanData"):
        types.append(_type(scan, "", "xnat:imageScanData"))
    types.append(
        _type(
            "derivedData",
            _wrap("in", "file", "xnat:abstractResource")
            + _wrap("out", "file", "xnat:abstractResource"),
            "xnat:experimentData",
        )
    )
    types.append(_type("imageAssessorData", _el("imageSession_ID"), "xnat:derivedData"))
    types.append(_type("qcAssessmentData", _el("type"), "xnat:imageAssessorData"))
    elements = "".join(f'<xs:element name="{k}" type="xnat:{v}"/>\n' for k, v in roots.items())
    return (
        _HEAD.format(ns="http://nrg.wustl.edu/xnat", xdat="http://nrg.wustl.edu/xdat")
        + elements
        + "".join(types)
        + "</xs:schema>\n"
    )


def _xdat_schema() -> str:
    return (
        _HEAD.format(ns="http://nrg.wustl.edu/security", xdat="http://nrg.wustl.edu/security")
        + _type("user", _el("login") + _el("firstname") + _el("lastname") + _el("email"))
        + "</xs:schema>\n"
    )


def _clin_schema() -> str:
    """A clinical-data plugin's namespace, as sites install them: one subject assessor type.

    Without it a client that builds its classes from the schemas (xnatpy) cannot read the
    clinical assessments that sample data and real sites hold.
    """
    head = _HEAD.format(ns="http://nrg.wustl.edu/clin", xdat="http://nrg.wustl.edu/xdat")
    head = head.replace("<xs:schema ", '<xs:schema xmlns:clin="http://nrg.wustl.edu/clin" ', 1)
    body = _el("visit") + _el("score") + _el("assessor_name")
    return (
        head
        + '<xs:element name="ClinicalAssessment" type="clin:clinicalAssessmentData"/>\n'
        + _type("clinicalAssessmentData", body, "xnat:subjectAssessorData")
        + "</xs:schema>\n"
    )


SCHEMAS = {"xnat": _xnat_schema(), "xdat": _xdat_schema(), "clin": _clin_schema()}

ELEMENTS = [
    ("xnat:projectData", "Project", "Projects"),
    ("xnat:subjectData", "Subject", "Subjects"),
    ("xnat:mrSessionData", "MR Session", "MR Sessions"),
    ("xnat:ctSessionData", "CT Session", "CT Sessions"),
    ("xnat:petSessionData", "PET Session", "PET Sessions"),
    ("xnat:otherDicomSessionData", "Other DICOM Session", "Other DICOM Sessions"),
    ("xnat:qcAssessmentData", "QC Assessment", "QC Assessments"),
    ("clin:clinicalAssessmentData", "Clinical Assessment", "Clinical Assessments"),
]

ELEMENT_FIELDS = ["ID", "LABEL", "PROJECT", "INSERT_DATE", "INSERT_USER"]
