"""The probe's clean-up: delete the scratch subject (``removeFiles=true``, its session goes
with it) and the prearchive sessions of its study or labels, then prove they are gone, and
otherwise say what is left with the request that removes it.
"""

from __future__ import annotations

from planner import restpaths as rest
from planner.errors import BackendError, NotFound
from planner.prearchive import leftover_note
from planner.probe_scratch import ProbeScratch
from planner.statuses import CheckStatus
from planner.steps import describe

__all__ = ["CleanUp"]


class CleanUp(ProbeScratch):
    """Removing what the probe wrote, and proving it is gone."""

    def clean_up(self) -> None:
        """Delete what the probe wrote, then prove it is gone; say what is left otherwise."""
        name = "clean-up"
        if not self.wrote:
            self.add(name, CheckStatus.NOT_RUN, "nothing was written")
            return
        server = self.backend.url
        removed: list[str] = []
        errors: list[str] = []
        try:
            self.backend.request_text("DELETE", self.subject_path, {"removeFiles": "true"})
            removed.append(f"subject {self.subject}")
        except NotFound:
            pass
        except BackendError as exc:
            errors.append(f"deleting subject {self.subject} failed: {describe(exc)}")
        try:
            for s in self.prearchived():
                try:
                    self.backend.request_text("DELETE", s.path)
                    removed.append(f"prearchive session {s.url}")
                except NotFound:
                    pass
                except BackendError as exc:
                    errors.append(f"deleting {s.url} failed: {describe(exc)}")
        except BackendError as exc:
            errors.append(f"reading the prearchive failed: {describe(exc)}")
        left = self._left(server)
        if left:
            detail = "; ".join(errors + left)
            self.add(name, CheckStatus.FAIL, detail, "remove what is left with the requests given")
            return
        done = ", ".join(removed) or "nothing was left to remove"
        self.add(
            name,
            CheckStatus.PASS,
            f"removed {done}; the subject and its session are 404 and no prearchive "
            "session of the probe remains",
        )

    def _left(self, server: str) -> list[str]:
        """What of the probe is still on the server, each with the request that removes it."""
        left: list[str] = []
        remove_subject = f"curl -u USER -X DELETE '{server}{self.subject_path}?removeFiles=true'"
        checks = [("subject", self.subject_path, remove_subject)]
        checks.append(("session", self.session_path, remove_subject))
        if self.experiment_id:
            exp = rest.experiment_by_id(self.experiment_id)
            checks.append(
                (
                    "experiment",
                    exp,
                    f"curl -u USER -X DELETE '{server}{exp}?removeFiles=true'",
                )
            )
        for what, path, request in checks:
            try:
                if self.exists(path):
                    left.append(f"{what} {path} is still there; remove it with: {request}")
            except BackendError as exc:
                left.append(f"could not confirm that {what} {path} is gone ({describe(exc)})")
        try:
            sessions = self.prearchived()
        except BackendError as exc:
            left.append(
                f"could not read {self.project}'s prearchive to confirm it holds nothing of "
                f"the probe ({describe(exc)}); check for study {self.study.study_uid}"
            )
            sessions = []
        left += [leftover_note(server, s, "left by the probe") for s in sessions]
        return left
