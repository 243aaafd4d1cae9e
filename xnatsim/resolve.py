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
    name: str = ""  # the id/label of an object named but not (yet) existing
    file_path: str = ""
    access: Access | None = None
    extra: list[str] = field(default_factory=list)

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
        proj = self.store.project(pid)
        if proj is None:
            raise HTTPError(404, f"Unable to find the specified project: {pid}")
        access = self.auth.access(user, proj)
        if not access.read:
            raise HTTPError(403, f"You do not have access to project {pid}")
        t.project = proj
        t.access = access

    def resolve(self, segs: list[str], user: str) -> Target:
        """`segs` are the path parts after `/data`."""
        store = self.store
        coll = segs[0]
        if coll == "projects":
            if len(segs) == 1:
                return Target("projects")
            proj = store.project(segs[1])
            if proj is None:
                if len(segs) == 2:
                    return Target("project", name=segs[1])
                raise HTTPError(404, f"Unable to find the specified project: {segs[1]}")
            access = self.auth.access(user, proj)
            if len(segs) == 2 or segs[2] in ("accessibility", "users", "prearchive_code"):
                if not access.visible:
                    raise HTTPError(403, f"You do not have access to project {segs[1]}")
                return Target("project", project=proj, access=access, extra=segs[2:])
            self._project(t := Target("project"), user, segs[1])
            return self._walk(t, segs[2:], user)
        if coll == "subjects":
            if len(segs) == 1:
                return Target("subjects")
            subj = store.subject_by(None, segs[1])
            if subj is None:
                raise HTTPError(404, "Unable to find the specified subject.")
            t = Target("subject")
            self._project(t, user, subj["project"])
            t.subject = subj
            return self._walk(t, segs[2:], user)
        if coll == "experiments":
            if len(segs) == 1:
                return Target("experiments")
            exp = store.experiment_by(None, segs[1])
            if exp is None:
                raise HTTPError(404, "Unable to find the specified experiment.")
            t = Target("experiment")
            self._project(t, user, exp["project"])
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
                t.subject = store.subject_by(t.project["id"], key)
                t.kind = "subject"
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
                exp = store.experiment_by(t.project["id"], key)
                if exp is None:
                    t.kind = "experiment"
                    t.name = key
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified experiment.")
                    return t
                self._set_experiment(t, exp)
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
                            s for s in every if s["scan_id"] in wanted or s["type"] in wanted
                        ]
                    t.kind = "scans"
                    i += 2
                    continue
                t.scan = store.scan(t.experiment["id"], key)
                t.kind = "scan"
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
                if ass is None:
                    t.name = key
                    if i + 2 < len(segs):
                        raise HTTPError(404, "Unable to find the specified assessor.")
                    return t
                i += 2
                continue
            if coll == "out" and level == "assessor":
                i += 1
                continue
            raise HTTPError(404, f"Unknown path element: {coll}")
        return t
