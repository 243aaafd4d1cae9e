"""Handlers for the archive hierarchy: projects, subjects, experiments, scans, resources,
files. Each takes a resolved Target and returns a Response or raises HTTPError."""

from __future__ import annotations

import contextlib
import json
import mimetypes
import os
import re
import shutil
from pathlib import Path

from xnatsim import catalog, listing, metadata, objects, schemas
from xnatsim import fields as F
from xnatsim.auth import GROUP_OF_ROLE, GUEST, ROLE_GROUPS, Auth
from xnatsim.downloads import stream_file, stream_targz, stream_zip, type_part
from xnatsim.resolve import Row, Target
from xnatsim.store import OWNER_CATEGORY, Exists, Store
from xnatsim.uploads import archive_kind, extract_archive, receive, safe_relpath
from xnatsim.web import HTTPError, Request, Response

PROJECT_COLS = ["ID", "secondary_ID", "name", "description", "pi_firstname", "pi_lastname", "URI"]
SUBJECT_COLS = ["ID", "project", "label", "insert_date", "insert_user", "URI"]
EXPERIMENT_COLS = ["ID", "project", "date", "xsiType", "label", "insert_date", "URI"]
SCAN_COLS = [
    "xnat_imagescandata_id",
    "ID",
    "type",
    "quality",
    "xsiType",
    "note",
    "series_description",
    "URI",
]
ASSESSOR_COLS = [
    "ID",
    "project",
    "label",
    "date",
    "xsiType",
    "insert_date",
    "session_ID",
    "session_label",
    "URI",
]
RESOURCE_COLS = [
    "xnat_abstractresource_id",
    "label",
    "element_name",
    "category",
    "cat_id",
    "cat_desc",
    "file_count",
    "file_size",
    "tags",
    "content",
    "format",
]
FILE_COLS = [
    "Name",
    "Size",
    "URI",
    "collection",
    "file_tags",
    "file_format",
    "file_content",
    "cat_ID",
    "digest",
]


# Which project groups hold each action on a data type in XNAT's default groups (owners
# everything; members all but delete; collaborators read), and what guest holds on a public
# project's data (`PermissionsServiceImpl.setDefaultAccessibility`: read and activate).
PERMISSION_ROLES = {
    "activate": ("owner", "member", "collaborator"),
    "create": ("owner", "member"),
    "delete": ("owner",),
    "edit": ("owner", "member"),
    "read": ("owner", "member", "collaborator"),
}
GUEST_ACTIONS = ("read", "activate")
SHARE_COLS = ["label", "ID", "Secondary_ID", "Name"]


def _props(row: Row) -> dict[str, str]:
    return json.loads(row["props"] or "{}")


def subject_row(s: Row, shared_label: str | None = None) -> dict[str, str]:
    """One subjects-listing row: the default columns plus every column XNAT's subject
    shortcuts offer to `columns=` (demographics, group, src...)."""
    props = _props(s)
    row = {
        "ID": s["id"],
        "project": s["project"],
        "label": shared_label or s["label"],
        "insert_date": s["insert_date"],
        "insert_user": s["insert_user"],
        "URI": f"/data/subjects/{s['id']}",
        "gender": s["gender"],
        "dob": s["dob"],
        "yob": s["yob"],
        "handedness": s["handedness"],
        "group": s["grp"],
        "src": s["src"],
    }
    for short, canon in F.SUBJECT_SHORTCUTS.items():
        row.setdefault(short, props.get(canon, ""))
    return row


def experiment_row(
    e: Row, shared_label: str | None = None, listing_project: str | None = None
) -> dict[str, str]:
    """One experiment listing row. XNAT rewrites a shared experiment's `project` (and label)
    to the listing project's, unlike a shared subject's row, which keeps its owner."""
    props = _props(e)
    row = {
        "ID": e["id"],
        "project": listing_project
        if shared_label is not None and listing_project
        else e["project"],
        "date": e["date"],
        "xsiType": e["xsi_type"],
        "label": shared_label or e["label"],
        "insert_date": e["insert_date"],
        "URI": f"/data/experiments/{e['id']}",
        "subject_ID": e["subject_id"],
        "subject_label": e["subject_label"],
        "subject_project": e["subject_project"],
        "UID": e["uid"],
        "modality": e["modality"],
        "insert_user": e["insert_user"],
    }
    for short, canon in F.EXPERIMENT_SHORTCUTS.items():
        row.setdefault(short, props.get(canon, ""))
    return row


def _group_role(project: str, group: str) -> str | None:
    """The role a project group names. `ProjectMemberResource.findGroup` takes a group's ID
    (`P_member`), its short name (`member`) or its display name (`Members`)."""
    if group in ROLE_GROUPS:
        return ROLE_GROUPS[group]
    short = group.removeprefix(f"{project}_")
    return short if short in GROUP_OF_ROLE else None


def _ok_id(text: str, status: int) -> Response:
    return Response.text(text, status)


