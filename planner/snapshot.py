"""Read one project on one XNAT server into an ``Inventory``.

Only bulk listings are used, so the request count is a fixed function of the number of
subjects and experiments and never grows with scans, resources or files: a handful of calls
per project, per subject its JSON document (fields, resource folders) and one file listing
when it has resources, and per experiment one JSON document (fields, scans, assessors), one
file listing for all its scans, one for its session resources (when it has any) and one per
session assessor with resources. XML documents are read only by the apply steps that carry
fields, never by a snapshot. Experiments are read in parallel by a bounded thread pool.

All knowledge of XNAT's reply shapes for reading lives here; malformed replies raise
``MalformedReply`` naming the path that gave them.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from planner import fields as F
from planner import restpaths as rest
from planner.backend import Params, Row, XnatBackend
from planner.errors import BackendError, BadRequest, MalformedReply, NotFound, not_xnat_because
from planner.inventory import (
    Assessor,
    Experiment,
    FileEntry,
    Inventory,
    Resource,
    Scan,
    Subject,
)
from planner.invstore import InventoryStore, StoreError, default_store_dir
from planner.rows import as_rows

ProgressCallback = Callable[[int, int], None]

# Reads in flight at once. Each one mostly waits on the network and the server, so latency
# adds about (requests x latency / workers) to a snapshot: at 8, 50 ms a request took a
# 200-experiment snapshot from 1.4 s to 3.6 s. 24 stays well inside what a default XNAT
# serves at once (Tomcat's 200 threads; 40 database connections, ``DatabaseConfig``).
# Clients keep a connection pool at least this large, or connections are thrown away.
SNAPSHOT_WORKERS = 24

BUILD_INFO = rest.BUILD_INFO
SUBJECT_COLUMNS = "ID,label,project"
EXPERIMENT_COLUMNS = "ID,label,xsiType,date,subject_ID,subject_label,project"
# Which fields count is ``planner.fields``'s; the documents read here already carry them.
SUBJECT_FIELDS = F.SUBJECT_FIELDS
EXPERIMENT_FIELDS = F.SESSION_FIELDS

# ``.../{owner}/resources/{id or label}/files/{relative path}`` in a file listing's URI.
_FILE_URI = re.compile(r"^(?P<owner>.*?)/resources/(?P<resource>[^/]+)/files/(?P<path>.+)$")
_SCAN_OWNER = re.compile(r"/scans/(?P<scan>[^/]+)$")


def is_imaging_type(xsi_type: str) -> bool:
    """Imaging sessions are the ``...SessionData`` types; anything else is a subject assessor."""
    return xsi_type.endswith("SessionData")


# -- request counting ----------------------------------------------------------------------


@dataclass
class CountingBackend:
    """Wraps a backend and counts the reads made through it (thread-safe)."""

    inner: XnatBackend
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        return self.inner.url

    def _tick(self) -> None:
        with self._lock:
            self.count += 1

    def get_rows(self, path: str, params: Params | None = None) -> list[Row]:
        self._tick()
        return self.inner.get_rows(path, params)

    def get_json(self, path: str, params: Params | None = None) -> Any:
        self._tick()
        return self.inner.get_json(path, params)

    def get_text(self, path: str, params: Params | None = None) -> str:
        self._tick()
        return self.inner.get_text(path, params)

    def request_text(self, method: str, path: str, params: Params | None = None, **kw: Any) -> str:
        self._tick()
        return self.inner.request_text(method, path, params, **kw)

    def download(self, path: str, dest: Path, params: Params | None = None, **kw: Any) -> int:
        self._tick()
        return self.inner.download(path, dest, params, **kw)

    def upload(
        self, method: str, path: str, src: Path, params: Params | None = None, **kw: Any
    ) -> str:
        self._tick()
        return self.inner.upload(method, path, src, params, **kw)


# -- reply parsing ---------------------------------------------------------------------------


def _rows(backend: XnatBackend, path: str, params: Params | None = None) -> list[Row]:
    rows = backend.get_rows(path, params)
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise MalformedReply(f"{path}: expected a list of rows, got {type(rows).__name__}")
    return as_rows(rows)


def _rows_or_empty(backend: XnatBackend, path: str, params: Params | None = None) -> list[Row]:
    """A listing that XNAT answers with 404 when there is nothing to list."""
    try:
        return _rows(backend, path, params)
    except NotFound:
        return []


def _need(row: Mapping[str, Any], key: str, path: str) -> str:
    value = row.get(key)
    if value is None:
        raise MalformedReply(f"{path}: a row lacks the {key!r} column")
    return str(value)


def _size(value: Any, path: str) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        raise MalformedReply(f"{path}: file size {value!r} is not a number") from None


@dataclass
class _FileRow:
    owner: str  # the URI part before /resources/
    scan: str  # scan ID when the owner is a scan, else ""
    collection: str
    entry: FileEntry


def _file_rows(backend: XnatBackend, path: str) -> list[_FileRow]:
    out: list[_FileRow] = []
    for row in _rows_or_empty(backend, path):
        uri = _need(row, "URI", path)
        m = _FILE_URI.match(uri)
        if m is None:
            raise MalformedReply(f"{path}: file URI {uri!r} does not name a resource file")
        owner = m.group("owner")
        scan_match = _SCAN_OWNER.search(owner)
        scan = unquote(scan_match.group("scan")) if scan_match else ""
        collection = str(row.get("collection") or "") or unquote(m.group("resource"))
        entry = FileEntry(
            path=unquote(m.group("path")),
            size=_size(row.get("Size"), path),
            digest=str(row.get("digest") or "").lower(),
        )
        out.append(_FileRow(owner, scan, collection, entry))
    return out


@dataclass
class _ResourceMeta:
    label: str
    format: str = ""
    content: str = ""


def _build_resources(metas: list[_ResourceMeta], files: list[_FileRow]) -> dict[str, Resource]:
    grouped: dict[str, list[FileEntry]] = {m.label: [] for m in metas}
    for f in files:
        grouped.setdefault(f.collection, []).append(f.entry)
    by_label = {m.label: m for m in metas}
    out: dict[str, Resource] = {}
    for label in sorted(grouped):
        meta = by_label.get(label, _ResourceMeta(label))
        entries = tuple(sorted(grouped[label], key=lambda e: e.path))
        out[label] = Resource(label=label, format=meta.format, content=meta.content, files=entries)
    return out


def _resource_metas_from_rows(rows: list[Row], path: str) -> list[_ResourceMeta]:
    return [
        _ResourceMeta(
            _need(r, "label", path), str(r.get("format") or ""), str(r.get("content") or "")
        )
        for r in rows
    ]


def _items(doc: Any, path: str) -> list[dict[str, Any]]:
    try:
        items = doc["items"]
        if not isinstance(items, list) or not items:
            raise TypeError("no items")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("data_fields"), dict):
                raise TypeError("an item without data_fields")
        return items
    except (KeyError, TypeError) as exc:
        raise MalformedReply(f"{path}: not an XNAT object document ({exc})") from None


def _children(item: dict[str, Any], suffix: str) -> list[dict[str, Any]]:
    """Child items whose field is ``suffix`` or ends with ``/suffix``."""
    out: list[dict[str, Any]] = []
    for child in item.get("children") or ():
        name = str(child.get("field", ""))
        if name == suffix or name.endswith("/" + suffix):
            out.extend(i for i in child.get("items") or () if isinstance(i, dict))
    return out


def _xsi(item: dict[str, Any]) -> str:
    meta = item.get("meta") or {}
    return str(meta.get("xsi:type") or item.get("data_fields", {}).get("xsiType") or "")


def _metas_from_items(items: list[dict[str, Any]]) -> list[_ResourceMeta]:
    out = []
    for it in items:
        df = it.get("data_fields") or {}
        label = str(df.get("label") or "")
        if label:
            out.append(
                _ResourceMeta(label, str(df.get("format") or ""), str(df.get("content") or ""))
            )
    return out


def _text(value: Any) -> str:
    return "" if value is None else str(value)


# -- public API ------------------------------------------------------------------------------


def build_info(backend: XnatBackend) -> dict[str, Any]:
    """XNAT's build information (open on every XNAT since 1.7); ``NotXnat`` when the server
    does not answer it as an XNAT would, so a wrong URL is named as such."""
    try:
        info = backend.get_json(BUILD_INFO)
    except (NotFound, BadRequest, MalformedReply) as exc:
        raise not_xnat_because(backend.url, f"GET {BUILD_INFO}", exc) from None
    if not isinstance(info, dict):
        raise not_xnat_because(backend.url, f"GET {BUILD_INFO}")
    return info


def server_version(backend: XnatBackend) -> str:
    """XNAT's version from ``/xapi/siteConfig/buildInfo``, or ``""`` when it does not say."""
    try:
        return _text(build_info(backend).get("version"))
    except BackendError:
        return ""


