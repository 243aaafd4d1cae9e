"""XNAT's XML documents: rendering an item tree, and reading a document a client PUTs.

Rendering follows XNAT's layout: the root element is named after the data type
(`xnat:MRSession`), identity sits in attributes, plain values are child elements, custom
fields are `<xnat:fields><xnat:field name="..">value</xnat:field></xnat:fields>` and shares
are `<xnat:sharing><xnat:share label=".." project=".."/></xnat:sharing>`.

Reading keeps only what a client may set. Identity (ID, project, label), bookkeeping
(insert_date...), resources, sharing and nested experiments/assessors are never taken from
a document: the URL names the object, and files and shares have their own calls.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from xnatsim.fields import SERVER_OWNED, canonical_path, root_name, xsi_of_root

XNAT_NS = "http://nrg.wustl.edu/xnat"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_DOCUMENT = 16 << 20

ENTITY_ATTRS = ("ID", "project", "label", "visit_id", "visit", "version")
SCAN_ATTRS = ("ID", "type", "UID", "project")
RESOURCE_ATTRS = ("label", "format", "content", "description")
NOT_ELEMENTS = {"insert_date", "insert_user", "xnat_imagescandata_id", "xnat_abstractresource_id"}
RESOURCE_TYPES = {"xnat:resourceCatalog", "xnat:resource", "xnat:abstractResource"}
SHARE_TYPES = {"xnat:projectParticipant", "xnat:experimentData_share"}
# Elements whose schema type is abstract, so XNAT names the concrete type on each.
TYPED = {"scan", "resource", "file", "assessor", "experiment", "demographics"}


class DocumentError(ValueError):
    """The body is not an XNAT document this server can read."""


# -- rendering -----------------------------------------------------------------------------
def _namespaces(doc: dict, found: set[str]) -> None:
    found.add(doc["meta"]["xsi:type"].partition(":")[0])
    for child in doc["children"]:
        for sub in child["items"]:
            _namespaces(sub, found)


def render(doc: dict) -> bytes:
    prefixes: set[str] = set()
    _namespaces(doc, prefixes)
    decl = f' xmlns:xnat="{XNAT_NS}" xmlns:xsi="{XSI_NS}"'
    for ns in sorted(prefixes - {"xnat", "xsi", ""}):
        decl += f' xmlns:{ns}="http://nrg.wustl.edu/{ns}"'
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _element(doc, root_name(doc["meta"]["xsi:type"]), parts, decl, root=True)
    parts.append("\n")
    return "".join(parts).encode()


def _attr_names(xsi: str) -> tuple[str, ...]:
    if xsi in RESOURCE_TYPES:
        return RESOURCE_ATTRS
    if xsi in SHARE_TYPES:
        return ("label", "project")
    if xsi.endswith("ScanData"):
        return SCAN_ATTRS
    return ENTITY_ATTRS


def _local_name(tag: str) -> str:
    return tag.partition(":")[2] or tag


def _element(doc: dict, tag: str, parts: list[str], decl: str = "", root: bool = False) -> None:
    xsi = doc["meta"]["xsi:type"]
    data = doc["data_fields"]
    if xsi.endswith("_field"):
        parts.append(
            f"<{tag} name={quoteattr(str(data.get('name', '')))}>"
            f"{escape(str(data.get('field', '')))}</{tag}>"
        )
        return
    names = _attr_names(xsi)
    attrs = decl
    for key in names:
        if key in data:
            attrs += f" {key}={quoteattr(str(data[key]))}"
    if (root and not xsi.startswith("xnat:")) or (not root and _local_name(tag) in TYPED):
        attrs += f" xsi:type={quoteattr(xsi)}"
    body: list[str] = []
    for key, value in data.items():
        if key in names or key in NOT_ELEMENTS or xsi in SHARE_TYPES:
            continue
        if not key.replace("_", "").replace("-", "").isalnum():
            continue
        body.append(f"<xnat:{key}>{escape(str(value))}</xnat:{key}>")
    for child in doc["children"]:
        outer, _, inner = child["field"].partition("/")
        if inner:
            body.append(f"<xnat:{outer}>")
        for sub in child["items"]:
            _element(sub, f"xnat:{inner or outer}", body)
        if inner:
            body.append(f"</xnat:{outer}>")
    if body:
        parts.append(f"<{tag}{attrs}>{''.join(body)}</{tag}>")
    else:
        parts.append(f"<{tag}{attrs}/>")


# -- reading -------------------------------------------------------------------------------
@dataclass
class ScanDoc:
    scan_id: str
    xsi_type: str
    fields: dict[str, str]


@dataclass
class Document:
    xsi_type: str
    attrs: dict[str, str]  # identity as the document states it (checked, never trusted)
    fields: dict[str, str]  # canonical field keys a client may set
    scans: list[ScanDoc] | None = None  # None: the document has no <scans> element
    ignored: list[str] = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _prefixed(tag: str) -> str:
    """`{http://nrg.wustl.edu/xnat}MRSession` -> `xnat:MRSession`."""
    if tag.startswith("{"):
        uri, local = tag[1:].split("}", 1)
        if uri == XNAT_NS:
            return f"xnat:{local}"
        prefix = uri.rstrip("/").rsplit("/", 1)[-1]
        return f"{prefix}:{local}"
    return tag


def _xsi_attr(el: ET.Element) -> str:
    return el.get(f"{{{XSI_NS}}}type", "")


def _leaves(el: ET.Element, prefix: str, out: dict[str, str]) -> None:
    """Flatten nested elements into `a/b` paths with their text."""
    for child in el:
        path = f"{prefix}{_local(child.tag)}"
        if len(child):
            _leaves(child, path + "/", out)
        else:
            out[path] = (child.text or "").strip()


def _set(kind: str, out: dict[str, str], path: str, value: str) -> None:
    canon = canonical_path(kind, path)
    if canon is not None:
        out[canon] = value


def parse(body: bytes, kind: str) -> Document:
    """Read a subject (`kind="subject"`) or experiment/assessor document."""
    if len(body) > MAX_DOCUMENT:
        raise DocumentError("The XML document is too large")
    if b"<!DOCTYPE" in body[:4096].upper() or b"<!ENTITY" in body.upper():
        raise DocumentError("XML documents with a DOCTYPE or entities are not accepted")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DocumentError(f"The body is not well-formed XML: {exc}") from None
    xsi = _xsi_attr(root) or xsi_of_root(_prefixed(root.tag))
    attrs = {k: v for k, v in root.attrib.items() if not k.startswith("{")}
    doc = Document(xsi, attrs, {})
    for name in ("visit_id", "visit", "version"):
        if name in attrs:
            _set(kind, doc.fields, name, attrs[name])
    for child in root:
        name = _local(child.tag)
        if name == "fields":
            for f in child:
                if _local(f.tag) == "field" and f.get("name"):
                    doc.fields[f"fields/{f.get('name')}"] = (f.text or "").strip()
        elif name == "demographics" and kind == "subject":
            values: dict[str, str] = {}
            _leaves(child, "", values)
            for key, value in values.items():
                _set(kind, doc.fields, f"demographics/{key}", value)
        elif name == "scans" and kind != "subject":
            doc.scans = [_scan(s) for s in child if _local(s.tag) == "scan"]
        elif name in ("sharing", "resources", "assessors", "experiments", "out", "in", "file"):
            doc.ignored.append(name)
        elif name in SERVER_OWNED:
            continue
        elif len(child):
            values = {}
            _leaves(child, f"{name}/", values)
            for key, value in values.items():
                _set(kind, doc.fields, key, value)
        else:
            _set(kind, doc.fields, name, (child.text or "").strip())
    return doc


def _scan(el: ET.Element) -> ScanDoc:
    scan_id = el.get("ID", "")
    if not scan_id:
        raise DocumentError("A scan in the document has no ID attribute")
    fields: dict[str, str] = {}
    for name in ("type", "UID"):
        if el.get(name) is not None:
            fields[name] = el.get(name, "")
    values: dict[str, str] = {}
    for child in el:
        name = _local(child.tag)
        if name == "file" or name in SERVER_OWNED:
            continue
        if len(child):
            _leaves(child, f"{name}/", values)
        else:
            values[name] = (child.text or "").strip()
    for key, value in values.items():
        _set("scan", fields, key, value)
    return ScanDoc(scan_id, _xsi_attr(el) or "xnat:otherDicomScanData", fields)
