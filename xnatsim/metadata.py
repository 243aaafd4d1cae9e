"""Metadata writes: fields from query parameters or an XML document, and sharing.

XNAT reads a PUT's fields from its query parameters and, when the body is an XML document
(`Content-Type: text/xml` / `application/xml`, or `inbody=true`), from the document too;
parameters win over the document. `allowDataDeletion` is false unless the client sends
`true`: then scans and custom fields missing from the document are removed.
"""

from __future__ import annotations

import json
import re

from xnatsim import fields as F
from xnatsim import xmldoc
from xnatsim.auth import Auth
from xnatsim.resolve import Row, Target
from xnatsim.store import Exists, Store
from xnatsim.web import HTTPError, Request, Response

XML_TYPES = ("text/xml", "application/xml")
LABEL = re.compile(r"^[A-Za-z0-9_.\- ]+$")
NOT_EXPERIMENTS = {"xnat:subjectData", "xnat:projectData"}


def xml_body(req: Request) -> bytes | None:
    """The XML document a PUT carries, or None when its body is not one."""
    ctype = req.content_type.split(";", 1)[0].strip().lower()
    if ctype not in XML_TYPES and not req.flag("inbody"):
        return None
    if req.content_length > xmldoc.MAX_DOCUMENT:
        raise HTTPError(413, "The XML document is too large")
    data = b"".join(req.iter_body())
    return data if data.strip() else None


def read_document(req: Request, kind: str) -> xmldoc.Document | None:
    body = xml_body(req)
    if body is None:
        return None
    try:
        return xmldoc.parse(body, kind)
    except xmldoc.DocumentError as exc:
        raise HTTPError(400, str(exc)) from None


def check_xsi_type(xsi: str) -> None:
    if not F.XSI_TYPE.match(xsi) or xsi in NOT_EXPERIMENTS or xsi.endswith("ScanData"):
        raise HTTPError(400, f"Invalid experiment xsiType: {xsi}")


def check_document_id(doc: xmldoc.Document | None, store: Store, table: str, own: str) -> None:
    """A document's ID may name the object it is PUT to, or nothing on this server."""
    if doc is None or not doc.attrs.get("ID"):
        return
    given = doc.attrs["ID"]
    if given == own:
        return
    if store.one(f"SELECT 1 FROM {table} WHERE id = ?", (given,)) is not None:
        raise HTTPError(
            409,
            f"The document's ID {given} belongs to another object on this server; "
            "remove the ID attribute or use the ID of the object at this URL",
        )


def merged_fields(req: Request, kind: str, doc: xmldoc.Document | None) -> dict[str, str]:
    out = dict(doc.fields) if doc else {}
    out.update(F.from_params(kind, req.params))
    return out


def deletions(row: Row | None, doc: xmldoc.Document | None, req: Request) -> dict[str, str]:
    """Custom fields to clear because a whole document without them was PUT with
    allowDataDeletion=true."""
    if row is None or doc is None or not req.flag("allowDataDeletion"):
        return {}
    have = json.loads(row["fields"] or "{}")
    return {f"fields/{k}": "" for k in have if f"fields/{k}" not in doc.fields}


def apply_scans(store: Store, req: Request, eid: str, doc: xmldoc.Document | None) -> None:
    if doc is None or doc.scans is None:
        return
    for sd in doc.scans:
        old = store.scan(eid, sd.scan_id)
        if old is not None and old["xsi_type"] != sd.xsi_type:
            raise HTTPError(409, f"Scan {sd.scan_id} exists with xsiType {old['xsi_type']}")
    for sd in doc.scans:
        store.upsert_scan(eid, sd.scan_id, sd.xsi_type, sd.fields)
    if req.flag("allowDataDeletion"):
        keep = {sd.scan_id for sd in doc.scans}
        for sc in store.query("SELECT * FROM scans WHERE experiment_id = ?", (eid,)):
            if sc["scan_id"] not in keep:
                store.delete_scan(sc, remove_files=False)


# -- sharing -------------------------------------------------------------------------------
def shared_entity(t: Target) -> tuple[str, Row]:
    if t.assessor is not None:
        return "experiment", t.assessor
    if t.experiment is not None:
        return "experiment", t.experiment
    if t.subject is not None:
        return "subject", t.subject
    raise HTTPError(404, "Nothing to share at this path")


