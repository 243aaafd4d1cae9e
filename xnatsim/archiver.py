"""The prearchive and the archiver: staged sessions land in a prearchive session, which is
built and then archived, as XNAT 1.8.11's `PrearcDatabase`, `GradualDicomImporter` and
`PrearcSessionArchiver` do it.

Locks follow XNAT: a prearchive row's status is its lock (an in-process status starts with
`_`, as `PrearcDatabase.lockSession` sets it), and the archiver also holds in-memory locks on
the prearchive session and on the destination experiment for the whole archive
(`PrearcSessionArchiver.call`), so concurrent requests meet the same refusals as on XNAT.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from xnatsim.catmerge import (
    CAT_ENTRY_MATCH,
    HAS_FILES,
    CatalogConflict,
    Entry,
    Merged,
    merge_catalog,
    overwrite_conflict,
)
from xnatsim.importer import Routing, StagedFile, StagedScan, StagedSession
from xnatsim.store import Store, dicom_instance_uid, now_text
from xnatsim.web import HTTPError

MANUAL, AUTO_ARCHIVE, AUTO_ARCHIVE_OVERWRITE = 0, 4, 5
UNASSIGNED = "Unassigned"
AUTOARCHIVE_NAMES = {
    MANUAL: "Manual",
    AUTO_ARCHIVE: "AutoArchive",
    AUTO_ARCHIVE_OVERWRITE: "AutoArchiveOverwrite",
}

# PrearcSessionArchiver's messages.
PRE_EXISTS = "Session already exists, retry with overwrite enabled"
MODALITY_MOD = (
    "Invalid modification of session modality via archive process."
    "  Data may require a manual merge."
)
UID_MOD = "Invalid modification of session UID via archive process."
SUBJECT_MOD = "Invalid modification of session subject via archive process."


@dataclass(frozen=True)
class ArchiveOptions:
    """The three switches of `PrearcSessionArchiver`."""

    override: bool = False  # overrideExceptions: skip UID checks and open-workflow checks
    merge: bool = False  # allowSessionMerge: an existing session may take the new data
    overwrite_files: bool = False  # files of the same name are replaced


def import_flags(overwrite: str | None) -> tuple[bool, bool]:
    """(allowSessionMerge, overrideExceptions) from the import's `overwrite` parameter, as
    `Importer.parseOverrideValue` sets them for every handler: absent gives no merge;
    `append` (or any other value) merges; `delete`/`override` merges and overrides."""
    if overwrite is None:
        return False, False
    value = overwrite.lower()
    if value in ("delete", "override"):
        return True, True
    return True, False


def new_timestamp() -> str:
    """`PrearcUtils.makeTimestamp`: yyyyMMdd_HHmmssSSS."""
    return datetime.now().strftime("%Y%m%d_%H%M%S%f")[:-3]


def modality_code(scan_xsi_type: str) -> str:
    """The code `PrearcSessionArchiver.correctScanID` puts in a renamed scan's ID."""
    if not scan_xsi_type.startswith("xnat:"):
        return ""
    code = scan_xsi_type[5:7].upper()
    return "PT" if code == "PE" else code


def _incoming(scan: StagedScan) -> list[Entry]:
    """The catalog entries an incoming scan brings (every imported file is a DICOM entry)."""
    return [Entry(f.name, f.uid) for f in scan.files]


def prearchive_url(project: str, ts: str, folder: str) -> str:
    return f"/prearchive/projects/{project}/{ts}/{folder}"


