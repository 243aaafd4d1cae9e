"""`/data/services/import`, `/data/services/archive` and `/data/prearchive/...`."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

from xnatsim import listing
from xnatsim.archiver import (
    AUTOARCHIVE_NAMES,
    UNASSIGNED,
    ArchiveOptions,
    Archiver,
    import_flags,
)
from xnatsim.auth import Auth
from xnatsim.importer import (
    ImportOptions,
    Routing,
    StagedSession,
    archived_scans,
    parse_upload,
    sanitise,
)
from xnatsim.store import Store
from xnatsim.uploads import receive
from xnatsim.web import HTTPError, Request, Response

PREARCHIVE_COLS = [
    "project",
    "timestamp",
    "lastmod",
    "uploaded",
    "scan_date",
    "subject",
    "folderName",
    "name",
    "tag",
    "status",
    "url",
    "autoarchive",
]
ZIP_TYPES = (
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/x-tgz",
    "application/x-gtar",
)


def uri_list(uris: list[str], status: int = 200) -> Response:
    return Response(status, "".join(u + "\r\n" for u in uris).encode(), "text/uri-list")


@dataclass
class Destination:
    """A parsed `dest`: where the data goes, its labels, and a prearchive timestamp/folder."""

    where: str = ""  # 'archive', 'prearchive' or '' (none given)
    routing: Routing = field(default_factory=Routing)
    timestamp: str = ""
    folder: str = ""


def parse_dest(dest: str) -> Destination:
    """`UriParserUtils.parseURI` for the forms `/archive[/projects/P[/subjects/S
    [/experiments/E]]]` and `/prearchive[/projects/P[/TIMESTAMP/FOLDER]]`."""
    if not dest:
        return Destination()
    parts = [p for p in dest.strip("/").split("/") if p]
    if parts and parts[0] == "data":
        parts = parts[1:]
    if not parts or parts[0] not in ("archive", "prearchive"):
        raise HTTPError(400, "Parameter dest format error")
    out = Destination(parts[0])
    rest = parts[1:]
    if out.where == "prearchive":
        if rest and (rest[0] != "projects" or len(rest) not in (2, 4)):
            raise HTTPError(400, "Parameter dest format error")
        if rest:
            out.routing.project = rest[1]
        if len(rest) == 4:
            out.timestamp, out.folder = rest[2], rest[3]
        return out
    names = {"projects": "project", "subjects": "subject", "experiments": "session"}
    if len(rest) % 2:
        raise HTTPError(400, "Parameter dest format error")
    for i in range(0, len(rest), 2):
        attr = names.get(rest[i])
        if attr is None:
            raise HTTPError(400, "Parameter dest format error")
        setattr(out.routing, attr, rest[i + 1])
    return out


def prearchive_parts(src: str) -> tuple[str, str, str]:
    parts = [x for x in src.strip("/").split("/") if x]
    if parts and parts[0] == "data":
        parts = parts[1:]
    if len(parts) != 5 or parts[:2] != ["prearchive", "projects"]:
        raise HTTPError(400, f"Invalid src: {src}")
    return parts[2], parts[3], parts[4]


class Services:
    def __init__(
        self,
        store: Store,
        auth: Auth,
        archiver: Archiver,
        *,
        dicom_zip_archives: bool = True,
        settings: dict | None = None,
    ) -> None:
        self.store = store
        self.settings = settings if settings is not None else {}
        self.auth = auth
        self.archiver = archiver
        # XNAT 1.8.10 onwards: DICOM-zip goes through the prearchive and honours `dest`.
        # Before: it ignores `dest` (and `overwrite_files`); only the session importer (SI)
        # archives directly.
        self.dicom_zip_archives = dicom_zip_archives

    def _can_write(self, user: str, project: str) -> None:
        if project == UNASSIGNED:
            return
        proj = self.store.project(project)
        if proj is None:
            raise HTTPError(400, f"Project {project} does not exist")
        if not self.auth.access(user, proj).write:
            raise HTTPError(403, f"You do not have permission to add data to project {project}")

    # -- /data/services/import -----------------------------------------------------------
    def import_(self, req: Request, user: str) -> Response:
        if req.method != "POST":
            raise HTTPError(405, "Use POST for the import service")
        p = req.params
        handler = p.get("import-handler") or p.get("inbody-handler") or "DICOM-zip"
        if handler not in ("DICOM-zip", "gradual-DICOM", "SI"):
            raise HTTPError(400, f"Unsupported import handler: {handler}")
        ctype = req.content_type.split(";")[0].strip().lower()
        if not ctype.startswith("multipart/") and ctype not in ZIP_TYPES:
            raise HTTPError(
                400,
                "Unsupported format: send a zip as multipart field 'file' "
                "or as the body with Content-Type application/zip",
            )
        dest = parse_dest(p.get("dest", ""))
        routing = dest.routing
        routing.project = p.get("PROJECT_ID") or p.get("project") or routing.project
        routing.subject = p.get("SUBJECT_ID") or p.get("subject") or routing.subject
        routing.session = p.get("EXPT_LABEL") or p.get("session") or routing.session
        routing.subject = sanitise(routing.subject) if routing.subject else ""
        routing.session = sanitise(routing.session) if routing.session else ""
        staging = self.store.new_tmp_path(".import")
        staging.mkdir()
        try:
            counter = iter(range(1 << 20))
            stored = receive(req, lambda: staging / f"upload{next(counter)}.bin")
            if not stored:
                raise HTTPError(400, "No file found in the request (multipart field 'file')")
            options = ImportOptions(
                ignore_unparsable=req.flag("Ignore-Unparsable") or p.get("action") == "commit",
                anonymize=self._anonymizes(handler, dest.where, p.get("prevent_anon")),
                rename=(p.get("rename") or "").strip().lower() == "true",
                session_importer=handler == "SI",
                pet_mr=str(self.settings.get("pet_mr", "petmr")),
                existing_scans=archived_scans(self.store),
            )
            try:
                sessions = parse_upload(stored[0].path, staging / "x", routing, options=options)
            except HTTPError as exc:
                if not exc.reason.startswith("No project") or handler == "SI":
                    raise
                # No project anywhere: GradualDicomImporter files the data under Unassigned.
                routing.project = UNASSIGNED
                sessions = parse_upload(stored[0].path, staging / "y", routing, options=options)
            if not sessions:
                raise HTTPError(400, "The upload holds no DICOM files")
            for sess in sessions:
                self._can_write(user, sess.project)
            if handler == "SI" or not self.dicom_zip_archives:
                return uri_list(self._legacy_import(req, handler, dest, sessions, user))
            return uri_list(self._dicom_zip(req, dest, sessions, user))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _anonymizes(self, handler: str, where: str, prevent_anon: str | None) -> bool:
        """Whether the site script runs on this import (see `xnatsim.anonymize`)."""
        if not self.settings.get("anonymize", True):
            return False
        if handler == "SI":  # SessionImporter: skipped only for a prearchive destination
            return where != "prearchive"
        return (prevent_anon or "").strip().lower() != "true"  # Boolean.valueOf

    def _legacy_import(self, req: Request, handler: str, dest: Destination, sessions, user: str):
        """The session importer, and DICOM-zip before 1.8.10 (which ignores `dest`)."""
        overwrite = (req.params.get("overwrite") or "none").lower()
        if overwrite not in ("none", "append", "delete"):
            raise HTTPError(400, f"Invalid overwrite value: {overwrite}")
        archive = handler == "SI" and (dest.where == "archive" or req.flag("Direct-Archive"))
        uris = []
        for sess in sessions:
            if archive:
                uris.append(
                    self.archiver.archive(sess, user, overwrite, req.flag("overwrite_files"))
                )
            else:
                code = self.archiver.project_code(sess.project)
                uris.append(self.archiver.receive(sess, code, dest.timestamp, dest.folder))
        return uris

    def _dicom_zip(self, req: Request, dest: Destination, sessions, user: str) -> list[str]:
        """`DicomZipImporter.call` (1.8.10+): every file goes to a prearchive session; with a
        `dest` each session is built, and with an archive `dest` archived at once."""
        merge, override = import_flags(req.params.get("overwrite"))
        uris: list[str] = []
        for sess in sessions:
            code = self.archiver.project_code(sess.project)
            uri = self.archiver.receive(sess, code, dest.timestamp, dest.folder)
            if uri not in uris:
                uris.append(uri)
        commit = bool(dest.where) or req.params.get("action") == "commit"
        # GradualDicomImporter.isAutoArchive: an archive `dest` sets AA; AA or auto-archive
        # may also be sent directly.
        auto = (
            dest.where == "archive"
            or req.flag("Direct-Archive")
            or (dest.where != "prearchive" and (req.flag("AA") or req.flag("auto-archive")))
        )
        if not commit and not auto:
            return uris
        archived: list[str] = []
        for uri in uris:
            try:
                row = self.archiver.row(*prearchive_parts(uri))
                if row is None:
                    raise HTTPError(404, f"No prearchive session {uri}")
                row = self.archiver.build((row["project"], row["timestamp"], row["folder"]))
                if not auto:
                    continue
                opts = ArchiveOptions(
                    override=override,
                    # archiveSession: allowSessionMerge, or a session whose code is not Manual
                    merge=merge or row["autoarchive"] not in (None, 0),
                    overwrite_files=self.archiver.overwrite_files_for(
                        row, req.flag("overwrite_files")
                    ),
                )
                archived.append(self.archiver.archive_prearchived(row, user, opts))
            except HTTPError as exc:
                raise HTTPError(400, "unable to archive for the Prearchive session") from exc
        return archived if auto else uris

    # -- /data/services/archive ----------------------------------------------------------
    def archive(self, req: Request, user: str) -> Response:
        """`services.Archiver`: `overwrite=append|delete` sets overrideExceptions; merging
        is always allowed. An auto-archive session (or `redirect=true`) answers 303."""
        if req.method != "POST":
            raise HTTPError(405, "Use POST for the archive service")
        form = req.form()
        row = self._prearchive_row(*prearchive_parts(form.get("src", "")))
        self._can_write(user, row["project"])
        dest = parse_dest(form.get("dest", ""))
        routing = dest.routing
        for key, attr in (
            ("project", "project"),
            ("subject", "subject"),
            ("session", "session"),
            ("xnat:mrSessionData/project", "project"),
            ("xnat:mrSessionData/subject_id", "subject"),
            ("xnat:mrSessionData/label", "session"),
        ):
            if form.get(key):
                setattr(routing, attr, form[key])
        if routing.project:
            self._can_write(user, routing.project)
        overwrite = (form.get("overwrite") or "").lower()
        opts = ArchiveOptions(
            override=overwrite in ("append", "delete"),
            merge=True,
            overwrite_files=self.archiver.overwrite_files_for(
                row, (form.get("overwrite_files") or "").lower() == "true"
            ),
        )
        uri = self.archiver.archive_prearchived(row, user, opts, routing)
        if (form.get("redirect") or "").lower() == "true" or self.archiver.is_auto_archive(
            row, True if dest.where == "archive" else None
        ):
            return Response(303, b"", "text/plain", [("Location", uri)])
        return uri_list([uri])

    # -- /data/services/prearchive/{move,delete} -----------------------------------------
    def prearchive_service(self, req: Request, segs: list[str], user: str) -> Response:
        if req.method != "POST" or len(segs) != 1 or segs[0] not in ("move", "delete"):
            raise HTTPError(404, "Unknown prearchive service")
        form = req.form()
        sources = [s for s in (form.get("src") or "").split(",") if s]
        if not sources:
            raise HTTPError(400, "No src given")
        rows = []
        for src in sources:
            row = self._prearchive_row(*prearchive_parts(src))
            self._can_modify(user, row["project"])
            key = (row["project"], row["timestamp"], row["folder"])
            if segs[0] == "delete":
                self.archiver.delete(key)
                rows.append({**self._row(row), "status": "DELETING"})
            else:
                new_project = form.get("newProject") or ""
                if not new_project:
                    raise HTTPError(400, f"No project specified to move session {key[2]}")
                self._can_modify(user, new_project)
                self.archiver.move(key, new_project)
                moved = self.archiver.row(new_project, key[1], key[2])
                rows.append(self._row(moved))
        return listing.render(req, rows, PREARCHIVE_COLS)

    def _can_modify(self, user: str, project: str) -> None:
        """`PrearcUtils.canModify`: Unassigned is for site admins; else project writers."""
        if project == UNASSIGNED:
            if not self.auth.is_admin(user):
                raise HTTPError(403, "Only site administrators may manage Unassigned sessions")
            return
        proj = self.store.project(project)
        if proj is None or not self.auth.access(user, proj).write:
            raise HTTPError(403, "Unable to modify session data for destination project.")

    # -- /data/prearchive ----------------------------------------------------------------
    def _prearchive_row(self, project: str, ts: str, folder: str):
        row = self.archiver.row(project, ts, folder)
        if row is None:
            raise HTTPError(
                404, f"No prearchive session /prearchive/projects/{project}/{ts}/{folder}"
            )
        return row

    def prearchive(self, req: Request, segs: list[str], user: str) -> Response:
        """`segs` are the parts after `/data/prearchive`."""
        if not segs or segs[0] != "projects":
            raise HTTPError(404, "Unknown prearchive path")
        rest = segs[1:]
        if len(rest) <= 1:
            if req.method != "GET":
                raise HTTPError(405, "Method not allowed")
            return self.list_prearchive(req, user, rest[0] if rest else None)
        if len(rest) < 3:
            raise HTTPError(404, "Unknown prearchive path")
        row = self._prearchive_row(*rest[:3])
        self._can_modify(user, row["project"])
        key = (row["project"], row["timestamp"], row["folder"])
        if len(rest) > 3:
            return self._prearchive_content(req, row, rest[3:])
        if req.method == "POST":
            return self._session_action(req, row, user)
        if req.method == "DELETE":
            self.archiver.delete(key)
            return Response(200, b"")
        if req.method == "GET":
            return listing.render(req, [self._row(row)], PREARCHIVE_COLS)
        raise HTTPError(405, "Method not allowed")

    def _session_action(self, req: Request, row, user: str) -> Response:
        """`PrearcSessionResource.handlePost`: build, move or commit."""
        key = (row["project"], row["timestamp"], row["folder"])
        action = req.params.get("action") or ""
        if action == "build":
            self.archiver.build(key)
            return uri_list(["/data" + f"/prearchive/projects/{key[0]}/{key[1]}/{key[2]}"])
        if action == "move":
            new_project = req.params.get("newProject") or ""
            self._can_modify(user, new_project)
            uri = self.archiver.move(key, new_project)
            return uri_list([uri], 301)
        if action == "commit":
            row = self.archiver.build(key)
            if row["autoarchive"] is None and row["project"] != UNASSIGNED:
                with self.store.write() as c:
                    c.execute(
                        "UPDATE prearchive SET autoarchive = ? WHERE project = ? AND"
                        " timestamp = ? AND folder = ?",
                        (self.archiver.project_code(row["project"]), *key),
                    )
                row = self.archiver.row(*key)
            asked = req.params.get("AA") or req.params.get("autoArchive")
            auto = self.archiver.is_auto_archive(
                row, None if asked is None else asked.lower() == "true"
            )
            if not auto:
                return uri_list(["/data" + f"/prearchive/projects/{key[0]}/{key[1]}/{key[2]}"])
            opts = ArchiveOptions(
                merge=True,
                overwrite_files=self.archiver.overwrite_files_for(row, req.flag("overwrite_files")),
            )
            uri = self.archiver.archive_prearchived(row, user, opts)
            return Response(301, uri.encode(), "text/plain", [("Location", uri)])
        raise HTTPError(
            400, f"User {user} requested an unsupported action on prearchive session: {action}"
        )

    def _prearchive_content(self, req: Request, row, rest: list[str]) -> Response:
        """`.../scans`, `.../scans/{id}/resources`, `.../scans/{id}/resources/{R}/files[/f]`."""
        if req.method != "GET":
            raise HTTPError(405, "Method not allowed")
        sess = StagedSession.from_json(row["manifest"])
        base = f"/data/prearchive/projects/{row['project']}/{row['timestamp']}/{row['folder']}"
        if rest[0] != "scans":
            raise HTTPError(404, "Unknown prearchive path")
        if len(rest) == 1:
            rows = [
                {
                    "ID": s.scan_id,
                    "xsiType": s.xsi_type,
                    "type": s.type,
                    "series_description": s.type,
                    "UID": s.uid,
                    "URI": f"{base}/scans/{s.scan_id}",
                }
                for s in sess.scans.values()
            ]
            return listing.render(
                req, rows, ["ID", "xsiType", "type", "series_description", "UID", "URI"]
            )
        scan = sess.scans.get(rest[1])
        if scan is None:
            raise HTTPError(404, f"No scan {rest[1]} in this prearchive session")
        if len(rest) == 3 and rest[2] == "resources":
            size = sum(f.size for f in scan.files)
            rows = [
                {
                    "label": "DICOM",
                    "format": "DICOM",
                    "file_count": str(len(scan.files)),
                    "file_size": str(size),
                }
            ]
            return listing.render(req, rows, ["label", "format", "file_count", "file_size"])
        if len(rest) < 5 or rest[2] != "resources" or rest[3] != "DICOM" or rest[4] != "files":
            raise HTTPError(404, "Unknown prearchive path")
        files = sorted(scan.files, key=lambda f: f.name)
        if len(rest) == 5:
            rows = [
                {
                    "Name": f.name,
                    "Size": str(f.size),
                    "URI": f"{base}/scans/{scan.scan_id}/resources/DICOM/files/{f.name}",
                    "digest": f.md5,
                }
                for f in files
            ]
            return listing.render(req, rows, ["Name", "Size", "URI", "digest"])
        name = "/".join(rest[5:])
        match = next((f for f in files if f.name == name), None)
        if match is None:
            raise HTTPError(404, f"No file {name}")
        return Response(
            200, (self.store.data_dir / match.path).read_bytes(), "application/octet-stream"
        )

    def _row(self, r) -> dict:
        return {
            "project": r["project"],
            "timestamp": r["timestamp"],
            "lastmod": r["lastmod"],
            "uploaded": r["uploaded"],
            "scan_date": r["scan_date"],
            "subject": r["subject"],
            "folderName": r["folder"],
            "name": r["label"],
            "tag": r["tag"],
            "status": r["status"].lstrip("_"),
            "url": f"/prearchive/projects/{r['project']}/{r['timestamp']}/{r['folder']}",
            "autoarchive": AUTOARCHIVE_NAMES.get(r["autoarchive"], ""),
        }

    def list_prearchive(self, req: Request, user: str, project: str | None) -> Response:
        rows = []
        admin = self.auth.is_admin(user)
        for r in self.store.query("SELECT * FROM prearchive ORDER BY timestamp"):
            if project and r["project"] != project:
                continue
            if r["project"] == UNASSIGNED:
                if not admin:
                    continue
            else:
                proj = self.store.project(r["project"])
                if proj is None or not self.auth.access(user, proj).write:
                    continue
            rows.append(self._row(r))
        return listing.render(req, rows, PREARCHIVE_COLS)