class Sharing:
    def __init__(self, store: Store, auth: Auth) -> None:
        self.store = store
        self.auth = auth

    def handle(self, req: Request, t: Target, user: str) -> Response:
        kind, entity = shared_entity(t)
        dest = self.store.project(t.name)
        if dest is None or not self.auth.access(user, dest).visible:
            raise HTTPError(404, f"Unable to identify project: {t.name}")
        m = req.method
        if m == "GET":
            label = self.store.shared_label(kind, entity["id"], dest["id"])
            if label is None and entity["project"] != dest["id"]:
                raise HTTPError(404, f"{entity['label']} is not shared into {dest['id']}")
            return Response.text(label or entity["label"])
        if m in ("PUT", "POST"):
            return self.share(req, t, user, kind, entity, dest)
        if m == "DELETE":
            self.unshare(user, kind, entity, dest["id"])
            return Response(200, b"")
        raise HTTPError(405, "Method not allowed")

    def share(
        self, req: Request, t: Target, user: str, kind: str, entity: Row, dest: Row
    ) -> Response:
        """`SubjectResource`/`SubjAssessmentResource.handlePut` with `projects/{P}`: sharing
        into the owning project, or again into the same one without a new label, is 409
        "Already assigned"; a new label relabels the share; creating the share needs create
        rights in the destination. A session may be shared without its subject (TestSharing
        .testUnShared shares MR1 after unsharing its subject), and an assessor without its
        session (`ExptAssessmentResource.handlePut` checks only the assessor's own rights and
        the destination's create rights; TestExptAssessmentResources
        .testExptAssessmentXmlCrud expects 200)."""
        store = self.store
        if entity["project"] == dest["id"]:
            raise HTTPError(409, f"Already assigned to project:{dest['id']}")
        current = store.shared_label(kind, entity["id"], dest["id"])
        wanted = req.params.get("label")
        if current is not None and (not wanted or wanted == current):
            raise HTTPError(409, f"Already assigned to project:{dest['id']}")
        if not self.auth.access(user, dest).write:
            raise HTTPError(
                403,
                f"Specified user account has insufficient create privileges for {kind}s "
                f"in the {dest['id']} project.",
            )
        label = wanted or entity["label"]
        if not LABEL.match(label):
            raise HTTPError(400, f"Invalid label: {label}")
        try:
            if current is not None:
                store.unshare(kind, entity["id"], dest["id"])
            store.share(kind, entity["id"], dest["id"], label)
        except Exists:
            if current is not None:
                store.share(kind, entity["id"], dest["id"], current)
            raise HTTPError(409, f"Label already in use:{label}") from None
        return Response(200, b"")

    def unshare(self, user: str, kind: str, entity: Row, project: str) -> None:
        """Remove a share, as `BaseXnatSubjectdata.delete` does for a project that is not the
        subject's own: the user needs delete rights in that project (its owners), and the
        subject's experiments shared there are unshared with it, unless one of them belongs
        to that project (deleting it would not be an unshare). Every refusal is a 403."""
        store = self.store
        noun = "Subject" if kind == "subject" else "Experiment"
        if store.shared_label(kind, entity["id"], project) is None:
            raise HTTPError(403, f"{noun} is not assigned to specified project {project}")
        if not self.auth.access(user, store.project(project)).owner:
            raise HTTPError(403, f"User cannot delete {kind}s for project {project}")
        if kind == "subject":
            owned = store.one(
                "SELECT id FROM experiments WHERE subject_id = ? AND project = ?",
                (entity["id"], project),
            )
            if owned is not None:
                raise HTTPError(
                    403,
                    "This operation would delete an experiment (rather than un-share).  "
                    f"Please modify experiment ({owned['id']}).",
                )
            for e in store.query(
                "SELECT e.id FROM shares sh JOIN experiments e ON e.id = sh.entity_id"
                " WHERE sh.kind = 'experiment' AND sh.project = ? AND e.subject_id = ?",
                (project, entity["id"]),
            ):
                store.unshare("experiment", e["id"], project)
        store.unshare(kind, entity["id"], project)