def snapshot_experiment(
    backend: XnatBackend,
    project: str,
    subject_label: str,
    experiment_row_or_id: Mapping[str, str] | str,
) -> Experiment:
    """Read one experiment (an imaging session or a subject assessor) in full.

    Takes either an accession ID or a row of the project's experiment listing (whose label and
    project columns say how the experiment is known in ``project``).
    """
    row: Mapping[str, str] = (
        {"ID": experiment_row_or_id}
        if isinstance(experiment_row_or_id, str)
        else experiment_row_or_id
    )
    exp_id = _need(row, "ID", rest.project_experiments(project))
    base = rest.experiment_by_id(exp_id)
    item = _items(backend.get_json(base), base)[0]
    df = item["data_fields"]
    xsi_type = _text(row.get("xsiType")) or _xsi(item)
    # The owner comes from the experiment's own document: XNAT's experiment listing names the
    # listing project in the `project` column even for experiments shared into it.
    owner_project = _text(df.get("project")) or _text(row.get("project"))
    label = _text(row.get("label")) or _shared_label(item, project) or _text(df.get("label"))
    if not label:
        raise MalformedReply(f"{base}: the experiment has no label")
    imaging = is_imaging_type(xsi_type)
    scans = _read_scans(backend, exp_id, item) if imaging else {}
    session_metas = _metas_from_items(_children(item, "resource"))
    resources: dict[str, Resource] = {}
    if session_metas:
        files = [
            f
            for f in _file_rows(backend, rest.owner_files(base))
            if "/scans/" not in f.owner and "/assessors/" not in f.owner
        ]
        resources = _build_resources(session_metas, files)
    assessors = _read_assessors(backend, exp_id, item)
    fields = F.experiment_fields(item, imaging=imaging)
    return Experiment(
        label=label,
        id=exp_id,
        xsi_type=xsi_type,
        date=_text(row.get("date")) or _text(df.get("date")),
        subject_label=subject_label,
        uid=_text(df.get("UID")),
        modality=_text(df.get("modality")),
        is_imaging=imaging,
        shared_from=owner_project if owner_project and owner_project != project else "",
        fields=fields,
        scans=scans,
        resources=resources,
        assessors=assessors,
    )


