"""Whole-object documents (`GET <object>?format=json|xml`) in XNAT's item shape."""

from __future__ import annotations

import json
from xml.sax.saxutils import escape, quoteattr

from xnatsim.store import Store

ROOT_NAMES = {
    "xnat:projectData": "xnat:Project",
    "xnat:subjectData": "xnat:Subject",
    "xnat:mrSessionData": "xnat:MRSession",
    "xnat:ctSessionData": "xnat:CTSession",
    "xnat:petSessionData": "xnat:PETSession",
    "xnat:mrScanData": "xnat:MRScan",
    "xnat:ctScanData": "xnat:CTScan",
    "xnat:petScanData": "xnat:PETScan",
    "xnat:otherDicomSessionData": "xnat:OtherDicomSession",
    "xnat:otherDicomScanData": "xnat:OtherDicomScan",
    "xnat:resourceCatalog": "xnat:resourceCatalog",
}


def item(xsi_type: str, data: dict, children: list[dict] | None = None) -> dict:
    return {
        "meta": {"xsi:type": xsi_type, "isHistory": False},
        "data_fields": {k: v for k, v in data.items() if v not in (None, "")},
        "children": children or [],
    }


def _extra(row) -> dict:
    return json.loads(row["fields"] or "{}")


class Documents:
    def __init__(self, store: Store) -> None:
        self.store = store

    def resource_items(self, kind: str, key: str) -> list[dict]:
        return [
            item(
                "xnat:resourceCatalog",
                {
                    "xnat_abstractresource_id": r["id"],
                    "label": r["label"],
                    "format": r["format"],
                    "content": r["content"],
                    "description": r["description"],
                    "file_count": r["file_count"],
                    "file_size": r["file_size"],
                    "tags": r["tags"],
                },
            )
            for r in self.store.resources(kind, key)
        ]

    def project(self, p) -> dict:
        res = self.resource_items("project", p["id"])
        children = [{"field": "resources/resource", "items": res}] if res else []
        return item(
            "xnat:projectData",
            {
                "ID": p["id"],
                "secondary_ID": p["secondary_id"],
                "name": p["name"],
                "description": p["description"],
                "accessibility": p["accessibility"],
            },
            children,
        )

    def subject(self, s) -> dict:
        res = self.resource_items("subject", s["id"])
        children = [{"field": "resources/resource", "items": res}] if res else []
        exps = self.store.query(
            "SELECT * FROM experiments WHERE subject_id = ? AND session_id = '' ORDER BY id",
            (s["id"],),
        )
        if exps:
            children.append(
                {"field": "experiments/experiment", "items": [self.experiment(e) for e in exps]}
            )
        demo = {
            k: s[c]
            for k, c in (
                ("gender", "gender"),
                ("dob", "dob"),
                ("yob", "yob"),
                ("handedness", "handedness"),
            )
        }
        if any(demo.values()):
            children.append(
                {"field": "demographics", "items": [item("xnat:demographicData", demo)]}
            )
        data = {
            "ID": s["id"],
            "project": s["project"],
            "label": s["label"],
            "group": s["grp"],
            "src": s["src"],
            "insert_date": s["insert_date"],
        }
        data.update(_extra(s))
        return item("xnat:subjectData", data, children)

    def scan(self, sc) -> dict:
        res = self.resource_items("scan", str(sc["pk"]))
        children = [{"field": "file", "items": res}] if res else []
        data = {
            "ID": sc["scan_id"],
            "type": sc["type"],
            "quality": sc["quality"],
            "note": sc["note"],
            "series_description": sc["series_description"],
            "UID": sc["uid"],
            "frames": sc["frames"],
            "image_session_ID": sc["experiment_id"],
            "xnat_imagescandata_id": sc["pk"],
        }
        data.update(_extra(sc))
        return item(sc["xsi_type"], data, children)

    def experiment(self, e) -> dict:
        kind = "assessor" if e["session_id"] else "experiment"
        children = []
        res = self.resource_items(kind, e["id"])
        if res:
            field = "out/file" if kind == "assessor" else "resources/resource"
            children.append({"field": field, "items": res})
        scans = self.store.query(
            "SELECT * FROM scans WHERE experiment_id = ? ORDER BY pk", (e["id"],)
        )
        if scans:
            children.append({"field": "scans/scan", "items": [self.scan(s) for s in scans]})
        asses = self.store.query(
            "SELECT * FROM experiments WHERE session_id = ? ORDER BY id", (e["id"],)
        )
        if asses:
            children.append(
                {"field": "assessors/assessor", "items": [self.experiment(a) for a in asses]}
            )
        data = {
            "ID": e["id"],
            "label": e["label"],
            "project": e["project"],
            "subject_ID": e["subject_id"],
            "date": e["date"],
            "UID": e["uid"],
            "modality": e["modality"],
            "insert_date": e["insert_date"],
        }
        if e["session_id"]:
            data["imageSession_ID"] = e["session_id"]
        data.update(_extra(e))
        return item(e["xsi_type"], data, children)


def to_json(doc: dict) -> bytes:
    return json.dumps({"items": [doc]}).encode()


def to_xml(doc: dict) -> bytes:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _xml_item(doc, parts, root=True)
    return "".join(parts).encode()


ATTRS = {"ID", "project", "label", "type", "xsi:type"}


def _xml_item(doc: dict, parts: list[str], root: bool = False, tag: str | None = None) -> None:
    xsi = doc["meta"]["xsi:type"]
    name = tag or ROOT_NAMES.get(xsi, xsi)
    attrs = ""
    if root:
        attrs += (
            ' xmlns:xnat="http://nrg.wustl.edu/xnat"'
            ' xmlns:xdat="http://nrg.wustl.edu/security"'
            ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        )
    else:
        attrs += f" xsi:type={quoteattr(xsi)}"
    fields = doc["data_fields"]
    for key in ("ID", "project", "label", "type"):
        if key in fields:
            attrs += f" {key}={quoteattr(str(fields[key]))}"
    parts.append(f"<{name}{attrs}>")
    for key, value in fields.items():
        if key in ATTRS or not key.replace("_", "").isalnum():
            continue
        parts.append(f"<xnat:{key}>{escape(str(value))}</xnat:{key}>")
    for child in doc["children"]:
        outer, _, inner = child["field"].partition("/")
        if inner:
            parts.append(f"<xnat:{outer}>")
        for sub in child["items"]:
            _xml_item(sub, parts, tag=f"xnat:{inner or outer}")
        if inner:
            parts.append(f"</xnat:{outer}>")
    parts.append(f"</{name}>")
