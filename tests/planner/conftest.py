"""Helpers for planner tests: inventory builders, an in-memory XNAT backend serving canned
XNAT-shaped replies for an inventory, and a minimal transfer config."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, unquote

import pytest

from planner.errors import MalformedReply, NotFound
from planner.inventory import (
    Assessor,
    Experiment,
    FileEntry,
    Inventory,
    Resource,
    Scan,
    Subject,
)

# -- builders --------------------------------------------------------------------------------


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def res(label: str, n: int = 3, size: int = 100, *, fmt: str = "", salt: str = "") -> Resource:
    files = tuple(
        FileEntry(f"{i}.dcm" if label == "DICOM" else f"f{i}.dat", size, md5(f"{label}{i}{salt}"))
        for i in range(n)
    )
    return Resource(label, fmt or label, "", tuple(sorted(files, key=lambda f: f.path)))


def scan(
    sid: str,
    uid: str | None = None,
    *,
    n: int = 3,
    extra: tuple[Resource, ...] = (),
    type_: str = "T1",
    xsi: str = "xnat:mrScanData",
) -> Scan:
    resources = {"DICOM": res("DICOM", n)} if n else {}
    resources.update({r.label: r for r in extra})
    return Scan(
        sid, type_, type_, uid if uid is not None else f"1.2.3.{sid}", xsi, "usable", resources
    )


def exp(
    label: str,
    subject: str,
    scans: tuple[Scan, ...] = (),
    *,
    eid: str = "",
    xsi: str = "xnat:mrSessionData",
    resources: tuple[Resource, ...] = (),
    assessors: tuple[Assessor, ...] = (),
    date: str = "2024-01-02",
    project: str = "",
) -> Experiment:
    return Experiment(
        label=label,
        id=eid or f"X_{label}",
        xsi_type=xsi,
        date=date,
        subject_label=subject,
        uid="",
        modality="MR" if xsi.endswith("SessionData") else "",
        is_imaging=xsi.endswith("SessionData"),
        shared_from=project,
        scans={s.id: s for s in scans},
        resources={r.label: r for r in resources},
        assessors={a.label: a for a in assessors},
    )


def subj(
    label: str,
    *exps: Experiment,
    resources: tuple[Resource, ...] = (),
    fields: dict[str, str] | None = None,
) -> Subject:
    return Subject(
        label,
        f"S_{label}",
        "",
        dict(fields or {}),
        {r.label: r for r in resources},
        {e.label: e for e in exps},
    )


def inv(
    *subjects: Subject,
    project: str = "P",
    url: str = "http://src",
    resources: tuple[Resource, ...] = (),
    digests: bool = True,
) -> Inventory:
    return Inventory(
        url,
        project,
        "1.8.11",
        "",
        digests,
        {r.label: r for r in resources},
        {s.label: s for s in subjects},
    )


@pytest.fixture
def b() -> SimpleNamespace:
    return SimpleNamespace(res=res, scan=scan, exp=exp, subj=subj, inv=inv, md5=md5)


# -- an in-memory XNAT serving an inventory ---------------------------------------------------


class FakeXnat:
    """Serves an ``Inventory`` the way XNAT's listings and object documents show it."""

    def __init__(self, inventory: Inventory, *, version: str = "1.8.11") -> None:
        self.inventory = inventory
        self.version = version
        self.calls: Counter[str] = Counter()
        self.overrides: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._res_ids: dict[int, str] = {}
        self._exps: dict[str, tuple[Subject, Experiment]] = {}
        for s in inventory.subjects.values():
            for e in s.experiments.values():
                self._exps[e.id] = (s, e)

    @property
    def url(self) -> str:
        return self.inventory.server_url

    # backend protocol ---------------------------------------------------------------------
    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        return self._answer(path, params)

    def get_json(self, path: str, params: Any = None) -> Any:
        return self._answer(path, params)

    def get_text(self, path: str, params: Any = None) -> str:
        raise NotImplementedError

    def request_text(self, *a: Any, **k: Any) -> str:
        raise NotImplementedError

    def download(self, path: str, dest: Path, *a: Any, **k: Any) -> int:
        raise NotImplementedError

    def upload(self, *a: Any, **k: Any) -> str:
        raise NotImplementedError

    # routing --------------------------------------------------------------------------------
    def _answer(self, path: str, params: Any) -> Any:
        with self._lock:
            self.calls[path] += 1
        if path in self.overrides:
            value = self.overrides[path]
            if isinstance(value, Exception):
                raise value
            return value
        inv = self.inventory
        p = f"/data/projects/{inv.project}"
        if path == "/xapi/siteConfig/buildInfo":
            return {"version": self.version}
        if path == f"{p}/resources":
            return self._resource_rows(inv.resources)
        if path == f"{p}/files":
            return self._file_rows(p, inv.resources)
        if path == f"{p}/subjects":
            return [
                {
                    "ID": s.id,
                    "label": s.label,
                    "project": s.shared_from or inv.project,
                    **s.fields,
                }
                for s in inv.subjects.values()
            ]
        if path == f"{p}/experiments":
            return [
                {
                    "ID": e.id,
                    "label": e.label,
                    "xsiType": e.xsi_type,
                    "date": e.date,
                    "subject_ID": s.id,
                    "subject_label": s.label,
                    "project": e.shared_from or inv.project,
                }
                for s, e in self._exps.values()
            ]
        parts = path.split("/")
        if path.startswith(f"{p}/subjects/"):
            s = inv.subjects.get(unquote(parts[5]))
            if s is None:
                raise NotFound(path, status=404)
            if len(parts) == 6:
                return self._subject_document(s)
            if parts[6] == "resources":
                return self._resource_rows(s.resources)
            return self._file_rows(f"/data/subjects/{s.id}", s.resources)
        if path.startswith("/data/experiments/"):
            eid = unquote(parts[3])
            if eid not in self._exps:
                raise NotFound(path, status=404)
            s, e = self._exps[eid]
            rest = parts[4:]
            base = f"/data/experiments/{eid}"
            if not rest:
                return self._document(s, e)
            if rest == ["scans", "ALL", "files"]:
                rows: list[dict[str, str]] = []
                for sc in e.scans.values():
                    rows += self._file_rows(f"{base}/scans/{quote(sc.id)}", sc.resources)
                return rows
            if rest == ["files"]:
                return self._file_rows(base, e.resources)
            if rest[0] == "assessors" and rest[2:] == ["files"]:
                a = next(a for a in e.assessors.values() if a.id == unquote(rest[1]))
                return self._file_rows(f"{base}/assessors/{a.id}", a.resources)
        raise NotFound(path, status=404)

    def _resource_rows(self, resources: dict[str, Resource]) -> list[dict[str, str]]:
        return [
            {
                "xnat_abstractresource_id": str(self._rid(r)),
                "label": r.label,
                "format": r.format,
                "content": r.content,
                "file_count": str(r.file_count),
            }
            for r in resources.values()
        ]

    def _rid(self, r: Resource) -> int:
        key = id(r)
        self._res_ids.setdefault(key, r.label)
        return 1000 + key % 100000

    def _file_rows(self, owner: str, resources: dict[str, Resource]) -> list[dict[str, str]]:
        rows = []
        for r in resources.values():
            for f in r.files:
                rows.append(
                    {
                        "Name": f.path.rsplit("/", 1)[-1],
                        "Size": str(f.size),
                        "URI": f"{owner}/resources/{self._rid(r)}/files/{quote(f.path)}",
                        "collection": r.label,
                        "digest": f.digest,
                    }
                )
        return rows

    def _subject_document(self, s: Subject) -> dict[str, Any]:
        own = {k: v for k, v in s.fields.items() if "/" not in k}
        demo = {k: v for k, v in own.items() if k not in ("group", "src")}
        children: list[dict[str, Any]] = []
        if demo:
            children.append(
                {
                    "field": "demographics",
                    "items": [{"meta": {"xsi:type": "xnat:demographicData"}, "data_fields": demo}],
                }
            )
        children += _custom_children(s.fields)
        if s.resources:
            children.append(
                {
                    "field": "resources/resource",
                    "items": [
                        {
                            "meta": {"xsi:type": "xnat:resourceCatalog"},
                            "data_fields": {
                                "label": r.label,
                                "format": r.format,
                                "content": r.content,
                            },
                        }
                        for r in s.resources.values()
                    ],
                }
            )
        data = {
            "ID": s.id,
            "label": s.label,
            "project": s.shared_from or self.inventory.project,
            **{k: v for k, v in own.items() if k in ("group", "src")},
        }
        return {
            "items": [
                {
                    "meta": {"xsi:type": "xnat:subjectData", "isHistory": False},
                    "data_fields": data,
                    "children": children,
                }
            ]
        }

    def _document(self, s: Subject, e: Experiment) -> dict[str, Any]:
        def res_items(resources: dict[str, Resource]) -> list[dict[str, Any]]:
            return [
                {
                    "meta": {"xsi:type": "xnat:resourceCatalog"},
                    "data_fields": {"label": r.label, "format": r.format, "content": r.content},
                }
                for r in resources.values()
            ]

        scans = [
            {
                "meta": {"xsi:type": sc.xsi_type},
                "data_fields": {
                    "ID": sc.id,
                    "type": sc.type,
                    "series_description": sc.series_description,
                    "UID": sc.uid,
                    "quality": sc.quality,
                    **sc.fields,
                },
                "children": [{"field": "file", "items": res_items(sc.resources)}],
            }
            for sc in e.scans.values()
        ]
        assessors = [
            {
                "meta": {"xsi:type": a.xsi_type},
                "data_fields": {
                    "ID": a.id,
                    "label": a.label,
                    "date": a.date,
                    **{k: v for k, v in a.fields.items() if "/" not in k},
                },
                "children": [
                    {"field": "out/file", "items": res_items(a.resources)},
                    *_custom_children(a.fields),
                ],
            }
            for a in e.assessors.values()
        ]
        children = _custom_children(e.fields)
        if scans:
            children.append({"field": "scans/scan", "items": scans})
        if e.resources:
            children.append({"field": "resources/resource", "items": res_items(e.resources)})
        if assessors:
            children.append({"field": "assessors/assessor", "items": assessors})
        return {
            "items": [
                {
                    "meta": {"xsi:type": e.xsi_type, "isHistory": False},
                    "data_fields": {
                        "ID": e.id,
                        "label": e.label,
                        "project": e.shared_from or self.inventory.project,
                        "subject_ID": s.id,
                        "date": e.date,
                        "UID": e.uid,
                        "modality": e.modality,
                        **{k: v for k, v in e.fields.items() if "/" not in k},
                    },
                    "children": children,
                }
            ]
        }


