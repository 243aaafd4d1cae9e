"""What the destination probe (``planner.probe``) works on: the scratch subject and session
it writes, where they live, the checks found so far, and how a failed step stops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from planner import restpaths as rest
from planner.backend import XnatBackend
from planner.errors import NotFound
from planner.prearchive import PrearchiveSession, list_sessions
from planner.preflight import Check
from planner.probedata import ProbeStudy
from planner.statuses import CheckStatus

__all__ = ["ProbeScratch", "ProbeStopped"]


class ProbeStopped(Exception):
    """A probe step failed: later steps are reported as not run."""


@dataclass
class ProbeScratch:
    """The scratch subject and session on one destination, and the findings about them."""

    backend: XnatBackend
    project: str
    subject: str
    session: str
    study: ProbeStudy
    work: Path
    checks: list[Check] = field(default_factory=list)
    wrote: bool = False  # anything sent that may have written (the clean-up then runs)
    experiment_id: str = ""
    handler: str = ""

    # -- paths ---------------------------------------------------------------------------
    @property
    def project_path(self) -> str:
        return rest.project(self.project)

    @property
    def subject_path(self) -> str:
        return rest.subject(self.project, self.subject)

    @property
    def session_path(self) -> str:
        return rest.project_experiment(self.project, self.session)

    def add(self, name: str, status: CheckStatus, detail: str = "", hint: str = "") -> Check:
        check = Check(f"probe: {name}", status, detail, hint)
        self.checks.append(check)
        return check

    def fail(self, name: str, detail: str, hint: str = "") -> NoReturn:
        self.add(name, CheckStatus.FAIL, detail, hint or "see the message; the probe stopped here")
        raise ProbeStopped(name)

    def exists(self, path: str) -> bool:
        """Whether the server has ``path``: a 404 says no, any other error is raised."""
        try:
            self.backend.get_json(path)
        except NotFound:
            return False
        return True

    def prearchived(self) -> list[PrearchiveSession]:
        """The probe's sessions in the project's prearchive (none when it answers 404)."""
        try:
            return [s for s in list_sessions(self.backend, self.project) if self.ours(s)]
        except NotFound:
            return []

    def ours(self, s: PrearchiveSession) -> bool:
        """Whether a prearchive session is the probe's (its study, or one of its labels)."""
        labels = {self.subject, self.session}
        return (
            s.tag == self.study.study_uid
            or s.folder in labels
            or s.name in labels
            or s.subject == self.subject
        )
