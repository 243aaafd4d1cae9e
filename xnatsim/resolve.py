"""Turn a `/data/...` path into the catalog objects it names, checking project access."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from xnatsim.auth import Access, Auth
from xnatsim.store import Store
from xnatsim.web import HTTPError

Row = sqlite3.Row


@dataclass
class Target:
    """What a path addresses. `kind` is the last element: a collection or an object."""

    kind: str
    project: Row | None = None
    subject: Row | None = None
    experiment: Row | None = None  # the image session (or subject assessor)
    assessor: Row | None = None
    scan: Row | None = None
    scans: list[Row] | None = None  # scans/ALL or a comma list
    resource: Row | None = None
    resources: list[Row] | None = None  # one label or id across scans/ALL or a scan list
    name: str = ""  # the id/label of an object named but not (yet) existing
    file_path: str = ""
    access: Access | None = None
    extra: list[str] = field(default_factory=list)
    direct: bool = False  # addressed by accession ID (`/data/experiments/{ID}`), not a project
    hidden: bool = False  # names a project that exists but the user may not see

    @property
    def owner(self) -> tuple[str, str] | None:
        """The (kind, key) whose resources `resources`/`files` refer to."""
        if self.scan is not None:
            return "scan", str(self.scan["pk"])
        if self.assessor is not None:
            return "assessor", self.assessor["id"]
        if self.experiment is not None:
            return "experiment", self.experiment["id"]
        if self.subject is not None:
            return "subject", self.subject["id"]
        if self.project is not None:
            return "project", self.project["id"]
        return None


class Resolver:
    def __init__(self, store: Store, auth: Auth) -> None:
        self.store = store
        self.auth = auth

    def _project(self, t: Target, user: str, pid: str) -> None:
        """XNAT looks projects up with the user's rights (`getProjectByIDorAlias(id, user)`):
        one the user may not see is simply not found."""
        proj = self.store.project(pid)
        access = self.auth.access(user, proj)
        if proj is None or not access.visible:
            raise HTTPError(404, f"Unable to find the specified project: {pid}")
        t.project = proj
        t.access = access

    def readable(self, user: str, kind: str, entity: Row) -> bool:
        """XNAT's secured searches find a subject or experiment when the user may read its
        own project or any project it is shared into (`<type>/project` or
        `<type>/sharing/share/project`); otherwise lookups return nothing, hence 404."""
        if self.auth.access(user, self.store.project(entity["project"])).read:
            return True
        return any(
            self.auth.access(user, self.store.project(share["project"])).read
            for share in self.store.shares_of(kind, entity["id"])
        )

    def _visible(self, user: str, kind: str, entity: Row | None) -> Row | None:
        if entity is None:
            return None
        if kind == "experiment" and entity["session_id"]:
            root = self.store.experiment_by(None, entity["session_id"])
            return entity if root is not None and self.readable(user, kind, root) else None
        return entity if self.readable(user, kind, entity) else None

    def _owner_access(self, t: Target, user: str, entity: Row) -> None:
        """Data shared into the addressed project is read there but written only by those
        who may write its owning project, as in XNAT."""
        if t.project is None:
            return
        if entity["project"] == t.project["id"]:
            t.access = self.auth.access(user, t.project)
            return
        owner = self.auth.access(user, self.store.project(entity["project"]))
        t.access = Access(True, True, owner.write, owner.owner, t.access.role if t.access else "")

    def _direct(self, t: Target, user: str, kind: str, entity: Row) -> None:
        """`/data/subjects/{ID}` and `/data/experiments/{ID}`: readable through the owning
        project or through any readable project it is shared into."""
        t.direct = True
        owner = self.store.project(entity["project"])
        if self.auth.access(user, owner).read:
            self._project(t, user, entity["project"])
            return
        for share in self.store.shares_of(kind, entity["id"]):
            proj = self.store.project(share["project"])
            access = self.auth.access(user, proj)
            if access.read:
                t.project = proj
                t.access = access
                self._owner_access(t, user, entity)
                return
        raise HTTPError(404, f"Unable to find the specified {kind}.")

    def resolve(self, segs: list[str], user: str) -> Target:
        """`segs` are the path parts after `/data`."""
        store = self.store
        coll = segs[0]
        if coll == "projects":
            if len(segs) == 1:
                return Target("projects")
            proj = store.project(segs[1])
            access = self.auth.access(user, proj)
            if proj is None or not access.visible:
                if len(segs) == 2:
                    # Missing, or existing but not the user's to see: the handler answers as
                    # XNAT does for a project it cannot find.
                    return Target("project", name=segs[1], hidden=proj is not None)
                raise HTTPError(404, f"Unable to find the specified project: {segs[1]}")
            if len(segs) == 2 or segs[2] in ("accessibility", "users", "prearchive_code"):
                return Target("project", project=proj, access=access, extra=segs[2:])
            self._project(t := Target("project"), user, segs[1])
            return self._walk(t, segs[2:], user)
        if coll == "subjects":
            if len(segs) == 1:
                return Target("subjects")
            subj = self._visible(user, "subject", store.subject_by(None, segs[1]))
            if subj is None:
                raise HTTPError(404, "Unable to find the specified subject.")
            t = Target("subject")
            self._direct(t, user, "subject", subj)
            t.subject = subj
            return self._walk(t, segs[2:], user)
        if coll == "experiments":
            if len(segs) == 1:
                return Target("experiments")
            exp = self._visible(user, "experiment", store.experiment_by(None, segs[1]))
            if exp is None:
                raise HTTPError(404, "Unable to find the specified experiment.")
            t = Target("experiment")
            share_root = store.experiment_by(None, exp["session_id"]) if exp["session_id"] else exp
            self._direct(t, user, "experiment", share_root)
            self._set_experiment(t, exp)
            return self._walk(t, segs[2:], user)
        raise HTTPError(404, "Unknown path")

    def _set_experiment(self, t: Target, exp: Row) -> None:
        if exp["session_id"]:
            # An assessor addressed by its own id still sits under its session.
            t.experiment = self.store.one(
                "SELECT * FROM experiments WHERE id = ?", (exp["session_id"],)
            )
            t.assessor = exp
            t.kind = "assessor"
        else:
            t.experiment = exp
            t.kind = "experiment"
        t.subject = self.store.one("SELECT * FROM subjects WHERE id = ?", (exp["subject_id"],))

    def _walk(self, t: Target, segs: list[str], user: str) -> Target:
        store = self.store
        i = 0
        while i < len(segs):
            coll = segs[i]
            key = segs[i + 1] if i + 1 < len(segs) else None
            level = t.kind
            if level == "project" and coll in ("files", "resources") and not t.access.read:
                # Project files of a project whose data the user may not read are not found
                # (`FileList`: `Permissions.canReadProject`).
                raise HTTPError(404, "Unable to find file.")
            if coll == "files" and level in (
                "project",
                "subject",
                "experiment",
                "scan",
                "scans",
                "assessor",
                "resource",
            ):
                t.kind = "files"
                t.file_path = "/".join(segs[i + 1 :])
                return t
            if coll == "resources" and level == "scans" and t.scans is not None:
                # XNATTemplate/FileList: `scans/{list}/resources/{R}/files` gathers resource
                # R (label or id) of every selected scan.
                if key is None or i + 2 >= len(segs) or segs[i + 2] != "files":
                    raise HTTPError(404, "Name the files of one resource: .../resources/R/files")
                t.resources = [
                    r
                    for s in t.scans
                    if (r := store.resource("scan", str(s["pk"]), key)) is not None
                ]
                t.kind = "files"
                t.file_path = "/".join(segs[i + 3 :])
                return t
            if coll == "resources" and level in (
                "project",
                "subject",
                "experiment",
                "scan",
                "assessor",
            ):
                owner = t.owner
                if key is None:
                    t.kind = "resources"
                    return t
                t.resource = store.resource(owner[0], owner[1], key)
                t.kind = "resource"
                if t.resource is None:
                    t.name = key
                    if i + 2 < len(segs) and segs[i + 2] == "files":
                        # Uploading into a missing resource creates it; reads will 404.
                        t.kind = "files"
                        t.file_path = "/".join(segs[i + 3 :])
                        return t
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified resource.")
                    return t
                i += 2
                continue
            if coll == "subjects" and level == "project":
                if key is None:
                    t.kind = "subjects"
                    return t
                t.subject = self._visible(user, "subject", store.subject_by(t.project["id"], key))
                t.kind = "subject"
                if t.subject is not None:
                    self._owner_access(t, user, t.subject)
                if t.subject is None:
                    t.name = key
                    if i + 2 < len(segs) and segs[i + 2] == "experiments" and i + 4 == len(segs):
                        # PUT .../subjects/NEW/experiments/E creates the subject too.
                        t.kind = "experiment"
                        t.name = segs[i + 3]
                        t.extra = [key]
                        return t
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified subject.")
                    return t
                i += 2
                continue
            if coll == "experiments" and level in ("project", "subject"):
                if key is None:
                    t.kind = "experiments"
                    return t
                exp = self._visible(user, "experiment", store.experiment_by(t.project["id"], key))
                if exp is None:
                    t.kind = "experiment"
                    t.name = key
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified experiment.")
                    return t
                self._set_experiment(t, exp)
                self._owner_access(t, user, exp)
                i += 2
                continue
            if coll == "scans" and level == "experiment":
                if key is None:
                    t.kind = "scans"
                    return t
                if key in ("ALL", "*") or "," in key:
                    every = store.query(
                        "SELECT * FROM scans WHERE experiment_id = ? ORDER BY pk",
                        (t.experiment["id"],),
                    )
                    if key in ("ALL", "*"):
                        t.scans = every
                    else:
                        wanted = key.split(",")
                        t.scans = [
                            s
                            for s in every
                            if s["scan_id"] in wanted
                            or s["type"] in wanted
                            or (not s["type"] and "NULL" in wanted)
                        ]
                    t.kind = "scans"
                    i += 2
                    continue
                t.scan = store.scan(t.experiment["id"], key)
                t.kind = "scan"
                if t.scan is None and i + 2 < len(segs) and segs[i + 2] in ("resources", "files"):
                    # XNATTemplate matches one SCAN_ID against scan IDs or scan types
                    # (`NULL` for none) when listing files, so `scans/T1/files` works.
                    wanted = "" if key == "NULL" else key
                    typed = store.query(
                        "SELECT * FROM scans WHERE experiment_id = ? AND type = ? ORDER BY pk",
                        (t.experiment["id"], wanted),
                    )
                    if typed:
                        t.scans = typed
                        t.kind = "scans"
                        i += 2
                        continue
                if t.scan is None:
                    t.name = key
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified scan.")
                    return t
                i += 2
                continue
            if coll == "assessors" and level == "experiment":
                if key is None:
                    t.kind = "assessors"
                    return t
                ass = store.one(
                    "SELECT * FROM experiments WHERE session_id = ? AND (id = ? OR label = ?)",
                    (t.experiment["id"], key, key),
                )
                t.kind = "assessor"
                t.assessor = ass
                if ass is not None:
                    self._owner_access(t, user, ass)
                if ass is None:
                    t.name = key
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified assessor.")
                    return t
                i += 2
                continue
            if coll == "projects" and level in ("subject", "experiment", "assessor"):
                if key is None and i + 1 == len(segs):
                    t.kind = "shares"  # where it lives and is shared (GET only)
                    return t
                if key is None or i + 2 < len(segs):
                    raise HTTPError(404, "Name one project: .../projects/{PROJECT}")
                t.kind = "share"
                t.name = key
                return t
            if coll == "out" and level == "assessor":
                i += 1
                continue
            raise HTTPError(404, f"Unknown path element: {coll}")
        return t