def _custom_children(fields: dict[str, str]) -> list[dict[str, Any]]:
    """Custom fields (``fields/NAME``) as XNAT's ``fields/field`` children."""
    items = [
        {"meta": {"xsi:type": "xnat:field"}, "data_fields": {"name": k[7:], "field": v}}
        for k, v in sorted(fields.items())
        if k.startswith("fields/")
    ]
    return [{"field": "fields/field", "items": items}] if items else []


@pytest.fixture
def fake_xnat() -> type[FakeXnat]:
    return FakeXnat


__all__ = ["FakeXnat", "MalformedReply"]


# -- real HTTP to xnatsim --------------------------------------------------------------------


class HttpBackend:
    """The read side of the backend protocol over HTTP, for tests against xnatsim servers.

    ``xnatctl.client.XnatClient`` is the real implementation; this one keeps planner tests
    independent of it and counts requests on the wire.
    """

    def __init__(self, url: str, auth: tuple[str, str] = ("admin", "admin")) -> None:
        import requests

        self._url = url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        self.wire_requests = 0

    @property
    def url(self) -> str:
        return self._url

    def _get(self, path: str, params: Any = None) -> Any:
        from planner.errors import BackendError

        self.wire_requests += 1
        reply = self.session.get(self._url + path, params={**(params or {}), "format": "json"})
        if reply.status_code == 404:
            raise NotFound(path, status=404)
        if reply.status_code >= 400:
            raise BackendError(f"{path}: {reply.status_code}", status=reply.status_code)
        try:
            return reply.json()
        except ValueError:
            raise MalformedReply(f"{path}: not JSON") from None

    def get_json(self, path: str, params: Any = None) -> Any:
        return self._get(path, params)

    def get_rows(self, path: str, params: Any = None) -> list[dict[str, str]]:
        data = self._get(path, params)
        try:
            return data["ResultSet"]["Result"]
        except (KeyError, TypeError):
            raise MalformedReply(f"{path}: not a ResultSet") from None

    def get_text(self, path: str, params: Any = None) -> str:
        raise NotImplementedError

    def request_text(self, *a: Any, **k: Any) -> str:
        raise NotImplementedError

    def download(self, *a: Any, **k: Any) -> int:
        raise NotImplementedError

    def upload(self, *a: Any, **k: Any) -> str:
        raise NotImplementedError