class DataHandlers:
    def __init__(self, store: Store, auth: Auth, checksums: bool = True) -> None:
        self.store = store
        self.auth = auth
        self.docs = objects.Documents(store)
        self.sharing = metadata.Sharing(store, auth)
        self.checksums = checksums

    # -- helpers -------------------------------------------------------------------------
    def need_write(self, t: Target) -> None:
        if t.access is None or not t.access.write:
            raise HTTPError(403, "You do not have permission to modify this project's data")

    def need_delete(self, t: Target) -> None:
        """Only owners delete: XNAT's default member group creates and edits but holds no
        delete (TestSharing.testUnShared: "members can't delete")."""
        if t.access is None or not t.access.owner:
            raise HTTPError(403, "User account doesn't have permission to delete this data.")

    def object_reply(self, req: Request, doc: dict, title: str) -> Response:
        fmt = (req.params.get("format") or "html").lower()
        if fmt == "json":
            return Response(200, objects.to_json(doc), "application/json;charset=UTF-8")
        if fmt == "xml":
            return Response(200, objects.to_xml(doc), "text/xml;charset=UTF-8")
        if fmt == "html":
            fields = "".join(
                f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in doc["data_fields"].items()
            )
            return Response.html(
                f"<html><head><title>{title}</title></head><body>"
                f"<h1>{title}</h1><table>{fields}</table></body></html>"
            )
        raise HTTPError(400, f"Unsupported format: {fmt}")

    # -- listings ------------------------------------------------------------------------
    def list_projects(self, req: Request, user: str) -> Response:
        """`ProjectListResource`: `permissions=` goes to `PermissionsProjectHandler`, anything
        else to `DefaultProjectHandler` (the projects the user may read, or with
        `restrict=edit|delete` those they may edit or delete as a project: owners)."""
        if "permissions" in req.params:
            return self.list_project_permissions(req, user)
        rows = []
        restrict = req.params.get("restrict", "")
        for p in self.store.query("SELECT * FROM projects ORDER BY id"):
            acc = self.auth.access(user, p)
            if not acc.visible or (restrict in ("edit", "owner", "delete") and not acc.owner):
                continue
            rows.append(
                {
                    "ID": p["id"],
                    "secondary_ID": p["secondary_id"],
                    "name": p["name"],
                    "description": p["description"],
                    "pi_firstname": p["pi_firstname"],
                    "pi_lastname": p["pi_lastname"],
                    "URI": f"/data/projects/{p['id']}",
                    "accessibility": p["accessibility"],
                    "insert_date": p["insert_date"],
                    "insert_user": p["insert_user"],
                }
            )
        return listing.render(req, rows, PROJECT_COLS)

    def list_project_permissions(self, req: Request, user: str) -> Response:
        """`GET /data/projects?permissions=ACTION&dataType=TYPE`:
        `DefaultGroupsAndPermissionsCache.getProjectsForDatatypeAction` runs
        `SELECT ID,secondary_ID FROM xnat_projectData ...` and sorts on `secondary_id`.
        PostgreSQL folds unquoted names to lower case, so the rows carry exactly `id` and
        `secondary_id` (no URI, no totalRecords). A data admin gets every project; anyone
        else the projects where they, or guest, hold ACTION on `TYPE/project`."""
        action = req.params.get("permissions", "")
        data_type = req.params.get("dataType", "")
        if action not in PERMISSION_ROLES:
            raise HTTPError(
                500,
                "You must specify one of the following values for the permissions parameter: "
                + ", ".join(PERMISSION_ROLES),
            )
        if data_type not in {name for name, _s, _p in schemas.ELEMENTS}:
            raise HTTPError(500, f"Element not found: {data_type}")
        admin = self.auth.is_admin(user)
        rows = []
        for p in self.store.query("SELECT * FROM projects"):
            if not admin:
                # Project rights sit on xnat:projectData/ID, which the query's
                # `TYPE/project` field never matches.
                if data_type == "xnat:projectData":
                    continue
                role = self.auth.role(p["id"], user)
                public = p["accessibility"] == "public" and action in GUEST_ACTIONS
                if role not in PERMISSION_ROLES[action] and not public:
                    continue
            rows.append({"id": p["id"], "secondary_id": p["secondary_id"]})
        rows.sort(key=lambda r: r["secondary_id"])
        return listing.render_table(req, rows, ["id", "secondary_id"])

    def _readable_projects(self, user: str) -> list[str]:
        return [
            p["id"]
            for p in self.store.query("SELECT * FROM projects")
            if self.auth.access(user, p).read
        ]

    def list_subjects(self, req: Request, user: str, t: Target | None) -> Response:
        """In a project, subjects shared into it are listed too: `project` stays the owning
        project and `label` is the label they have in this one, as XNAT shows them."""
        if t is not None and t.project is not None:
            # A protected project's data is not the outsider's: XNAT's secured query finds
            # nothing, so the listing is empty rather than refused (`ProjectSubjectList`).
            projects = [t.project["id"]] if t.access is not None and t.access.read else []
        else:
            projects = self._readable_projects(user)
        rows = []
        for pid in projects:
            shared = self.store.shared_into("subject", pid) if t is not None else {}
            marks = ",".join("?" * len(shared))
            for s in self.store.query(
                f"SELECT * FROM subjects WHERE project = ? OR id IN ({marks}) ORDER BY id",
                (pid, *shared),
            ):
                rows.append(subject_row(s, shared.get(s["id"])))
        return listing.render(req, rows, SUBJECT_COLS)

    def list_experiments(self, req: Request, user: str, t: Target | None) -> Response:
        sql = (
            "SELECT e.*, s.label AS subject_label, s.project AS subject_project"
            " FROM experiments e JOIN subjects s ON s.id = e.subject_id WHERE e.session_id = ''"
        )
        params: list = []
        cols = list(EXPERIMENT_COLS)
        shared: dict[str, str] = {}
        pid = None
        if t is not None and t.project is not None:
            pid = t.project["id"]
            if t.access is None or not t.access.read:
                return listing.render(req, [], cols)  # as for subjects: nothing found
            shared = self.store.shared_into("experiment", pid)
            sql += f" AND (e.project = ? OR e.id IN ({','.join('?' * len(shared))}))"
            params += [pid, *shared]
            if t.subject is not None:
                sql += " AND e.subject_id = ?"
                params.append(t.subject["id"])
        else:
            readable = self._readable_projects(user)
            sql += f" AND e.project IN ({','.join('?' * len(readable))})"
            params += readable
            cols[-1:-1] = ["subject_ID", "subject_label"]
        # In a project's listing a subject shared in is named by its label there.
        subject_labels = self.store.shared_into("subject", pid) if pid else {}
        rows = []
        for e in self.store.query(sql + " ORDER BY e.id", params):
            row = experiment_row(e, shared.get(e["id"]), pid)
            row["subject_label"] = subject_labels.get(e["subject_id"], row["subject_label"])
            rows.append(row)
        return listing.render(req, rows, cols)

    def list_scans(self, req: Request, t: Target) -> Response:
        eid = t.experiment["id"]
        rows = [
            {
                "xnat_imagescandata_id": s["pk"],
                "ID": s["scan_id"],
                "type": s["type"],
                "quality": s["quality"],
                "xsiType": s["xsi_type"],
                "note": s["note"],
                "series_description": s["series_description"],
                "URI": f"/data/experiments/{eid}/scans/{s['scan_id']}",
                "UID": s["uid"],
                "frames": s["frames"],
                **{
                    short: _props(s).get(canon, "")
                    for short, canon in F.SCAN_SHORTCUTS.items()
                    if canon not in F.SCAN_COLUMN_KEYS
                },
            }
            for s in self.store.query(
                "SELECT * FROM scans WHERE experiment_id = ? ORDER BY pk", (eid,)
            )
        ]
        return listing.render(req, rows, SCAN_COLS)

    def list_assessors(self, req: Request, t: Target) -> Response:
        e = t.experiment
        rows = [
            {
                "ID": a["id"],
                "project": a["project"],
                "label": a["label"],
                "date": a["date"],
                "xsiType": a["xsi_type"],
                "insert_date": a["insert_date"],
                "session_ID": e["id"],
                "session_label": e["label"],
                "URI": f"/data/experiments/{e['id']}/assessors/{a['id']}",
            }
            for a in self.store.query(
                "SELECT * FROM experiments WHERE session_id = ? ORDER BY id", (e["id"],)
            )
        ]
        return listing.render(req, rows, ASSESSOR_COLS)

    def list_resources(self, req: Request, t: Target) -> Response:
        kind, key = t.owner
        rows = [
            {
                "xnat_abstractresource_id": r["id"],
                "label": r["label"],
                "element_name": "xnat:resourceCatalog",
                "category": OWNER_CATEGORY[kind],
                "cat_id": key if kind != "scan" else t.scan["scan_id"],
                "cat_desc": r["description"],
                "file_count": r["file_count"],
                "file_size": r["file_size"],
                "tags": r["tags"],
                "content": r["content"],
                "format": r["format"],
            }
            for r in self.store.resources(kind, key)
        ]
        return listing.render(req, rows, RESOURCE_COLS, fixed_columns=True)

    # -- files: which resources a files path covers, and how to name each file ----------------
    def file_resources(self, t: Target) -> list[Row]:
        store = self.store
        if t.resource is not None:
            return [t.resource]
        if t.resources is not None:
            return t.resources
        if t.kind == "files" and t.name:
            return []  # a resource that does not exist
        if t.scans is not None:
            out: list[Row] = []
            for s in t.scans:
                out += store.resources("scan", str(s["pk"]))
            return out
        kind, key = t.owner
        return store.resources(kind, key)

    def _describe(self, res: Row, cache: dict) -> tuple[str, list[str]]:
        """(URI base of the resource's owner, zip path parts before `resources/...`)."""
        key = (res["owner_kind"], res["owner_key"])
        if key in cache:
            return cache[key]
        store = self.store
        kind, okey = key
        if kind == "scan":
            sc = store.one("SELECT * FROM scans WHERE pk = ?", (int(okey),))
            e = store.one("SELECT * FROM experiments WHERE id = ?", (sc["experiment_id"],))
            out = (
                f"/data/experiments/{e['id']}/scans/{sc['scan_id']}",
                [
                    e["label"],
                    "scans",
                    f"{sc['scan_id']}-{type_part(sc['type'])}",
                    f"{sc['scan_id']}_{type_part(sc['type'])}",
                ],
            )
        elif kind == "experiment":
            e = store.one("SELECT * FROM experiments WHERE id = ?", (okey,))
            out = (f"/data/experiments/{okey}", [e["label"]])
        elif kind == "assessor":
            a = store.one("SELECT * FROM experiments WHERE id = ?", (okey,))
            e = store.one("SELECT * FROM experiments WHERE id = ?", (a["session_id"],))
            out = (
                f"/data/experiments/{e['id']}/assessors/{okey}",
                [e["label"], "assessors", a["label"]],
            )
        elif kind == "subject":
            s = store.one("SELECT * FROM subjects WHERE id = ?", (okey,))
            out = (f"/data/projects/{s['project']}/subjects/{okey}", [s["label"]])
        else:
            out = (f"/data/projects/{okey}", [okey])
        cache[key] = out
        return out

    def file_rows(self, t: Target, select=None) -> list[tuple[Row, Row, str, list[str]]]:
        """(resource, file, URI base, zip path parts) per catalogued file of the target;
        `select(paths) -> paths` narrows each resource's files."""
        out = []
        cache: dict = {}
        for res in self.file_resources(t):
            base, parts = self._describe(res, cache)
            files = self.store.files(res["id"])
            if select is not None:
                keep = set(select([f["path"] for f in files]))
                files = [f for f in files if f["path"] in keep]
            for f in files:
                out.append((res, f, base, parts))
        return out

    def list_files(self, req: Request, t: Target, select=None) -> Response:
        rows = []
        for res, f, base, _parts in self.file_rows(t, select):
            rows.append(
                {
                    "Name": f["path"].rsplit("/", 1)[-1],
                    "Size": f["size"],
                    "URI": f"{base}/resources/{res['id']}/files/{f['path']}",
                    "collection": res["label"],
                    "file_tags": "",
                    "file_format": res["format"] if res["label"] == "DICOM" else "",
                    "file_content": "",
                    "cat_ID": res["id"],
                    "digest": f["md5"] or "",
                    "path": f["path"],
                }
            )
        return listing.render(req, rows, FILE_COLS, files=True, fixed_columns=True)

    def _archive_name(self, t: Target) -> str:
        """`ArchivableItem.getArchiveDirectoryName` of the secured object: the label of the
        session (or subject), the project's ID."""
        if t.experiment is not None:
            return t.experiment["label"]
        if t.subject is not None:
            return t.subject["label"]
        return t.project["id"] if t.project is not None else "files"

    def _archive_reply(self, req: Request, entries: list, fmt: str, name: str) -> Response:
        if fmt == "zip":
            body = stream_zip(
                entries, compress=req.flag("compressed") if "compressed" in req.params else False
            )
            return Response(
                200,
                body,
                "application/zip",
                [("Content-Disposition", f'attachment; filename="{name}.zip"')],
            )
        return Response(
            200,
            stream_targz(entries),
            "application/x-gzip",
            [("Content-Disposition", f'attachment; filename="{name}.tar.gz"')],
        )

    def download(self, req: Request, t: Target, fmt: str) -> Response:
        structure = req.params.get("structure", "default")
        entries: list[tuple[str, Path]] = []
        name = ""
        for res, f, _base, parts in self.file_rows(t):
            root = self.store.resource_root(res)
            if res["owner_kind"] == "scan":
                sess, scans, dash, under = parts
                if structure == "improved":
                    prefix = [sess, scans, under, res["label"]]
                elif structure == "simplified":
                    prefix = [sess, scans, dash, res["label"]]
                else:
                    prefix = [sess, scans, dash, "resources", res["label"], "files"]
            elif structure in ("simplified", "improved"):
                prefix = (
                    [*parts, "resources", res["label"]]
                    if structure == "improved"
                    else [*parts, res["label"]]
                )
            else:
                prefix = [*parts, "resources", res["label"], "files"]
            name = name or (parts[0] if res["owner_kind"] != "project" else res["label"])
            entries.append(("/".join([*prefix, f["path"]]), root / f["path"]))
        if not entries:
            if req.flag("accept-not-found"):
                return Response(204, b"")
            raise HTTPError(404, "No matching files found.")
        return self._archive_reply(req, entries, fmt, name)

    def get_files_at(self, req: Request, t: Target, fmt: str) -> Response:
        """GET `files/{path}` (`FileList.handleSingleCatalog`/`handleMultipleCatalogs`): one
        entry comes back raw; a folder (`path/`) or `*` pattern is listed, or zipped with
        entry names relative to the resource; nothing found is 404 (204 with
        `accept-not-found`)."""
        rel = safe_relpath(t.file_path)
        folder = req.path.endswith("/")
        recursive = (req.params.get("recursive") or "").lower() != "false"

        def select(paths: list[str]) -> list[str]:
            return catalog.select_for_get(paths, rel, folder, recursive)

        rows = self.file_rows(t, select)
        exact = [row for row in rows if row[1]["path"] == rel]
        if exact:
            res = exact[0][0]
            if fmt in ("zip", "tar.gz") and not rel.lower().endswith(f".{fmt}"):
                path = self.store.resource_root(res) / rel
                name = rel.rsplit("/", 1)[-1]
                return self._archive_reply(req, [(name, path)], fmt, self._archive_name(t))
            return self.get_file(req, t)
        if not rows:
            if req.flag("accept-not-found"):
                return Response(204, b"")
            raise HTTPError(404, f"Unable to find the specified file: {rel}")
        if fmt in ("zip", "tar.gz"):
            entries = [
                (f["path"], self.store.resource_root(res) / f["path"]) for res, f, *_ in rows
            ]
            return self._archive_reply(req, entries, fmt, self._archive_name(t))
        return self.list_files(req, t, select)

    def get_file(self, req: Request, t: Target) -> Response:
        rel = safe_relpath(t.file_path)
        for res in self.file_resources(t):
            row = self.store.one(
                "SELECT * FROM files WHERE resource_id = ? AND path = ?", (res["id"], rel)
            )
            if row is None:
                continue
            path = self.store.resource_root(res) / rel
            if not path.is_file():
                raise HTTPError(404, f"File {rel} is catalogued but missing from the archive")
            ctype = mimetypes.guess_type(rel)[0] or "application/octet-stream"
            fh = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server
            wrapper = req.environ.get("wsgi.file_wrapper")
            body = wrapper(fh, 1 << 20) if wrapper else stream_file(path)
            if not wrapper:
                fh.close()
            headers = [
                ("Content-Length", str(path.stat().st_size)),
                ("Content-Disposition", f'attachment; filename="{rel.rsplit("/", 1)[-1]}"'),
            ]
            return Response(200, body, ctype, headers)
        raise HTTPError(404, f"Unable to find the specified file: {rel}")

    def delete_files(self, req: Request, t: Target) -> Response:
        """DELETE `files[/{path}]` (`FileList.handleDelete`): every entry the path prefixes
        (`CatalogUtils.findCatEntriesWithinPath`) leaves the catalog, and its file leaves the
        disk unless `removeFiles=false`; nothing matched is 404 "No matched files"."""
        self.need_write(t)
        if t.scans is not None:
            # XNATTemplate: a write needs exactly one scan.
            raise HTTPError(404, "Unable to identify scan")
        res = t.resource
        if res is None and not t.name:
            # FileList works on the first resource of the owner when none is named.
            found = self.file_resources(t)
            res = found[0] if found else None
        if res is None:
            raise HTTPError(404, "Unable to find the specified resource.")
        rel = safe_relpath(t.file_path)
        if req.path.endswith("/") and rel:
            rel += "/"
        remove = (req.params.get("removeFiles") or "").lower() != "false"
        root = self.store.resource_root(res)
        with self.store.write() as c:
            paths = [
                r["path"]
                for r in c.execute("SELECT path FROM files WHERE resource_id = ?", (res["id"],))
            ]
            gone = catalog.select_for_delete(paths, rel)
            if not gone:
                if req.flag("accept-not-found"):
                    return Response(204, b"")
                raise HTTPError(404, "No matched files")
            c.executemany(
                "DELETE FROM files WHERE resource_id = ? AND path = ?",
                [(res["id"], p) for p in gone],
            )
        if remove:
            for p in gone:
                (root / p).unlink(missing_ok=True)
                _prune_empty_dirs((root / p).parent, root)
        return Response(200, b"")

    # -- uploads -------------------------------------------------------------------------
    def upload(self, req: Request, t: Target, user: str) -> Response:
        self.need_write(t)
        store = self.store
        owner = t.owner
        if owner is None:
            raise HTTPError(400, "Files need a resource")
        if t.resource is None:
            label = t.name or "NULL"
            fmt = "DICOM" if label == "DICOM" else req.params.get("format", "")
            if fmt.lower() in ("zip", "tar.gz", "tgz", "tar"):
                fmt = ""
            rid = store.create_resource(
                owner[0],
                owner[1],
                label,
                fmt,
                req.params.get("content", ""),
                req.params.get("tags", ""),
            )
            t.resource = store.one("SELECT * FROM resources WHERE id = ?", (rid,))
        res = t.resource
        staging = store.new_tmp_path(".up")
        staging.mkdir()
        try:
            counter = iter(range(1 << 30))
            stored = receive(req, lambda: staging / f"part{next(counter):05d}")
            if not stored:
                raise HTTPError(
                    400,
                    f"You tried to {req.method} to this service, but didn't provide any data.",
                )
            target = t.file_path.lstrip("/")
            items: list[tuple[str, Path, int, str]] = []
            for n, s in enumerate(stored):
                # CatalogUtils.storeCatalogEntry: the upload's own name decides whether
                # `extract=true` unpacks it (a raw body is named by the URL path, else sniffed).
                name = s.name or target.rsplit("/", 1)[-1]
                if req.flag("extract") and (
                    catalog.is_compressed_name(name) or (not name and archive_kind(s.path))
                ):
                    items += extract_archive(s.path, staging / f"x{n}")
                    continue
                rel = target or s.name
                if not rel:
                    raise HTTPError(
                        400, "No file name given: put it in the URL or the multipart part"
                    )
                items.append((safe_relpath(rel), s.path, s.size, s.md5))
            return self._commit_files(req, res, items)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _commit_files(self, req: Request, res: Row, items: list) -> Response:
        """`CatalogUtils.storeCatalogEntry`: a file already on disk at the target path is a
        duplicate (left alone, named in `{"duplicates": [...]}` with 200) unless
        `overwrite=true`; every other file is written and catalogued, new paths appended to
        the resource's existing files."""
        store = self.store
        overwrite = req.flag("overwrite")
        root = store.resource_root(res)
        duplicates: list[str] = []
        with store.write() as c:
            for rel, tmp, size, md5 in items:
                dest = root / rel
                if dest.exists() and not overwrite:
                    duplicates.append(rel)
                    continue
                if dest.is_dir():
                    raise HTTPError(409, f"{rel} is a folder of this resource")
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
                # An entry that exists is updated in place (`CatalogUtils.updateExistingCatEntry`):
                # a DICOM entry keeps its SOPInstanceUID; a new one is a plain `cat:entry`.
                c.execute(
                    "INSERT INTO files (resource_id, path, size, md5) VALUES (?,?,?,?)"
                    " ON CONFLICT(resource_id, path) DO UPDATE SET size = excluded.size,"
                    " md5 = excluded.md5",
                    (res["id"], rel, size, md5 if self.checksums else None),
                )
        if duplicates:
            return Response.json({"duplicates": duplicates})
        return Response(200, b"")

    # -- object GET/PUT/DELETE -----------------------------------------------------------
    def project(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        store = self.store
        if t.extra:
            return self.project_extra(req, t, user)
        if t.project is None:
            # ProjectResource: a project the user may not see is "not found": GET 404,
            # DELETE 400 (handleDelete), PUT tries to create it and meets the existing one.
            if m in ("PUT", "POST"):
                # uiAllowNonAdminProjectCreation defaults to true: any user but guest
                # creates projects and becomes their owner.
                if user == GUEST:
                    raise HTTPError(403, "The guest user may not create projects")
                if t.hidden:
                    raise HTTPError(
                        409, f"Requested new project conflicts with existing projects: {t.name}"
                    )
                pid = t.name
                if not re.fullmatch(r"[A-Za-z0-9_-]+", pid):
                    raise HTTPError(400, f"Invalid project ID: {pid}")
                wanted = (
                    "name",
                    "description",
                    "secondary_ID",
                    "pi_firstname",
                    "pi_lastname",
                    "accessibility",
                )
                fields = {k: v for k, v in req.params.items() if k in wanted}
                with contextlib.suppress(Exists):  # made by a concurrent request
                    store.create_project(pid, user, **fields)
                return Response.text(pid, 200)
            if m == "DELETE":
                raise HTTPError(400, f"Unable to find the specified project: {t.name}")
            raise HTTPError(404, f"Unable to find the specified project: {t.name}")
        p = t.project
        if m == "GET":
            return self.object_reply(req, self.docs.project(p), p["id"])
        if m in ("PUT", "POST"):
            if not t.access.owner:
                raise HTTPError(403, "Only project owners may change the project")
            fields = {
                k: v
                for k, v in req.params.items()
                if k in ("name", "description", "secondary_ID", "pi_firstname", "pi_lastname")
            }
            store.update_project(
                p["id"],
                **{("secondary_id" if k == "secondary_ID" else k): v for k, v in fields.items()},
            )
            return Response.text(p["id"], 200)
        if m == "DELETE":
            if not t.access.owner:
                raise HTTPError(403, "Only project owners may delete the project")
            store.delete_project(p["id"], req.flag("removeFiles"))
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def project_extra(self, req: Request, t: Target, user: str) -> Response:
        p = t.project
        what, rest = t.extra[0], t.extra[1:]
        m = req.method
        if what == "accessibility":
            if not rest and m == "GET":
                return Response.text(p["accessibility"])
            if len(rest) == 1 and m in ("PUT", "POST"):
                if not t.access.owner:
                    raise HTTPError(403, "Only project owners may change accessibility")
                if rest[0] not in ("public", "protected", "private"):
                    raise HTTPError(400, f"Invalid accessibility: {rest[0]}")
                self.store.update_project(p["id"], accessibility=rest[0])
                return Response.text(rest[0])
        elif what == "prearchive_code":
            if not rest and m == "GET":
                return Response.text(str(p["prearchive_code"]))
            if len(rest) == 1 and m in ("PUT", "POST"):
                if not t.access.owner:
                    raise HTTPError(403, "Only project owners may change the prearchive code")
                if rest[0] not in ("0", "4", "5"):
                    raise HTTPError(400, f"Invalid prearchive code: {rest[0]}")
                self.store.update_project(p["id"], prearchive_code=int(rest[0]))
                return Response.text(rest[0])
        elif what == "users":
            if not rest and m == "GET":
                if not t.access.read:
                    raise HTTPError(403, "You do not have access to this project")
                # ProjectUserListResource runs plain SQL: `SELECT g.id AS "GROUP_ID",
                # displayname,login,firstname,lastname,email ... ORDER BY g.id DESC`, so the
                # names are as written there (GROUP_ID quoted, the rest lower case).
                rows = [
                    {
                        "GROUP_ID": f"{p['id']}_{r['role']}",
                        "displayname": GROUP_OF_ROLE[r["role"]],
                        "login": r["username"],
                        "firstname": r["firstname"],
                        "lastname": r["lastname"],
                        "email": r["email"],
                        "role": r["role"],
                    }
                    for r in self.store.query(
                        "SELECT r.*, u.firstname, u.lastname, u.email FROM roles r"
                        " JOIN users u ON u.username = r.username WHERE r.project = ?"
                        " ORDER BY r.role DESC, r.username",
                        (p["id"],),
                    )
                ]
                cols = ["GROUP_ID", "displayname", "login", "firstname", "lastname", "email"]
                return listing.render(req, rows, cols)
            role = _group_role(p["id"], rest[0]) if len(rest) == 2 else None
            if role is not None and m in ("PUT", "POST", "DELETE"):
                if not t.access.owner:
                    raise HTTPError(403, "Only project owners may manage users")
                for name in rest[1].split(","):
                    if self.auth.user(name) is None:
                        raise HTTPError(404, f"Unknown user: {name}")
                    self.auth.set_role(p["id"], name, None if m == "DELETE" else role)
                return Response(200, b"")
        raise HTTPError(404 if m == "GET" else 405, "Unsupported project operation")

    def share(self, req: Request, t: Target, user: str) -> Response:
        return self.sharing.handle(req, t, user)

    def shares(self, req: Request, t: Target, user: str) -> Response:
        """`GET .../subjects/S/projects` and `.../experiments/E/projects`: the owning project
        first, labelled with the entity's own label, then every project it is shared into
        with its label there (`SecureResource.representProjectsForArchivableItem`,
        `SubjAssessmentResource.represent`). A hand-built table: no totalRecords."""
        if req.method != "GET":
            raise HTTPError(405, "Method not allowed")
        kind, entity = metadata.shared_entity(t)

        def row(label: str, project: Row) -> dict[str, str]:
            return {
                "label": label,
                "ID": project["id"],
                "Secondary_ID": project["secondary_id"],
                "Name": project["name"],
            }

        rows = [row(entity["label"], self.store.project(entity["project"]))]
        for share in self.store.shares_of(kind, entity["id"]):
            rows.append(row(share["label"], self.store.project(share["project"])))
        return listing.render_table(req, rows, SHARE_COLS)

    def _shared_here(self, t: Target, entity: Row) -> bool:
        """Addressed through a project it is shared into (DELETE there only unshares)."""
        return not t.direct and t.project is not None and entity["project"] != t.project["id"]

    def subject(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        store = self.store
        if t.subject is None:
            if m in ("PUT", "POST") and t.project is not None:
                self.need_write(t)
                doc = metadata.read_document(req, "subject")
                self._check_subject_doc(doc, None)
                sid = store.create_subject(
                    t.project["id"], t.name, user, metadata.merged_fields(req, "subject", doc)
                )
                return _ok_id(sid, 201)
            raise HTTPError(404, "Unable to find the specified subject.")
        s = t.subject
        if m == "GET":
            return self.object_reply(req, self.docs.subject(s), s["label"])
        if m in ("PUT", "POST"):
            self.need_write(t)
            doc = metadata.read_document(req, "subject")
            self._check_subject_doc(doc, s)
            changes = metadata.deletions(s, doc, req)
            changes.update(metadata.merged_fields(req, "subject", doc))
            store.update_subject(s["id"], changes)
            return _ok_id(s["id"], 200)
        if m == "DELETE":
            if self._shared_here(t, s):
                self.sharing.unshare(user, "subject", s, t.project["id"])
                return Response(200, b"")
            self.need_delete(t)
            store.delete_subject(s, req.flag("removeFiles"))
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def post_subject(self, req: Request, t: Target, user: str) -> Response:
        """`POST /data/projects/P/subjects` with a subject document (`ProjectSubjectList
        .handlePost`): the label comes from the document; creating needs write rights."""
        self.need_write(t)
        doc = metadata.read_document(req, "subject")
        if doc is None or not doc.attrs.get("label"):
            raise HTTPError(400, "POST a subject document with a label")
        self._check_subject_doc(doc, None)
        if self.store.subject_by(t.project["id"], doc.attrs["label"]) is not None:
            raise HTTPError(409, f"Subject {doc.attrs['label']} already exists")
        sid = self.store.create_subject(
            t.project["id"],
            doc.attrs["label"],
            user,
            metadata.merged_fields(req, "subject", doc),
        )
        return _ok_id(sid, 201)

    def _check_subject_doc(self, doc, existing: Row | None) -> None:
        if doc is None:
            return
        if doc.xsi_type != "xnat:subjectData":
            raise HTTPError(400, f"Only xnat:Subject documents can be PUT here, not {doc.xsi_type}")
        metadata.check_document_id(doc, self.store, "subjects", existing["id"] if existing else "")

    def _experiment_type(self, req: Request, doc, existing: Row | None) -> str:
        """The xsiType a PUT asks for (query parameter or document), checked."""
        wanted = req.params.get("xsiType", "")
        if doc is not None:
            if wanted and wanted != doc.xsi_type:
                raise HTTPError(
                    400, f"xsiType {wanted} does not match the document's {doc.xsi_type}"
                )
            wanted = doc.xsi_type
        if wanted:
            metadata.check_xsi_type(wanted)
        if existing is not None and wanted and wanted != existing["xsi_type"]:
            raise HTTPError(
                409, f"Experiment {existing['label']} exists with xsiType {existing['xsi_type']}"
            )
        return wanted

    def experiment(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        store = self.store
        if t.experiment is None:
            if m not in ("PUT", "POST") or t.project is None:
                raise HTTPError(404, "Unable to find the specified experiment.")
            # A new experiment belongs to the project in the URL, even under a subject
            # shared into it, so that project's rights decide.
            if not self.auth.access(user, t.project).write:
                raise HTTPError(403, "You do not have permission to modify this project's data")
            doc = metadata.read_document(req, "experiment")
            xsi = self._experiment_type(req, doc, None)
            if not xsi:
                raise HTTPError(417, "Unable to create an experiment without an xsiType")
            metadata.check_document_id(doc, store, "experiments", "")
            if t.subject is not None:
                sid = t.subject["id"]
            else:
                label = t.extra[0] if t.extra else req.params.get("subject_ID", "")
                if not label:
                    raise HTTPError(400, "A new experiment needs a subject")
                subj = store.subject_by(t.project["id"], label)
                sid = subj["id"] if subj else store.create_subject(t.project["id"], label, user, {})
            try:
                eid = store.create_experiment(
                    t.project["id"],
                    sid,
                    t.name,
                    xsi,
                    user,
                    metadata.merged_fields(req, "experiment", doc),
                )
            except Exists as exc:
                return _ok_id(exc.key, 200)
            metadata.apply_scans(store, req, eid, doc)
            return _ok_id(eid, 201)
        e = t.experiment
        if m == "GET":
            return self.object_reply(req, self.docs.experiment(e), e["label"])
        if m in ("PUT", "POST"):
            self.need_write(t)
            return self._update_experiment(req, e)
        if m == "DELETE":
            if self._shared_here(t, e):
                self.sharing.unshare(user, "experiment", e, t.project["id"])
                return Response(200, b"")
            self.need_delete(t)
            store.delete_experiment(e, req.flag("removeFiles"))
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def _update_experiment(self, req: Request, e: Row) -> Response:
        doc = metadata.read_document(req, "experiment")
        self._experiment_type(req, doc, e)
        metadata.check_document_id(doc, self.store, "experiments", e["id"])
        changes = metadata.deletions(e, doc, req)
        changes.update(metadata.merged_fields(req, "experiment", doc))
        with self.store.write():
            self.store.update_experiment(e["id"], changes)
            metadata.apply_scans(self.store, req, e["id"], doc)
        return _ok_id(e["id"], 200)

    def assessor(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        store = self.store
        if t.assessor is None:
            if m not in ("PUT", "POST"):
                raise HTTPError(404, "Unable to find the specified assessor.")
            # A new assessor belongs to the project in the URL, even on a session shared
            # into it, so that project's rights decide (TestSharing.testImageAssessorCreation).
            home = t.project if t.project is not None and not t.direct else None
            if home is None:
                self.need_write(t)
            elif not self.auth.access(user, home).write:
                raise HTTPError(403, "You do not have permission to modify this project's data")
            doc = metadata.read_document(req, "experiment")
            xsi = self._experiment_type(req, doc, None)
            if not xsi:
                raise HTTPError(417, "Unable to create an assessor without an xsiType")
            metadata.check_document_id(doc, store, "experiments", "")
            e = t.experiment
            try:
                aid = store.create_experiment(
                    home["id"] if home is not None else e["project"],
                    e["subject_id"],
                    t.name,
                    xsi,
                    user,
                    metadata.merged_fields(req, "experiment", doc),
                    session_id=e["id"],
                )
            except Exists:
                raise HTTPError(409, f"An experiment labelled {t.name} already exists") from None
            return _ok_id(aid, 201)
        a = t.assessor
        if m == "GET":
            return self.object_reply(req, self.docs.experiment(a), a["label"])
        if m in ("PUT", "POST"):
            self.need_write(t)
            return self._update_experiment(req, a)
        if m == "DELETE":
            self.need_delete(t)
            store.delete_experiment(a, req.flag("removeFiles"))
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def scan(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        store = self.store
        sc = t.scan
        if m == "GET":
            if sc is None:
                raise HTTPError(404, "Unable to find the specified scan.")
            return self.object_reply(req, self.docs.scan(sc), sc["scan_id"])
        if m in ("PUT", "POST"):
            self.need_write(t)
            xsi = req.params.get("xsiType", "")
            if sc is not None and xsi and xsi != sc["xsi_type"]:
                raise HTTPError(409, f"Scan {sc['scan_id']} exists with xsiType {sc['xsi_type']}")
            if sc is None and not xsi:
                xsi = "xnat:otherDicomScanData"
            store.upsert_scan(
                t.experiment["id"],
                t.name if sc is None else sc["scan_id"],
                xsi or sc["xsi_type"],
                F.from_params("scan", _params_for_type(req.params, xsi or sc["xsi_type"])),
            )
            return Response(200, b"")
        if m == "DELETE":
            if sc is None:
                raise HTTPError(404, "Unable to find the specified scan.")
            self.need_delete(t)
            store.delete_scan(sc, req.flag("removeFiles"))
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def resource(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        res = t.resource
        if m == "GET":
            if res is None:
                raise HTTPError(404, "Unable to find the specified resource.")
            fmt = (req.params.get("format") or "").lower()
            if fmt in ("zip", "tar.gz"):
                return self.download(req, t, "zip" if fmt == "zip" else "tar.gz")
            doc = next(
                d
                for d in self.docs.resource_items(res["owner_kind"], res["owner_key"])
                if d["data_fields"]["xnat_abstractresource_id"] == res["id"]
            )
            return self.object_reply(req, doc, res["label"])
        if m in ("PUT", "POST"):
            self.need_write(t)
            if res is not None:
                raise HTTPError(409, "Specified resource already exists.")
            kind, key = t.owner
            self.store.create_resource(
                kind,
                key,
                t.name,
                req.params.get("format", ""),
                req.params.get("content", ""),
                req.params.get("tags", ""),
                req.params.get("description", ""),
            )
            return Response(200, b"")
        if m == "DELETE":
            if res is None:
                raise HTTPError(404, "Unable to find the specified resource.")
            self.need_write(t)
            # CatalogResource.handleDelete: `deleteWithBackup` moves the resource's folder
            # out of the archive whatever `removeFiles` says.
            self.store.delete_resource(res, True)
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def files(self, req: Request, t: Target, user: str) -> Response:
        m = req.method
        if m == "GET":
            fmt = (req.params.get("format") or "").lower()
            fmt = "tar.gz" if fmt == "tgz" else fmt
            if t.resource is None and t.name:
                raise HTTPError(404, "Unable to find the specified resource.")
            if t.file_path:
                return self.get_files_at(req, t, fmt)
            if fmt in ("zip", "tar.gz"):
                return self.download(req, t, fmt)
            return self.list_files(req, t)
        if m in ("PUT", "POST"):
            if t.scans is not None:
                raise HTTPError(400, "Upload into one scan's resource")
            return self.upload(req, t, user)
        if m == "DELETE":
            return self.delete_files(req, t)
        raise HTTPError(405, "Method not allowed")

    # -- entry point ---------------------------------------------------------------------
    def dispatch(self, req: Request, t: Target, user: str) -> Response:
        kind = t.kind
        m = req.method
        if kind == "subjects" and m == "POST" and t.project is not None:
            return self.post_subject(req, t, user)
        if (
            kind in ("projects", "subjects", "experiments", "scans", "assessors", "resources")
            and m != "GET"
            and not (kind == "scans" and t.scans)
        ):
            raise HTTPError(405, f"{m} is not allowed on a {kind} listing")
        if kind == "projects":
            return self.list_projects(req, user)
        if kind == "subjects":
            return self.list_subjects(req, user, t if t.project else None)
        if kind == "experiments":
            return self.list_experiments(req, user, t if t.project else None)
        if kind == "scans":
            if t.scans is not None:
                raise HTTPError(404, "Use .../scans/ALL/files to list files of several scans")
            return self.list_scans(req, t)
        if kind == "assessors":
            return self.list_assessors(req, t)
        if kind == "resources":
            return self.list_resources(req, t)
        handler = getattr(self, kind)
        return handler(req, t, user)


SCAN_BASE_TYPES = ("xnat:imageScanData",)


def _params_for_type(params: dict[str, str], xsi_type: str) -> dict[str, str]:
    """Drop `ns:type/field` parameters of another data type: XNAT builds the item as that
    type and the save silently keeps the scan as it was (TestScans
    `testImplicitScanTypeChangeValidation`, XNAT-7176)."""
    out = {}
    for key, value in params.items():
        m = F.XML_PATH.match(key)
        if m is not None and f"{m.group(1)}:{m.group(2)}" not in (xsi_type, *SCAN_BASE_TYPES):
            continue
        out[key] = value
    return out


def _prune_empty_dirs(folder: Path, root: Path) -> None:
    """Remove folders left empty by a file delete, up to (not including) the resource root."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def dumps(data) -> bytes:
    return json.dumps(data).encode()