class Archiver:
    """Moves staged sessions into the prearchive and prearchive sessions into the archive."""

    def __init__(
        self,
        store: Store,
        *,
        prevent_cross_modality_merge: bool = True,
        use_sop_instance_uid: bool = True,
    ) -> None:
        self.store = store
        self.prevent_cross_modality_merge = prevent_cross_modality_merge
        # SiteConfigPreferences.useSopInstanceUidToUniquelyIdentifyDicom (default true): an
        # incoming DICOM entry is matched to an archived one by SOPInstanceUID before its name.
        self.use_sop_instance_uid = use_sop_instance_uid
        self._held: set[str] = set()  # PrearcSessionArchiver.lock(): prearchive URLs, exp ids
        self._workflows: set[str] = set()  # experiments with an open archive workflow
        self._mutex = threading.Lock()

    # -- prearchive ----------------------------------------------------------------------
    def _key(self, row: sqlite3.Row) -> tuple[str, str, str]:
        return row["project"], row["timestamp"], row["folder"]

    def row(self, project: str, ts: str, folder: str) -> sqlite3.Row | None:
        return self.store.one(
            "SELECT * FROM prearchive WHERE project = ? AND timestamp = ? AND folder = ?",
            (project, ts, folder),
        )

    def session_dir(self, project: str, ts: str, folder: str) -> Path:
        return self.store.prearchive_dir / project / ts / folder

    def receive(
        self,
        sess: StagedSession,
        code: int | None,
        ts: str = "",
        folder: str = "",
    ) -> str:
        """Land a staged session in the prearchive (`PrearcDatabase.eitherGetOrCreateSession`).

        An existing row of the same project, StudyInstanceUID and label takes the data whatever
        its status (every `PrearcStatus` is interruptable) and goes back to RECEIVING. Otherwise a
        new row is made, remembering the project's prearchive code; a given timestamp and folder
        that already hold another study make the upload fail, as the insert does in XNAT."""
        store = self.store
        with store.write() as c:
            row = c.execute(
                "SELECT * FROM prearchive WHERE project = ? AND tag = ? AND label = ?"
                " ORDER BY timestamp LIMIT 1",
                (sess.project, sess.study_uid, sess.label),
            ).fetchone()
            if row is not None:
                ts, folder = row["timestamp"], row["folder"]
                current = StagedSession.from_json(row["manifest"])
                uploaded, autoarchive = row["uploaded"], row["autoarchive"]
            else:
                explicit = bool(ts)
                ts = ts or new_timestamp()
                folder = folder or sess.label
                base, n = folder, 0
                while self.row(sess.project, ts, folder) is not None:
                    if explicit:
                        first = next((f.name for s in sess.scans.values() for f in s.files), "")
                        raise HTTPError(400, f"unable to read DICOM object {first}")
                    n += 1
                    folder = f"{base}_{n}"
                current = StagedSession(
                    sess.study_uid,
                    sess.project,
                    sess.subject,
                    sess.label,
                    sess.modality,
                    sess.date,
                    session_type=sess.session_type,
                )
                uploaded, autoarchive = now_text(), code
            base_dir = self.session_dir(sess.project, ts, folder)
            for scan in sess.scans.values():
                target = current.scans.setdefault(
                    scan.scan_id, StagedScan(scan.scan_id, scan.xsi_type, scan.type, scan.uid)
                )
                sdir = base_dir / "SCANS" / scan.scan_id / "DICOM"
                sdir.mkdir(parents=True, exist_ok=True)
                for f in scan.files:
                    dest = sdir / f.name
                    os.replace(f.path, dest)
                    target.files = [x for x in target.files if x.name != f.name]
                    target.files.append(
                        StagedFile(
                            f.name, str(dest.relative_to(store.data_dir)), f.size, f.md5, f.uid
                        )
                    )
            c.execute(
                "INSERT OR REPLACE INTO prearchive (project, timestamp, folder, status, subject,"
                " label, tag, scan_date, uploaded, lastmod, last_activity, manifest, autoarchive)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    sess.project,
                    ts,
                    folder,
                    "RECEIVING",
                    sess.subject,
                    sess.label,
                    sess.study_uid,
                    sess.date,
                    uploaded,
                    now_text(),
                    time.time(),
                    current.to_json(),
                    autoarchive,
                ),
            )
        return "/data" + prearchive_url(sess.project, ts, folder)

    def set_status(self, key: tuple[str, str, str], status: str, *, override_lock=False) -> bool:
        """`PrearcDatabase.setStatus`: refused (False) while the row is locked (in process)."""
        with self.store.write() as c:
            row = c.execute(
                "SELECT status FROM prearchive WHERE project = ? AND timestamp = ? AND folder = ?",
                key,
            ).fetchone()
            if row is None:
                raise HTTPError(404, f"No prearchive session {prearchive_url(*key)}")
            if row["status"].startswith("_") and not override_lock:
                return False
            c.execute(
                "UPDATE prearchive SET status = ?, lastmod = ? WHERE project = ? AND"
                " timestamp = ? AND folder = ?",
                (status, now_text(), *key),
            )
            return True

    def build(self, key: tuple[str, str, str]) -> sqlite3.Row:
        """`action=build` / the rebuild handler: the session becomes READY."""
        if not self.set_status(key, "READY"):
            raise HTTPError(409, "session document locked")
        return self._still_there(key)

    def _still_there(self, key: tuple[str, str, str]) -> sqlite3.Row:
        """The session's row, read again after changing its status.

        Imports of one study share a prearchive session, so another import may archive (and
        so remove) it between the status change and this read: XNAT's ``PrearcDatabase``
        then fails to find the session, and the DICOM-zip handler answers its bare archive
        failure (a 400 the client retries)."""
        row = self.row(*key)
        if row is None:
            raise HTTPError(404, f"The prearchive session {prearchive_url(*key)} is gone.")
        return row

    def delete(self, key: tuple[str, str, str]) -> None:
        with self.store.write() as c:
            c.execute(
                "DELETE FROM prearchive WHERE project = ? AND timestamp = ? AND folder = ?", key
            )
        self._remove_dir(key)

    def _remove_dir(self, key: tuple[str, str, str]) -> None:
        shutil.rmtree(self.session_dir(*key), ignore_errors=True)
        ts_dir = self.store.prearchive_dir / key[0] / key[1]
        with contextlib.suppress(OSError):
            ts_dir.rmdir()  # only when empty, as PrearcSessionArchiver tidies up

    def move(self, key: tuple[str, str, str], new_project: str) -> str:
        """`PrearcDatabase.moveToProject`: the session keeps its timestamp and folder."""
        if new_project == key[0]:
            raise HTTPError(409, "Cannot move a session onto its own project")
        target = (new_project, key[1], key[2])
        with self.store.write() as c:
            row = self.row(*key)
            if row is None:
                raise HTTPError(404, f"No prearchive session {prearchive_url(*key)}")
            if row["status"].startswith("_"):
                raise HTTPError(403, f"Can't move session {key[2]} as it has an invalid status")
            if self.row(*target) is not None:
                raise HTTPError(
                    409,
                    f"A prearchive resource with session {key[2]} and timestamp {key[1]}"
                    f" already exists in the project {new_project}",
                )
            sess = StagedSession.from_json(row["manifest"])
            old_prefix = str(self.session_dir(*key).relative_to(self.store.data_dir))
            new_prefix = str(self.session_dir(*target).relative_to(self.store.data_dir))
            sess.project = new_project
            for scan in sess.scans.values():
                for f in scan.files:
                    f.path = new_prefix + f.path[len(old_prefix) :]
            dest = self.session_dir(*target)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if self.session_dir(*key).exists():
                os.replace(self.session_dir(*key), dest)
            code = self.store.project(new_project)
            c.execute(
                "UPDATE prearchive SET project = ?, manifest = ?, status = 'READY',"
                " autoarchive = ?, lastmod = ? WHERE project = ? AND timestamp = ? AND folder = ?",
                (
                    new_project,
                    sess.to_json(),
                    code["prearchive_code"] if code else None,
                    now_text(),
                    *key,
                ),
            )
        self._remove_dir(key)
        return "/data" + prearchive_url(*target)

    # -- archive -------------------------------------------------------------------------
    def archive_prearchived(
        self, row: sqlite3.Row, user: str, opts: ArchiveOptions, routing: Routing | None = None
    ) -> str:
        """`PrearcDatabase._archive` around `PrearcSessionArchiver.call`.

        A 409 from the archiver leaves the session in CONFLICT, any other failure in ERROR;
        either way it stays in the prearchive."""
        key = self._key(row)
        if not self.set_status(key, "ARCHIVING"):
            raise HTTPError(500, "Unable to lock session for archiving.")
        if not self.set_status(key, "_ARCHIVING"):  # LockAndSync.run: lockSession
            raise HTTPError(500, "Operation Failed: status must be archiving")
        current = self._still_there(key)
        sess = StagedSession.from_json(current["manifest"])
        for scan in sess.scans.values():
            for f in scan.files:
                f.path = str(self.store.data_dir / f.path)
        if routing:
            sess.project = routing.project or sess.project
            sess.subject = routing.subject or sess.subject
            sess.label = routing.session or sess.label
        url = prearchive_url(*key)
        try:
            self._hold(url, "Duplicate archive attempt. Prearchive session already archiving.")
            try:
                uri = self._archive(sess, user, opts)
            finally:
                self._release(url)
        except HTTPError as exc:
            with contextlib.suppress(HTTPError):
                self.set_status(
                    key, "CONFLICT" if exc.status == 409 else "ERROR", override_lock=True
                )
            raise
        except BaseException:
            with contextlib.suppress(HTTPError):
                self.set_status(key, "ERROR", override_lock=True)
            raise
        self.delete(key)
        return uri

    def _hold(self, name: str, reason: str) -> None:
        with self._mutex:
            if name in self._held:
                raise HTTPError(423, reason)
            self._held.add(name)

    def _release(self, name: str) -> None:
        with self._mutex:
            self._held.discard(name)

    def _archive(self, sess: StagedSession, user: str, opts: ArchiveOptions) -> str:
        """`PrearcSessionArchiver.call`: locks, conflict checks, then the merge."""
        store = self.store
        if not sess.project or sess.project == UNASSIGNED or store.project(sess.project) is None:
            raise HTTPError(400, "unable to identify destination project")
        existing = store.experiment_by(sess.project, sess.label)
        if existing is not None and existing["project"] != sess.project:
            existing = None  # a shared label is not this project's session
        held = None
        if existing is not None:
            held = existing["id"]
            self._hold(held, "Duplicate archive attempt.  Destination session in use.")
        try:
            if existing is not None and not opts.override:
                with self._mutex:
                    if existing["id"] in self._workflows:
                        raise HTTPError(
                            409,
                            "Session processing may already be in progress: Transfer."
                            "  Concurrent modification is discouraged.",
                        )
            if existing is not None:
                with self._mutex:
                    self._workflows.add(existing["id"])
            try:
                return self._merge(sess, user, opts, existing)
            finally:
                if existing is not None:
                    with self._mutex:
                        self._workflows.discard(existing["id"])
        finally:
            if held is not None:
                self._release(held)

    def _check_conflicts(self, sess: StagedSession, opts: ArchiveOptions, existing) -> dict:
        """`PrearcSessionArchiver.checkForConflicts`; returns {new scan id: archive scan id}."""
        store = self.store
        if not opts.merge:
            raise HTTPError(409, PRE_EXISTS)
        if self.prevent_cross_modality_merge and existing["xsi_type"] != sess.xsi_type:
            raise HTTPError(409, MODALITY_MOD)
        subj = store.subject_by(sess.project, sess.subject)
        if subj is None or existing["subject_id"] != subj["id"]:
            raise HTTPError(
                409, f"{SUBJECT_MOD}: {existing['label']} Already Exists for another Subject"
            )
        if (
            not opts.override
            and existing["uid"]
            and sess.study_uid
            and existing["uid"] != sess.study_uid
        ):
            raise HTTPError(409, UID_MOD)
        old_scans = store.query("SELECT * FROM scans WHERE experiment_id = ?", (existing["id"],))
        by_id = {s["scan_id"]: s for s in old_scans}
        taken = set(by_id)
        ids: dict[str, str] = {}
        for scan in sess.scans.values():
            match = by_id.get(scan.scan_id)
            same_uid = [s for s in old_scans if scan.uid and s["uid"] == scan.uid]
            moved_uid = same_uid and (match is None or match["scan_id"] != scan.scan_id)
            if moved_uid and not opts.override:
                raise HTTPError(
                    409,
                    "Session already contains a scan with the same UID, but a different"
                    f" number ({same_uid[0]['scan_id']}).",
                )
            if match is not None and match["uid"] and match["uid"] != scan.uid:
                # correctScanID: the new series gets `{n}-{modality}{k}`.
                code, k = modality_code(scan.xsi_type), 1
                while f"{scan.scan_id}-{code}{k}" in taken:
                    k += 1
                ids[scan.scan_id] = f"{scan.scan_id}-{code}{k}"
                taken.add(ids[scan.scan_id])
            else:
                ids[scan.scan_id] = scan.scan_id
        if not (opts.override or opts.overwrite_files):
            # MergeSessionsA.checkForConflict: without overwrite permission any file of the
            # same name, else any entry of the same SOPInstanceUID, refuses the whole merge.
            found = {
                overwrite_conflict(
                    self._entries(existing["id"], ids[scan.scan_id]), _incoming(scan)
                )
                for scan in sess.scans.values()
            }
            for reason in (HAS_FILES, CAT_ENTRY_MATCH):
                if reason in found:
                    raise HTTPError(409, reason)
        return ids

    def _entries(self, eid: str, scan_id: str) -> list[Entry]:
        """The catalog entries of an archived scan's DICOM resource."""
        old = self.store.scan(eid, scan_id)
        res = self.store.resource("scan", str(old["pk"]), "DICOM") if old else None
        if res is None:
            return []
        return [Entry(f["path"], f["uid"] or "") for f in self.store.files(res["id"])]

    def _plan(self, sess: StagedSession, ids: dict[str, str], eid: str | None) -> dict:
        """{new scan id: merged entries} for every scan, before any file moves:
        `MergePrearcToArchiveSession.mergeSessions` runs `MergeCatCatalog` with
        allowSessionMerge as its overwrite permission. A catalog conflict fails the archive
        as a server error: `MergeSessionsA.call` wraps what `mergeSessions` throws."""
        plans: dict[str, list[Merged]] = {}
        for scan in sess.scans.values():
            existing = self._entries(eid, ids[scan.scan_id]) if eid else []
            try:
                plans[scan.scan_id] = merge_catalog(
                    existing,
                    _incoming(scan),
                    overwrite=True,
                    use_uid=self.use_sop_instance_uid,
                )
            except CatalogConflict as exc:
                raise HTTPError(500, exc.message) from None
        return plans

    def _merge(self, sess: StagedSession, user: str, opts: ArchiveOptions, existing) -> str:
        store = self.store
        moved: list[Path] = []
        replaced: list[Path] = []
        for scan in sess.scans.values():
            for f in scan.files:
                if not f.uid:  # staged before entries carried their UID
                    f.uid = dicom_instance_uid(Path(f.path))
        try:
            with store.write() as c:
                ids = (
                    {s: s for s in sess.scans}
                    if existing is None
                    else self._check_conflicts(sess, opts, existing)
                )
                plans = self._plan(sess, ids, None if existing is None else existing["id"])
                subj = store.subject_by(sess.project, sess.subject)
                sid = (
                    subj["id"]
                    if subj
                    else store.create_subject(sess.project, sess.subject, user, {})
                )
                if existing is None:
                    eid = store.create_experiment(
                        sess.project,
                        sid,
                        sess.label,
                        sess.xsi_type,
                        user,
                        {"date": sess.date, "UID": sess.study_uid, "modality": sess.modality},
                    )
                else:
                    eid = existing["id"]
                for scan in sess.scans.values():
                    self._archive_scan(
                        c, eid, scan, ids[scan.scan_id], plans[scan.scan_id], moved, replaced
                    )
            for path in replaced:  # MergeCatCatalog.handleFilenameChange: the old name goes
                with contextlib.suppress(OSError):
                    path.unlink()
            return (
                f"/data/archive/projects/{sess.project}/subjects/{sess.subject}"
                f"/experiments/{sess.label}"
            )
        except BaseException:
            for path in moved:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise

    def _archive_scan(
        self,
        c,
        eid: str,
        scan: StagedScan,
        scan_id: str,
        plan: list[Merged],
        moved: list[Path],
        replaced: list[Path],
    ) -> None:
        store = self.store
        old = store.scan(eid, scan_id)
        if old is not None and old["xsi_type"] != scan.xsi_type:
            raise HTTPError(409, f"Scan {scan_id} exists with xsiType {old['xsi_type']}")
        pk = store.upsert_scan(
            eid,
            scan_id,
            scan.xsi_type,
            {"type": scan.type, "series_description": scan.type, "UID": scan.uid},
        )
        rid = store.create_resource("scan", str(pk), "DICOM", "DICOM", "RAW")
        res = store.one("SELECT * FROM resources WHERE id = ?", (rid,))
        root = store.resource_root(res)
        root.mkdir(parents=True, exist_ok=True)
        written = {f.name for f in scan.files}
        for f, merged in zip(scan.files, plan, strict=True):
            dest = root / f.name
            existed = dest.exists()
            os.replace(f.path, dest)
            if not existed:
                moved.append(dest)
            if merged.renames and merged.replaces.name not in written:
                old_name = merged.replaces.name
                c.execute("DELETE FROM files WHERE resource_id = ? AND path = ?", (rid, old_name))
                replaced.append(root / old_name)
            c.execute(
                "INSERT OR REPLACE INTO files (resource_id, path, size, md5, uid)"
                " VALUES (?,?,?,?,?)",
                (rid, f.name, f.size, f.md5, f.uid),
            )
        n = c.execute("SELECT COUNT(*) FROM files WHERE resource_id = ?", (rid,)).fetchone()[0]
        c.execute("UPDATE scans SET frames = ? WHERE pk = ?", (str(n), pk))

    # -- the session importer and XNAT before 1.8.10 -------------------------------------
    def archive(self, sess: StagedSession, user: str, overwrite: str, overwrite_files: bool) -> str:
        """Archiving by the session importer (`SI`) to an archive destination.

        `SessionImporter` reads `overwrite` itself (absent or `none`: no merge; `append`:
        merge; `delete`/`override`: merge and override exceptions, nothing is deleted) and
        `FinishImageUpload` archives inline through `PrearcSessionArchiver`, so the same
        conflict checks and catalog merge apply as for a prearchived session; files may be
        overwritten when asked (`overwrite_files=true`), when the project's code is 5, or
        when exceptions are overridden."""
        if self.store.project(sess.project) is None:
            raise HTTPError(400, f"Project {sess.project} does not exist")
        merge, override = import_flags(None if overwrite == "none" else overwrite)
        opts = ArchiveOptions(
            override=override,
            merge=merge,
            overwrite_files=overwrite_files
            or self.project_code(sess.project) == AUTO_ARCHIVE_OVERWRITE,
        )
        return self._archive(sess, user, opts)

    # -- the rebuild timer ---------------------------------------------------------------
    def rebuild_idle(self, idle_seconds: float, user: str = "admin") -> None:
        """`SessionXMLRebuilder`: idle RECEIVING sessions become READY, then are archived when
        their prearchive code is auto-archive (4 or 5)."""
        store = self.store
        cutoff = time.time() - idle_seconds
        with store.write() as c:
            c.execute(
                "UPDATE prearchive SET status = 'READY', lastmod = ? WHERE"
                " status = 'RECEIVING' AND last_activity <= ?",
                (now_text(), cutoff),
            )
        for row in store.query("SELECT * FROM prearchive WHERE status = 'READY'"):
            code = row["autoarchive"]
            if code in (AUTO_ARCHIVE, AUTO_ARCHIVE_OVERWRITE):
                opts = ArchiveOptions(merge=True, overwrite_files=code == AUTO_ARCHIVE_OVERWRITE)
                with contextlib.suppress(HTTPError):
                    self.archive_prearchived(row, user, opts)

    # -- helpers for the services --------------------------------------------------------
    def project_code(self, project: str) -> int | None:
        proj = self.store.project(project)
        return None if proj is None else int(proj["prearchive_code"])

    def overwrite_files_for(self, row: sqlite3.Row, asked: bool) -> bool:
        """`PrearcSession.isOverwriteFiles`: asked for, or code 5 on the session or project."""
        if asked:
            return True
        return AUTO_ARCHIVE_OVERWRITE in (row["autoarchive"], self.project_code(row["project"]))

    def is_auto_archive(self, row: sqlite3.Row, asked: bool | None) -> bool:
        """`PrearcSession.isAutoArchive`: the session's code, then the request, then the
        project's code (4 or more)."""
        if not row["project"] or row["project"] == UNASSIGNED:
            return False
        if row["autoarchive"] in (AUTO_ARCHIVE, AUTO_ARCHIVE_OVERWRITE):
            return True
        if asked is not None:
            return asked
        code = self.project_code(row["project"])
        return code is not None and code >= AUTO_ARCHIVE
