"""Find and remove what a failed import left in the destination's prearchive.

A DICOM-zip import on XNAT 1.8.10+ lands in the prearchive first and is archived from there
(``DicomZipImporter``). When archiving fails, the prearchive session stays behind (status
CONFLICT or ERROR, or RECEIVING when the upload broke off), and while it is RECEIVING the next
upload of the same study and label joins it (``PrearcDatabase.eitherGetOrCreateSession``), so
a later run would trip over it. After a failed import this module finds the prearchive
sessions that import created and removes them with ``DELETE /data/prearchive/projects/{P}/
{timestamp}/{folder}`` (``PrearcSessionResource.handleDelete``, as NRG's
``TestPrearchiveMgmt.testPrearchiveSessionDelete`` does).

"Created by this import" is decided without comparing clocks (the prearchive's timestamps are
the server's local time, in a zone the client does not know): the project's prearchive is
listed just before the import, and only a session absent from that listing, with the
import's StudyInstanceUID (``tag``) and session label (``folderName``/``name``), in status
RECEIVING, CONFLICT or ERROR, counts. Imports into one session never overlap within a run
(``planner.gates``), so nothing else of this run can have made it. Anything else is never
touched.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from planner import restpaths as rest
from planner.backend import XnatBackend
from planner.errors import BackendError
from planner.rows import Row, get_listing

LEFTOVER_STATUSES = frozenset({"RECEIVING", "CONFLICT", "ERROR"})


@dataclass(frozen=True)
class PrearchiveSession:
    project: str
    timestamp: str
    folder: str
    name: str
    tag: str  # StudyInstanceUID
    status: str
    url: str  # /prearchive/projects/P/TS/FOLDER, as XNAT lists it (no /data)
    subject: str = ""

    @property
    def path(self) -> str:
        """The REST path of the session (what DELETE is sent to)."""
        return rest.listed(self.url)

    @classmethod
    def from_row(cls, row: Row) -> PrearchiveSession:
        project, ts = row.get("project", ""), row.get("timestamp", "")
        folder = row.get("folderName", "")
        url = row.get("url", "") or f"/prearchive/projects/{project}/{ts}/{folder}"
        return cls(
            project=project,
            timestamp=ts,
            folder=folder,
            name=row.get("name", ""),
            tag=row.get("tag", ""),
            status=row.get("status", "").upper(),
            url=url,
            subject=row.get("subject", ""),
        )


def list_sessions(backend: XnatBackend, project: str) -> list[PrearchiveSession]:
    rows = get_listing(backend, rest.prearchive(project))
    return [PrearchiveSession.from_row(r) for r in rows]


def study_uid(zip_path: Path) -> str:
    """The StudyInstanceUID of the first DICOM file in a zip, or ``""`` when unreadable."""
    try:
        import pydicom

        with zipfile.ZipFile(zip_path) as zf:
            for info in zf.infolist():
                if info.is_dir():
                    continue
                with zf.open(info) as fh:
                    ds = pydicom.dcmread(
                        fh, stop_before_pixels=True, force=True, specific_tags=["StudyInstanceUID"]
                    )
                uid = str(getattr(ds, "StudyInstanceUID", "") or "")
                if uid:
                    return uid
    except Exception:  # a best effort: without it, the label and the before-listing decide
        return ""
    return ""


@dataclass
class ImportWatch:
    """The prearchive as it was just before one import into ``project``/``label``."""

    backend: XnatBackend
    project: str
    label: str
    before: frozenset[str] | None
    unreadable: str = ""  # why the prearchive could not be listed before the import

    @classmethod
    def start(cls, backend: XnatBackend, project: str, label: str) -> ImportWatch:
        try:
            before = frozenset(s.url for s in list_sessions(backend, project))
        except BackendError as exc:
            return cls(backend, project, label, None, str(exc.reason or exc))
        return cls(backend, project, label, before)

    def created(self, uid: str) -> list[PrearchiveSession]:
        """Sessions this import left: new since ``start``, this label, this study, unfinished."""
        if self.before is None:
            return []
        out = []
        for s in list_sessions(self.backend, self.project):
            if s.url in self.before or s.status not in LEFTOVER_STATUSES:
                continue
            if self.label not in (s.folder, s.name):
                continue
            if uid and s.tag and s.tag != uid:
                continue
            out.append(s)
        return out

    def clean_up(self, zip_path: Path, *, remove: bool) -> list[str]:
        """Remove what the failed import left (``remove``) or only find it; returns one
        sentence per session left behind, with the request that removes it."""
        if self.before is None:
            return [
                f"the destination's prearchive could not be read before the import "
                f"({self.unreadable}); check {rest.prearchive(self.project)} for a "
                f"session {self.label} left by it"
            ]
        try:
            found = self.created(study_uid(zip_path))
        except BackendError as exc:
            return [
                f"the destination's prearchive could not be read after the import "
                f"({exc.reason or exc}); check {rest.prearchive(self.project)} for a "
                f"session {self.label} left by it"
            ]
        notes = []
        for s in found:
            why = "the server may still be working on it" if not remove else ""
            if remove:
                try:
                    self.backend.request_text("DELETE", s.path)
                    continue
                except BackendError as exc:
                    why = f"removing it failed: {exc.reason or exc}"
            notes.append(leftover_note(self.backend.url, s, why))
        return notes


def leftover_note(server: str, s: PrearchiveSession, why: str) -> str:
    return (
        f"the import left prearchive session {s.url} ({s.status}) on the destination ({why}); "
        f"remove it with: curl -u USER -X DELETE '{server}{s.path}' "
        f"(or POST {server}{rest.PREARCHIVE_DELETE} with src={s.url})"
    )


def answered_by_xnat(exc: BaseException) -> bool:
    """A reply XNAT itself gave (4xx, 500): its import is over, its leftovers may go. A gateway
    error or a broken connection may leave XNAT still working on the upload."""
    status = getattr(exc, "status", None)
    return (
        isinstance(exc, BackendError)
        and status is not None
        and (400 <= status < 500 or status == 500)
    )