def seed_rest(url: str, inventory: Inventory, auth: tuple[str, str] = ("admin", "admin")) -> None:
    """Create ``inventory`` on a server with plain REST calls (PUT objects, upload files).

    File contents are ``size`` bytes derived from the path; the inventory's digests are
    ignored (the server computes its own).
    """
    import requests

    s = requests.Session()
    s.auth = auth

    def put(path: str, params: dict[str, str] | None = None, data: bytes | None = None) -> str:
        reply = s.put(url + path, params=params or {}, data=data)
        assert reply.status_code < 300, f"PUT {path}: {reply.status_code} {reply.text[:200]}"
        return reply.text.strip()

    def put_resource(owner: str, r: Resource) -> None:
        put(f"{owner}/resources/{quote(r.label)}", {"format": r.format, "content": r.content})
        for f in r.files:
            body = (f.path.encode() * (f.size // max(1, len(f.path)) + 1))[: f.size]
            put(
                f"{owner}/resources/{quote(r.label)}/files/{quote(f.path)}",
                {"inbody": "true"},
                body,
            )

    p = f"/data/projects/{inventory.project}"
    put(p)
    for r in inventory.resources.values():
        put_resource(p, r)
    for subject in inventory.subjects.values():
        sp = f"{p}/subjects/{quote(subject.label)}"
        put(sp, dict(subject.fields))
        for r in subject.resources.values():
            put_resource(sp, r)
        for e in subject.experiments.values():
            ep = f"{sp}/experiments/{quote(e.label)}"
            put(ep, {"xsiType": e.xsi_type, "date": e.date, "modality": e.modality, **e.fields})
            for r in e.resources.values():
                put_resource(ep, r)
            for sc in e.scans.values():
                scp = f"{ep}/scans/{quote(sc.id)}"
                put(
                    scp,
                    {
                        "xsiType": sc.xsi_type,
                        "type": sc.type,
                        "UID": sc.uid,
                        "series_description": sc.series_description,
                        "quality": sc.quality,
                    },
                )
                for r in sc.resources.values():
                    put_resource(scp, r)
            for a in e.assessors.values():
                ap = f"{ep}/assessors/{quote(a.label)}"
                put(ap, {"xsiType": a.xsi_type})
                for r in a.resources.values():
                    put_resource(ap, r)


@pytest.fixture
def http_backend() -> type[HttpBackend]:
    return HttpBackend


@pytest.fixture
def rest_seed() -> Any:
    return seed_rest
