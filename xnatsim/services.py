"""`/data/services/import`, `/data/services/archive` and `/data/prearchive/...`."""

from __future__ import annotations

import shutil

from xnatsim import listing
from xnatsim.archiver import Archiver
from xnatsim.auth import Auth
from xnatsim.importer import Routing, parse_upload, sanitise
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


def parse_dest(dest: str) -> tuple[str, Routing]:
    """('archive'|'prearchive'|'', routing) from a `dest` parameter."""
    if not dest:
        return "", Routing()
    parts = [p for p in dest.strip("/").split("/") if p]
    if parts and parts[0] == "data":
        parts = parts[1:]
    if not parts or parts[0] not in ("archive", "prearchive"):
        raise HTTPError(400, f"Invalid destination: {dest}")
    where, rest = parts[0], parts[1:]
    r = Routing()
    names = {"projects": "project", "subjects": "subject", "experiments": "session"}
    for i in range(0, len(rest) - 1, 2):
        attr = names.get(rest[i])
        if attr is None:
            raise HTTPError(400, f"Invalid destination: {dest}")
        setattr(r, attr, rest[i + 1])
    return where, r


class Services:
    def __init__(
        self, store: Store, auth: Auth, archiver: Archiver, *, dicom_zip_archives: bool = True
    ) -> None:
        self.store = store
        self.auth = auth
        self.archiver = archiver
        # XNAT before 1.8.10: the DICOM-zip handler ignores `dest` (and `overwrite_files`);
        # only the session importer (SI) archives directly.
        self.dicom_zip_archives = dicom_zip_archives

    def _can_write(self, user: str, project: str) -> None:
        proj = self.store.project(project)
        if proj is None:
            raise HTTPError(400, f"Project {project} does not exist")
        if not self.auth.access(user, proj).write:
            raise HTTPError(403, f"You do not have permission to add data to project {project}")

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
        where, routing = parse_dest(p.get("dest", ""))
        if handler != "SI" and not self.dicom_zip_archives:
            where = "prearchive"
        routing.project = p.get("PROJECT_ID") or p.get("project") or routing.project
        routing.subject = p.get("SUBJECT_ID") or p.get("subject") or routing.subject
        routing.session = p.get("EXPT_LABEL") or p.get("session") or routing.session
        routing.subject = sanitise(routing.subject) if routing.subject else ""
        routing.session = sanitise(routing.session) if routing.session else ""
        overwrite = (p.get("overwrite") or "none").lower()
        if overwrite not in ("none", "append", "delete"):
            raise HTTPError(400, f"Invalid overwrite value: {overwrite}")
        direct = req.flag("Direct-Archive")
        staging = self.store.new_tmp_path(".import")
        staging.mkdir()
        try:
            counter = iter(range(1 << 20))
            stored = receive(req, lambda: staging / f"upload{next(counter)}.bin")
            if not stored:
                raise HTTPError(400, "No file found in the request (multipart field 'file')")
            sessions = parse_upload(
                stored[0].path, staging / "x", routing, req.flag("Ignore-Unparsable")
            )
            if not sessions:
                raise HTTPError(400, "The upload holds no DICOM files")
            for sess in sessions:
                self._can_write(user, sess.project)
            uris = []
            for sess in sessions:
                if where == "archive" or direct:
                    try:
                        uris.append(
                            self.archiver.archive(
                                sess, user, overwrite, req.flag("overwrite_files")
                            )
                        )
                    except HTTPError as exc:
                        if exc.status != 409 or handler == "SI":
                            raise
                        # XNAT's DICOM-zip handler (1.8.10+) wraps archive conflicts in a
                        # client error: the caller sees 400, not the conflict's 409.
                        raise HTTPError(
                            400, f"unable to archive for the Prearchive session: {exc.reason}"
                        ) from exc
                else:
                    uris.append(self.archiver.prearchive(sess))
            return uri_list(uris)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _prearchive_row(self, project: str, ts: str, folder: str):
        row = self.store.one(
            "SELECT * FROM prearchive WHERE project = ? AND timestamp = ? AND folder = ?",
            (project, ts, folder),
        )
        if row is None:
            raise HTTPError(
                404, f"No prearchive session /prearchive/projects/{project}/{ts}/{folder}"
            )
        return row

    def archive(self, req: Request, user: str) -> Response:
        if req.method != "POST":
            raise HTTPError(405, "Use POST for the archive service")
        form = req.form()
        src = form.get("src", "")
        parts = [x for x in src.strip("/").split("/") if x]
        if parts and parts[0] == "data":
            parts = parts[1:]
        if len(parts) != 5 or parts[:2] != ["prearchive", "projects"]:
            raise HTTPError(400, f"Invalid src: {src}")
        row = self._prearchive_row(*parts[2:])
        self._can_write(user, row["project"])
        _, routing = parse_dest(form.get("dest", ""))
        if routing.project:
            self._can_write(user, routing.project)
        overwrite = (form.get("overwrite") or "none").lower()
        uri = self.archiver.archive_prearchived(
            row,
            user,
            overwrite,
            (form.get("overwrite_files") or "").lower() == "true" or overwrite == "delete",
            routing,
        )
        return uri_list([uri])

    def prearchive(self, req: Request, segs: list[str], user: str) -> Response:
        """`segs` are the parts after `/data/prearchive`."""
        if not segs or segs[0] != "projects":
            raise HTTPError(404, "Unknown prearchive path")
        rest = segs[1:]
        if len(rest) <= 1:
            if req.method != "GET":
                raise HTTPError(405, "Method not allowed")
            return self.list_prearchive(req, user, rest[0] if rest else None)
        if len(rest) == 3:
            row = self._prearchive_row(*rest)
            self._can_write(user, row["project"])
            if req.method == "POST" and req.params.get("action") == "commit":
                proj = self.store.project(row["project"])
                uri = self.archiver.archive_prearchived(
                    row,
                    user,
                    (req.params.get("overwrite") or "none").lower(),
                    req.flag("overwrite_files"),
                )
                if proj["prearchive_code"] in (4, 5):
                    return Response(301, uri.encode(), "text/plain", [("Location", uri)])
                return uri_list([uri])
            if req.method == "DELETE":
                with self.store.write() as c:
                    c.execute(
                        "DELETE FROM prearchive WHERE project = ? AND timestamp = ? AND folder = ?",
                        tuple(rest),
                    )
                shutil.rmtree(self.store.prearchive_dir / rest[0] / rest[1], ignore_errors=True)
                return Response(200, b"")
            if req.method == "GET":
                return listing.render(req, [self._row(row)], PREARCHIVE_COLS)
            raise HTTPError(405, "Method not allowed")
        raise HTTPError(404, "Unknown prearchive path")

    def _row(self, r) -> dict:
        proj = self.store.project(r["project"])
        code = proj["prearchive_code"] if proj else 0
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
            "status": r["status"],
            "url": f"/prearchive/projects/{r['project']}/{r['timestamp']}/{r['folder']}",
            "autoarchive": {0: "Manual", 4: "AutoArchive", 5: "AutoArchiveOverwrite"}.get(
                code, "Manual"
            ),
        }

    def list_prearchive(self, req: Request, user: str, project: str | None) -> Response:
        rows = []
        for r in self.store.query("SELECT * FROM prearchive ORDER BY timestamp"):
            if project and r["project"] != project:
                continue
            proj = self.store.project(r["project"])
            if proj is None or not self.auth.access(user, proj).write:
                continue
            rows.append(self._row(r))
        return listing.render(req, rows, PREARCHIVE_COLS)
