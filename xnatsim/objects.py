"""Whole-object documents (`GET <object>?format=json|xml`) in XNAT's item shape.

A document is a tree of items: `{"meta": {"xsi:type"}, "data_fields": {...}, "children":
[{"field": "scans/scan", "items": [...]}]}`. Custom fields, demographics, shares and nested
elements (investigator, validation) are children, as XNAT serialises them, so that a client
reads all of an experiment's metadata, scans and assessors in one request.
"""

from __future__ import annotations

import json

from xnatsim import xmldoc
from xnatsim.fields import DEMOGRAPHICS
from xnatsim.store import Store

NESTED_TYPES = {
    "investigator": "xnat:investigatorData",
    "validation": "xnat:validationData",
}


def item(xsi_type: str, data: dict, children: list[dict] | None = None) -> dict:
    return {
        "meta": {"xsi:type": xsi_type, "isHistory": False},
        "data_fields": {k: v for k, v in data.items() if v not in (None, "")},
        "children": children or [],
    }


def _json(text: str | None) -> dict:
    return json.loads(text or "{}")


def split_props(props: dict[str, str]) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """Flat elements, and nested ones grouped by their parent element."""
    flat: dict[str, str] = {}
    nested: dict[str, dict[str, str]] = {}
    for key, value in props.items():
        head, sep, tail = key.partition("/")
        if sep:
            nested.setdefault(head, {})[tail] = value
        else:
            flat[key] = value
    return flat, nested


def nested_children(owner_type: str, nested: dict[str, dict[str, str]]) -> list[dict]:
    return [
        {
            "field": name,
            "items": [item(NESTED_TYPES.get(name, f"{owner_type}_{name}"), values)],
        }
        for name, values in sorted(nested.items())
    ]


def field_children(field_type: str, custom: dict[str, str]) -> list[dict]:
    if not custom:
        return []
    items = [item(field_type, {"field": v, "name": k}) for k, v in sorted(custom.items())]
    return [{"field": "fields/field", "items": items}]


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

    def share_children(self, kind: str, entity_id: str) -> list[dict]:
        shares = self.store.shares_of(kind, entity_id)
        if not shares:
            return []
        if kind == "subject":
            items = [
                item(
                    "xnat:projectParticipant",
                    {"label": r["label"], "project": r["project"], "subject_ID": entity_id},
                )
                for r in shares
            ]
        else:
            items = [
                item("xnat:experimentData_share", {"label": r["label"], "project": r["project"]})
                for r in shares
            ]
        return [{"field": "sharing/share", "items": items}]

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
        flat, nested = split_props(_json(s["props"]))
        demo = {k: s[k] for k in ("gender", "dob", "yob", "handedness")}
        demo.update({k: flat.pop(k) for k in DEMOGRAPHICS if k in flat})
        children: list[dict] = []
        if any(demo.values()):
            children.append(
                {"field": "demographics", "items": [item("xnat:demographicData", demo)]}
            )
        children += field_children("xnat:subjectData_field", _json(s["fields"]))
        children += self.share_children("subject", s["id"])
        children += nested_children("xnat:subjectData", nested)
        res = self.resource_items("subject", s["id"])
        if res:
            children.append({"field": "resources/resource", "items": res})
        exps = self.store.query(
            "SELECT * FROM experiments WHERE subject_id = ? AND session_id = '' ORDER BY id",
            (s["id"],),
        )
        if exps:
            children.append(
                {"field": "experiments/experiment", "items": [self.experiment(e) for e in exps]}
            )
        data = {
            "ID": s["id"],
            "project": s["project"],
            "label": s["label"],
            "group": s["grp"],
            "src": s["src"],
            **flat,
            "insert_date": s["insert_date"],
            "insert_user": s["insert_user"],
        }
        return item("xnat:subjectData", data, children)

    def scan(self, sc) -> dict:
        flat, nested = split_props(_json(sc["props"]))
        children = nested_children(sc["xsi_type"], nested)
        res = self.resource_items("scan", str(sc["pk"]))
        if res:
            children.append({"field": "file", "items": res})
        data = {
            "ID": sc["scan_id"],
            "type": sc["type"],
            "UID": sc["uid"],
            "quality": sc["quality"],
            "note": sc["note"],
            "series_description": sc["series_description"],
            "frames": sc["frames"],
            **flat,
            "image_session_ID": sc["experiment_id"],
            "xnat_imagescandata_id": sc["pk"],
        }
        return item(sc["xsi_type"], data, children)

    def experiment(self, e) -> dict:
        kind = "assessor" if e["session_id"] else "experiment"
        flat, nested = split_props(_json(e["props"]))
        children = field_children("xnat:experimentData_field", _json(e["fields"]))
        children += self.share_children("experiment", e["id"])
        children += nested_children(e["xsi_type"], nested)
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
            **flat,
            "insert_date": e["insert_date"],
            "insert_user": e["insert_user"],
        }
        if e["session_id"]:
            data["imageSession_ID"] = e["session_id"]
        return item(e["xsi_type"], data, children)


def to_json(doc: dict) -> bytes:
    return json.dumps({"items": [doc]}).encode()


def to_xml(doc: dict) -> bytes:
    return xmldoc.render(doc)