def _read_scans(backend: XnatBackend, exp_id: str, item: dict[str, Any]) -> dict[str, Scan]:
    """A session's scans from its document, with all their files from one listing."""
    base = rest.experiment_by_id(exp_id)
    scans_meta: dict[str, tuple[dict[str, Any], list[_ResourceMeta]]] = {}
    for s in _children(item, "scan"):
        sid = _text((s.get("data_fields") or {}).get("ID"))
        if not sid:
            raise MalformedReply(f"{base}: a scan has no ID")
        scans_meta[sid] = (s, _metas_from_items(_children(s, "file")))
    scan_files: dict[str, list[_FileRow]] = {}
    if scans_meta:
        for f in _file_rows(backend, rest.owner_files(rest.all_scans(exp_id))):
            scan_files.setdefault(f.scan, []).append(f)
    scans: dict[str, Scan] = {}
    for sid in sorted(scans_meta):
        s, metas = scans_meta[sid]
        sdf = s["data_fields"]
        scans[sid] = Scan(
            id=sid,
            type=_text(sdf.get("type")),
            series_description=_text(sdf.get("series_description")),
            uid=_text(sdf.get("UID")),
            xsi_type=_xsi(s),
            quality=_text(sdf.get("quality")),
            resources=_build_resources(metas, scan_files.get(sid, [])),
            fields=F.scan_extra_fields(s),
        )
    return scans


def _read_assessors(backend: XnatBackend, exp_id: str, item: dict[str, Any]) -> dict[str, Assessor]:
    """A session's assessors, each with one file listing when it has resources."""
    base = rest.experiment_by_id(exp_id)
    assessors: dict[str, Assessor] = {}
    for a in _children(item, "assessor"):
        adf = a.get("data_fields") or {}
        a_id, a_label = _text(adf.get("ID")), _text(adf.get("label")) or _text(adf.get("ID"))
        if not a_label:
            raise MalformedReply(f"{base}: an assessor has neither label nor ID")
        metas = _metas_from_items(_children(a, "file") + _children(a, "resource"))
        a_resources: dict[str, Resource] = {}
        if metas and a_id:
            a_path = rest.owner_files(rest.assessor_by_id(exp_id, a_id))
            a_resources = _build_resources(metas, _file_rows(backend, a_path))
        elif metas:
            a_resources = _build_resources(metas, [])
        assessors[a_label] = Assessor(
            label=a_label,
            id=a_id,
            xsi_type=_xsi(a),
            date=_text(adf.get("date")),
            resources=a_resources,
            fields=F.assessor_fields(a),
        )
    return dict(sorted(assessors.items()))


