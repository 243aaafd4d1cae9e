"""The probe's writing steps: say what it will write, read the server's facts, claim a
scratch label nobody uses (and only where the user may delete it again), and import two
series the way apply does, the second merging into the session the first created.
"""

from __future__ import annotations

from planner import restpaths as rest
from planner.errors import BackendError
from planner.probe_scratch import ProbeScratch
from planner.rows import get_listing
from planner.snapshot import server_version
from planner.statuses import CheckStatus
from planner.steps import describe, import_handler_for, import_query, post_import

__all__ = ["ANONYMIZATION_PATH", "DELETABLE_PROJECTS", "ScratchWriter"]

ANONYMIZATION_PATH = rest.SITE_ANONYMIZATION
# Projects where the user may delete subjects (``DefaultGroupsAndPermissionsCache
# .getProjectsForDatatypeAction``, as ``planner.preflight.may_write`` asks for edit).
DELETABLE_PROJECTS = {"permissions": "delete", "dataType": "xnat:subjectData"}


class ScratchWriter(ProbeScratch):
    """The steps that make the scratch session."""

    def describe_scope(self) -> None:
        n = sum(len(s.instances) for s in self.study.series)
        self.add(
            "what it writes",
            CheckStatus.INFO,
            f"creates subject {self.subject} with session {self.session} "
            f"({len(self.study.series)} series, {n} files) in {self.project}, imports it as "
            "transfers do, reads and downloads it, then deletes the subject "
            "(removeFiles=true) and the prearchive entries of its study; nothing else is "
            "written",
        )

    def server_facts(self) -> None:
        version = server_version(self.backend)
        self.handler = import_handler_for(version)
        shown = f"XNAT {version}" if version else "version not reported"
        self.add(
            "server version",
            CheckStatus.INFO,
            f"{shown}; transfers import with the {self.handler} handler",
        )
        try:
            enabled = self.backend.get_json(ANONYMIZATION_PATH)
        except BackendError as exc:
            self.add(
                "site anonymization",
                CheckStatus.INFO,
                f"unknown: GET {ANONYMIZATION_PATH} answered {exc.status or 'nothing'}",
            )
            return
        if isinstance(enabled, bool):
            word = "enabled" if enabled else "disabled"
            self.add("site anonymization", CheckStatus.INFO, f"{word} (GET {ANONYMIZATION_PATH})")
        else:
            self.add(
                "site anonymization",
                CheckStatus.INFO,
                f"unknown: GET {ANONYMIZATION_PATH} gave {enabled!r}",
            )

    def claim_label(self) -> None:
        """Refuse a label that exists: the clean-up would otherwise delete someone's data."""
        name = "scratch subject"
        self._may_delete(name)
        taken: list[str] = []
        for what, path in (("subject", self.subject_path), ("session", self.session_path)):
            try:
                if self.exists(path):
                    taken.append(f"{what} {path}")
            except BackendError as exc:
                self.fail(
                    name,
                    f"could not tell whether {what} {path} exists ({describe(exc)}); "
                    "nothing was written",
                )
        try:
            taken += [f"prearchive session {s.url}" for s in self.prearchived()]
        except BackendError as exc:
            self.fail(name, f"could not read the prearchive ({describe(exc)}); nothing was written")
        if taken:
            self.fail(
                name,
                f"{', '.join(taken)} already exists; the probe refuses to touch it and wrote "
                "nothing",
                "an earlier probe may have been killed before its clean-up: check and delete "
                "it, then run the probe again",
            )
        self.add(
            name,
            CheckStatus.PASS,
            f"{self.subject} (session {self.session}) is free in {self.project}",
        )

    def _may_delete(self, name: str) -> None:
        """Refuse to write what the user could not delete: XNAT's members add data but may
        not delete it (NRG's TestSharing), so only owners (and admins) may run the probe."""
        try:
            rows = get_listing(self.backend, rest.PROJECTS, DELETABLE_PROJECTS)
        except BackendError as exc:
            self.fail(
                name,
                f"could not tell whether the user may delete in {self.project} "
                f"({describe(exc)}); nothing was written",
            )
        if not any(r.get("ID", "").lower() == self.project.lower() for r in rows):
            self.fail(
                name,
                f"the user may add data to {self.project} but not delete it, so the probe "
                "could not remove its scratch subject; nothing was written",
                "run the probe as an owner of the destination project (members may not "
                "delete); transfers themselves need only member rights",
            )

    def import_series(self) -> None:
        for i, series in enumerate(self.study.series):
            merging = i > 0
            name = (
                f"import series {series.number} into the same session"
                if merging
                else f"import series {series.number}"
            )
            zip_path = series.write_zip(self.work / f"series{series.number}.zip")
            params = import_query(self.handler, self.project, self.subject, self.session)
            leftovers: list[str] = []
            self.wrote = True
            try:
                reply = post_import(
                    self.backend,
                    zip_path,
                    params,
                    project=self.project,
                    experiment=self.session,
                    on_leftovers=leftovers.extend,
                )
            except BackendError as exc:
                detail = f"{self.handler} import refused: {describe(exc)}"
                if leftovers:
                    detail += "; " + "; ".join(leftovers)
                hint = (
                    "the destination refuses to merge a second series into an existing "
                    "session, which every multi-scan transfer does"
                    if merging
                    else "the destination refuses imports as transfers send them"
                )
                self.fail(name, detail, hint)
            uri = next((ln.strip() for ln in reply.splitlines() if ln.strip()), "")
            if "/prearchive" in uri:
                self.fail(
                    name,
                    f"the session stayed in the prearchive ({uri}) instead of being archived",
                    "transfers expect an archive dest to archive at once",
                )
            detail = f"{len(series.instances)} files, series UID {series.uid}"
            self.add(name, CheckStatus.PASS, f"{detail}; archived as {uri or '(no URI returned)'}")
