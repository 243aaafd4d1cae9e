"""Rewrite an XNAT experiment's XML document for another server.

XNAT's XML document of an experiment (``GET <experiment>?format=xml``) carries every field
it has, including the ones no PUT parameter reaches (plugin fields, custom fields, per-scan
notes and types). To carry them, the source's document is rewritten for the destination and
``PUT`` there as an XML body with ``allowDataDeletion=false``, so nothing on the destination
is removed. Rewriting is pure (bytes in, bytes out) and follows these rules:

- identity is the destination's: the root's ``ID``, ``label`` and ``project`` attributes,
  ``subject_ID`` and (for a session assessor) ``imageSession_ID``;
- scans keep only those the plan carries (imported from DICOM, created without DICOM, or
  already there), each under the destination's scan ID (the walk pairs scans by ID and
  series UID; import numbers them by SeriesNumber, a created scan keeps the source's ID);
- server-owned parts go: other ``ID`` attributes and ``xnat_*_id`` attributes, insert
  dates and users, ``prearchivePath``, resource and file catalogs (``file``,
  ``resources``, ``out``, ``in``), ``sharing``, and nested ``assessors``/``experiments``
  (they are transferred on their own).

Namespace prefixes are kept as the source wrote them, because ``xsi:type`` values such as
``xnat:mrScanData`` refer to prefixes by name.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

XNAT_NS = "http://nrg.wustl.edu/xnat"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
MAX_DOCUMENT = 64 << 20

# Elements (by local name) that a server owns or that are transferred by other steps.
DROPPED_ELEMENTS = frozenset(
    {
        "prearchivePath",
        "insert_date",
        "insert_user",
        "file",
        "resources",
        "out",
        "in",
        "sharing",
        "assessors",
        "experiments",
        "image_session_ID",
        "meta",
    }
)


class DocumentError(ValueError):
    """The text is not an XNAT XML document this tool can rewrite."""


@dataclass(frozen=True)
class Destination:
    """Who the document describes on the destination.

    ``id`` may be empty (the server then keeps its own); ``scan_ids`` maps source scan IDs
    to destination scan IDs, and scans not in it are left out; ``None`` keeps no scans.
    """

    project: str
    label: str
    id: str = ""
    subject_id: str = ""
    session_id: str = ""
    scan_ids: Mapping[str, str] | None = None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _namespaces(data: bytes) -> list[tuple[str, str]]:
    """(prefix, URI) declared anywhere in the document, in document order."""
    seen: dict[str, str] = {}
    try:
        for _event, (prefix, uri) in ET.iterparse(io.BytesIO(data), events=("start-ns",)):
            seen.setdefault(prefix, uri)
    except ET.ParseError as exc:
        raise DocumentError(f"not well-formed XML: {exc}") from None
    return list(seen.items())


def parse(data: bytes | str) -> tuple[ET.Element, list[tuple[str, str]]]:
    """The root element and the namespace declarations of a document."""
    raw = data.encode() if isinstance(data, str) else data
    if len(raw) > MAX_DOCUMENT:
        raise DocumentError(f"the document is larger than {MAX_DOCUMENT >> 20} MB")
    head = raw[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in raw.upper():
        raise DocumentError("documents with a DOCTYPE or entities are not accepted")
    namespaces = _namespaces(raw)
    try:
        root = ET.fromstring(raw)
    except ET.ParseError as exc:
        raise DocumentError(f"not well-formed XML: {exc}") from None
    return root, namespaces


def scan_uids(data: bytes | str) -> dict[str, str]:
    """Scan ID -> series UID (or ``""``) of an experiment document."""
    root, _ = parse(data)
    out: dict[str, str] = {}
    for scans in root:
        if _local(scans.tag) != "scans":
            continue
        for scan in scans:
            scan_id = scan.get("ID", "")
            if _local(scan.tag) == "scan" and scan_id:
                uid = scan.get("UID", "")
                if not uid:
                    uid = next(((c.text or "").strip() for c in scan if _local(c.tag) == "UID"), "")
                out[scan_id] = uid
    return out


def _strip(el: ET.Element, skip: frozenset[str] = frozenset()) -> None:
    """Remove server-owned children and attributes below ``el`` (not ``el``'s own ID);
    children named in ``skip`` are left alone."""
    for child in list(el):
        name = _local(child.tag)
        if name in skip:
            continue
        if name in DROPPED_ELEMENTS:
            el.remove(child)
            continue
        for name in list(child.attrib):
            low = name.lower()
            if name == "ID" or (low.startswith("xnat_") and low.endswith("_id")):
                del child.attrib[name]
        _strip(child)


def _set_text(root: ET.Element, name: str, value: str) -> None:
    for child in root:
        if _local(child.tag) == name:
            if value:
                child.text = value
            else:
                root.remove(child)
            return


def _rewrite_scans(root: ET.Element, scan_ids: Mapping[str, str] | None) -> None:
    for scans in [c for c in root if _local(c.tag) == "scans"]:
        kept = 0
        for scan in list(scans):
            source_id = scan.get("ID", "")
            if _local(scan.tag) != "scan" or scan_ids is None or source_id not in scan_ids:
                scans.remove(scan)
                continue
            attrs = dict(scan.attrib)
            _strip(scan)
            scan.attrib.clear()
            scan.attrib.update(
                {
                    k: v
                    for k, v in attrs.items()
                    if k != "project" and not (k.lower().startswith("xnat_") and k.endswith("_id"))
                }
            )
            scan.set("ID", scan_ids[source_id])
            kept += 1
        if not kept:
            root.remove(scans)


def _serialize(root: ET.Element, namespaces: list[tuple[str, str]]) -> bytes:
    for prefix, uri in namespaces:
        if prefix and not prefix.startswith("ns"):
            ET.register_namespace(prefix, uri)
    body = ET.tostring(root, encoding="unicode", short_empty_elements=True)
    # ElementTree declares only prefixes used in names; xsi:type values use others too.
    end = body.index(">")
    if body[end - 1] == "/":
        end -= 1
    start_tag = body[:end]
    extra = "".join(
        f' xmlns:{prefix}="{uri}"'
        for prefix, uri in namespaces
        if prefix and f"xmlns:{prefix}=" not in start_tag
    )
    body = start_tag + extra + body[end:]
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode()


def rewrite(data: bytes | str, dest: Destination) -> bytes:
    """The source document rewritten for ``dest`` by the rules in the module doc."""
    root, namespaces = parse(data)
    _strip(root, skip=frozenset({"scans"}))  # element order is kept: XNAT's schema is a sequence
    _rewrite_scans(root, dest.scan_ids)
    if dest.id:
        root.set("ID", dest.id)
    else:
        root.attrib.pop("ID", None)
    root.set("project", dest.project)
    root.set("label", dest.label)
    _set_text(root, "subject_ID", dest.subject_id)
    _set_text(root, "imageSession_ID", dest.session_id)
    return _serialize(root, namespaces)


def fields_of(data: bytes | str) -> dict[str, str]:
    """Plain child elements of the root with their text (for tests and diagnostics)."""
    root, _ = parse(data)
    return {_local(c.tag): (c.text or "").strip() for c in root if len(c) == 0}