def _shared_label(item: dict[str, Any], project: str) -> str:
    for share in _children(item, "share"):
        sdf = share.get("data_fields") or {}
        if _text(sdf.get("project")) == project:
            return _text(sdf.get("label"))
    return ""


def take_snapshot(
    backend: XnatBackend,
    project: str,
    *,
    workers: int = SNAPSHOT_WORKERS,
    on_progress: ProgressCallback | None = None,
    store: InventoryStore | None = None,
    store_dir: Path | None = None,
) -> Inventory:
    """Inventory ``project`` on ``backend``, written to ``store`` (by default a new temporary
    one in ``store_dir``: see ``planner.invstore``) as each subject and experiment is read, so
    memory holds the reads in flight, never the project; ``on_progress(done, total)`` counts
    subjects and experiments as they are read (called from the calling thread)."""
    counted = CountingBackend(backend)
    p = rest.project(project)
    version = server_version(counted)

    res_path = rest.resources(p)
    project_metas = _resource_metas_from_rows(_rows_or_empty(counted, res_path), res_path)
    project_resources: dict[str, Resource] = {}
    if project_metas:
        project_resources = _build_resources(
            project_metas, _file_rows(counted, rest.owner_files(p))
        )
    work = _listing(counted, backend, project, version)
    try:
        store = store if store is not None else InventoryStore(directory=store_dir)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(store_dir or default_store_dir(), exc) from exc
    try:
        _read_all(counted, project, work, store, workers, on_progress)
        return store.finish(
            server_url=backend.url,
            project=project,
            server_version=version,
            taken_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            resources=project_resources,
            requests=counted.count,
        )
    except sqlite3.Error as exc:  # writing the store: a full disk, a file removed meanwhile
        store.close()
        raise StoreError(store.path, exc) from exc
    except BaseException:
        store.close()
        raise


def _listing(counted: XnatBackend, backend: XnatBackend, project: str, version: str) -> list[_Job]:
    """The project's subjects and experiments, as the reads to make."""
    subj_path = rest.project_subjects(project)
    try:
        subject_rows = _rows(counted, subj_path, {"columns": SUBJECT_COLUMNS})
    except NotFound:
        if not version:  # no project, or no XNAT at all? Asked only on this error path.
            build_info(backend)
        raise
    exp_path = rest.project_experiments(project)
    experiment_rows = _rows(counted, exp_path, {"columns": EXPERIMENT_COLUMNS})
    label_by_id: dict[str, str] = {}
    for r in subject_rows:
        label_by_id[_need(r, "ID", subj_path)] = _need(r, "label", subj_path)
    work: list[_Job] = [("", r) for r in subject_rows]
    for r in experiment_rows:
        _need(r, "ID", exp_path)
        # The subject's label in this project, through the project's own subject listing: a
        # subject shared in may carry another label in its owning project.
        subject_label = label_by_id.get(_text(r.get("subject_ID")), "") or _text(
            r.get("subject_label")
        )
        if not subject_label:
            raise MalformedReply(f"{exp_path}: experiment {r['ID']} names no known subject")
        work.append((subject_label, r))
    return work


# A read to make: ("", subject row) or (subject label, experiment row).
_Job = tuple[str, Row]


def _read_all(
    backend: XnatBackend,
    project: str,
    work: list[_Job],
    store: InventoryStore,
    workers: int,
    on_progress: ProgressCallback | None,
) -> None:
    """Read every subject and experiment concurrently; this thread writes each to the store
    as its read completes (the store has one writer)."""
    total, done = len(work), 0

    def run(job: _Job) -> Subject | tuple[str, Experiment]:
        subject_label, row = job
        if not subject_label:
            return _read_subject(backend, project, row)
        return subject_label, snapshot_experiment(backend, project, subject_label, row)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run, job) for job in work]
        try:
            for future in as_completed(futures):
                result = future.result()
                if isinstance(result, Subject):
                    store.put_subject(result)
                else:
                    store.put_experiment(*result)
                done += 1
                if on_progress is not None:
                    on_progress(done, total)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _read_subject(backend: XnatBackend, project: str, row: Row) -> Subject:
    """One subject: its document (fields and resource folders), and its files if any."""
    label = str(row["label"])
    owner = _text(row.get("project"))
    base = rest.subject(project, label)
    item = _items(backend.get_json(base), base)[0]
    metas = _metas_from_items(_children(item, "resource"))
    resources = (
        _build_resources(metas, _file_rows(backend, rest.owner_files(base))) if metas else {}
    )
    return Subject(
        label=label,
        id=_text(row.get("ID")),
        shared_from=owner if owner and owner != project else "",
        fields=F.subject_fields(item),
        resources=resources,
    )
