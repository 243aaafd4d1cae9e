"""Pre-flight checks before a first transfer: can we read the source and write the destination?

Each check is independent and reported as passed or failed with what to do, so a user fixes
every problem in one round instead of discovering them one failed transfer at a time. Checks
that depend on an earlier one (no login, no project check) are reported as not run.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from planner import restpaths as rest
from planner.backend import XnatBackend
from planner.errors import (
    NOT_XNAT_HINT,
    AuthenticationFailed,
    BackendError,
    NetworkError,
    NotFound,
    NotXnat,
    PermissionDenied,
)
from planner.rows import get_listing
from planner.snapshot import build_info
from planner.statuses import CheckStatus

# Projects the user may add data to. `restrict=edit` would ask who may edit the project
# itself, which XNAT's default groups give to owners only, leaving members out.
WRITABLE_PROJECTS = {"permissions": "edit", "dataType": "xnat:subjectData"}


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str = ""
    hint: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (CheckStatus.PASS, CheckStatus.INFO)


# What to do about each typed error, per check.
_UNREACHABLE_HINTS: dict[type, str] = {
    NetworkError: "fix the profile's URL, or start the server and retry",
    NotXnat: NOT_XNAT_HINT,
}
_LOGIN_HINTS: dict[type, str] = {
    AuthenticationFailed: "check the user and password, or run 'xnatctl auth login'",
    NetworkError: "check the URL and that the server is up",
}
_READ_HINTS: dict[type, str] = {
    NotFound: (
        "check the project ID (IDs are case-sensitive); XNAT also answers 404 when the "
        "user may not see the project, so ask its owner to add the user"
    ),
    PermissionDenied: "ask a project owner to add the user to the project",
}
_WRITE_HINTS: dict[type, str] = {
    NotFound: "create the destination project first (an XNAT admin can)",
    PermissionDenied: "the user must be an owner or member of the destination project",
}
_IMPORT_HINTS: dict[type, str] = {
    PermissionDenied: "the user must be an owner or member of the destination project",
    NotFound: f"the destination has no DICOM import service at {rest.IMPORT_SERVICE}",
}


def _run(name: str, probe: Callable[[], str], hints: dict[type, str]) -> Check:
    """Run one probe; a typed backend error becomes a failed check with its own hint."""
    try:
        return Check(name, CheckStatus.PASS, probe())
    except BackendError as exc:
        hint = next((h for cls, h in hints.items() if isinstance(exc, cls)), "")
        detail = exc.reason or str(exc)
        return Check(name, CheckStatus.FAIL, detail, hint or "see the message above")


def _server_version(backend: XnatBackend) -> str:
    """The version proves the server is there; a 401 proves it too (bad credentials are the
    login check's business, reported there with their own hint)."""
    try:
        info = build_info(backend)
    except AuthenticationFailed:
        return "the server answered, but refused the credentials before giving its version"
    version = info.get("version", "")
    return f"XNAT {version}" if version else "XNAT (version not reported)"


def _whoami(backend: XnatBackend) -> str:
    return f"logged in as {backend.get_text('/xapi/users/username').strip()}"


def _project_readable(backend: XnatBackend, project: str) -> str:
    backend.get_json(rest.project(project))
    return f"project {project} is readable"


def may_write(backend: XnatBackend, project: str) -> bool:
    """Whether the logged-in user may add data to ``project`` (owner or member).

    XNAT answers this listing from plain SQL, so on PostgreSQL its columns are ``id`` and
    ``secondary_id``; ``get_listing`` rows find them under any spelling.
    """
    rows = get_listing(backend, rest.PROJECTS, WRITABLE_PROJECTS)
    return any(row.get("ID", "").lower() == project.lower() for row in rows)


def _project_writable(backend: XnatBackend, project: str) -> str:
    backend.get_json(rest.project(project))
    if not may_write(backend, project):
        raise PermissionDenied(
            f"the user may read project {project} but not write to it",
            status=403,
            reason=f"the user may read project {project} but not write to it",
        )
    return f"project {project} exists and the user may write to it"


def _import_probe(backend: XnatBackend, project: str) -> str:
    """Send an empty DICOM-zip to the prearchive: XNAT parses it and archives nothing.

    A reply of 200, or 400 for "no DICOM in the archive", proves the import service is there
    and accepts this user for this project; 401/403/404/405 or a 5xx says it is not usable.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w"):
        pass
    with tempfile.TemporaryDirectory(prefix="xnatctl-probe-") as tmp:
        probe = Path(tmp) / "probe.zip"
        probe.write_bytes(buffer.getvalue())
        params = {
            "import-handler": "DICOM-zip",
            "PROJECT_ID": project,
            "dest": f"/prearchive/projects/{project}",
        }
        try:
            backend.upload(
                "POST", rest.IMPORT_SERVICE, probe, params, content_type="application/zip"
            )
        except BackendError as exc:
            if exc.status != 400:
                raise
    return "the DICOM-zip import service answers"


def _side_checks(
    label: str,
    backend: XnatBackend | BackendError,
    project: str,
    project_check: Callable[[XnatBackend, str], str],
    hints: dict[type, str],
) -> list[Check]:
    """One side's checks in order (reachable, login, project). A check whose predecessor
    failed is reported as not run, so the last passes only when the project check did."""
    if isinstance(backend, BackendError):
        return [Check(f"{label} reachable", CheckStatus.FAIL, str(backend), "check the profile")]
    project_name = f"{label} project {project}"
    reach = _run(f"{label} reachable", lambda: _server_version(backend), _UNREACHABLE_HINTS)
    if not reach.ok:
        why = "server not reachable"
        return [
            reach,
            Check(f"{label} login", CheckStatus.NOT_RUN, why),
            Check(project_name, CheckStatus.NOT_RUN, why),
        ]
    login = _run(f"{label} login", lambda: _whoami(backend), _LOGIN_HINTS)
    if not login.ok:
        return [reach, login, Check(project_name, CheckStatus.NOT_RUN, "not logged in")]
    return [reach, login, _run(project_name, lambda: project_check(backend, project), hints)]


def run_preflight(
    source: XnatBackend | BackendError,
    source_project: str,
    dest: XnatBackend | BackendError,
    dest_project: str,
    *,
    probe: bool = False,
) -> list[Check]:
    """Run every check; a side whose client could not even be built is passed as its error.

    ``probe`` adds the destination probe (``planner.probe``), which writes a scratch subject
    and removes it again, when the destination project is writable.
    """
    checks = _side_checks("source", source, source_project, _project_readable, _READ_HINTS)
    dest_checks = _side_checks("destination", dest, dest_project, _project_writable, _WRITE_HINTS)
    checks += dest_checks
    # The last check of a side is its project check, or the failure that kept it from running.
    if not isinstance(dest, BackendError) and dest_checks[-1].ok:
        checks.append(
            _run(
                "destination accepts DICOM-zip imports",
                lambda: _import_probe(dest, dest_project),
                _IMPORT_HINTS,
            )
        )
        if probe:
            from planner.probe import run_probe  # the probe builds on these checks' Check

            checks.extend(run_probe(dest, dest_project))
    else:
        why = "destination not writable"
        checks.append(Check("destination accepts DICOM-zip imports", CheckStatus.NOT_RUN, why))
        if probe:
            checks.append(Check("probe", CheckStatus.NOT_RUN, f"{why}: nothing written"))
    return checks
