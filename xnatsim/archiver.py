"""Moving staged sessions into the prearchive and from there into the archive."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

from xnatsim.importer import Routing, StagedFile, StagedScan, StagedSession
from xnatsim.store import Store, now_text
from xnatsim.web import HTTPError


class Archiver:
    """Moves staged sessions into the archive or the prearchive under the store's lock."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- archive -------------------------------------------------------------------------
    def archive(self, sess: StagedSession, user: str, overwrite: str, overwrite_files: bool) -> str:
        store = self.store
        moved: list[Path] = []
        try:
            with store.write() as c:
                if store.project(sess.project) is None:
                    raise HTTPError(400, f"Project {sess.project} does not exist")
                exp = store.experiment_by(sess.project, sess.label)
                subj = store.subject_by(sess.project, sess.subject)
                if exp is not None:
                    if overwrite == "none":
                        raise HTTPError(409, "Session already exists, retry with overwrite enabled")
                    if exp["uid"] and sess.study_uid and exp["uid"] != sess.study_uid:
                        raise HTTPError(
                            409,
                            f"Session {sess.label} already exists with a "
                            "different study instance UID",
                        )
                    if subj is None or exp["subject_id"] != subj["id"]:
                        raise HTTPError(
                            409, f"Session {sess.label} already exists for another subject"
                        )
                    if overwrite == "delete":
                        store.delete_experiment(exp, remove_files=True)
                        exp = None
                    elif not overwrite_files:
                        for scan in sess.scans.values():
                            old = store.scan(exp["id"], scan.scan_id)
                            if old is not None:
                                raise HTTPError(
                                    409,
                                    f"Scan {scan.scan_id} already exists in session "
                                    f"{sess.label}; retry with overwrite_files=true",
                                )
                sid = (
                    subj["id"]
                    if subj
                    else store.create_subject(sess.project, sess.subject, user, {})
                )
                if exp is None:
                    eid = store.create_experiment(
                        sess.project,
                        sid,
                        sess.label,
                        sess.xsi_type,
                        user,
                        {"date": sess.date, "UID": sess.study_uid, "modality": sess.modality},
                    )
                else:
                    eid = exp["id"]
                for scan in sess.scans.values():
                    self._archive_scan(c, eid, scan, moved)
            return (
                f"/data/archive/projects/{sess.project}/subjects/{sess.subject}"
                f"/experiments/{sess.label}"
            )
        except BaseException:
            for path in moved:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise

    def _archive_scan(self, c, eid: str, scan: StagedScan, moved: list[Path]) -> None:
        store = self.store
        old = store.scan(eid, scan.scan_id)
        if old is not None and old["xsi_type"] != scan.xsi_type:
            raise HTTPError(409, f"Scan {scan.scan_id} exists with xsiType {old['xsi_type']}")
        pk = store.upsert_scan(
            eid,
            scan.scan_id,
            scan.xsi_type,
            {"type": scan.type, "series_description": scan.type, "UID": scan.uid},
        )
        rid = store.create_resource("scan", str(pk), "DICOM", "DICOM", "RAW")
        res = store.one("SELECT * FROM resources WHERE id = ?", (rid,))
        root = store.resource_root(res)
        root.mkdir(parents=True, exist_ok=True)
        for f in scan.files:
            dest = root / f.name
            existed = dest.exists()
            os.replace(f.path, dest)
            if not existed:
                moved.append(dest)
            c.execute("INSERT OR REPLACE INTO files VALUES (?,?,?,?)", (rid, f.name, f.size, f.md5))
        n = c.execute("SELECT COUNT(*) FROM files WHERE resource_id = ?", (rid,)).fetchone()[0]
        c.execute("UPDATE scans SET frames = ? WHERE pk = ?", (str(n), pk))

    # -- prearchive ----------------------------------------------------------------------
    def prearchive(self, sess: StagedSession) -> str:
        """Land a session in the prearchive, merging into a RECEIVING one of the same study."""
        store = self.store
        with store.write() as c:
            row = c.execute(
                "SELECT * FROM prearchive WHERE project = ? AND tag = ? AND folder = ?"
                " AND status = 'RECEIVING'",
                (sess.project, sess.study_uid, sess.label),
            ).fetchone()
            if row is None:
                ts = datetime.now().strftime("%Y%m%d_%H%M%S%f")[:-3]
                current = StagedSession(
                    sess.study_uid, sess.project, sess.subject, sess.label, sess.modality, sess.date
                )
                folder = sess.label
            else:
                ts, folder = row["timestamp"], row["folder"]
                current = StagedSession.from_json(row["manifest"])
            base = store.prearchive_dir / sess.project / ts / folder
            for scan in sess.scans.values():
                target = current.scans.setdefault(
                    scan.scan_id, StagedScan(scan.scan_id, scan.xsi_type, scan.type, scan.uid)
                )
                sdir = base / "SCANS" / scan.scan_id / "DICOM"
                sdir.mkdir(parents=True, exist_ok=True)
                for f in scan.files:
                    dest = sdir / f.name
                    os.replace(f.path, dest)
                    target.files = [x for x in target.files if x.name != f.name]
                    target.files.append(
                        StagedFile(f.name, str(dest.relative_to(store.data_dir)), f.size, f.md5)
                    )
            stamp = now_text()
            c.execute(
                "INSERT OR REPLACE INTO prearchive (project, timestamp, folder, status, subject,"
                " label, tag, scan_date, uploaded, lastmod, last_activity, manifest)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    sess.project,
                    ts,
                    folder,
                    "RECEIVING",
                    sess.subject,
                    sess.label,
                    sess.study_uid,
                    sess.date,
                    row["uploaded"] if row else stamp,
                    stamp,
                    time.time(),
                    current.to_json(),
                ),
            )
        return f"/data/prearchive/projects/{sess.project}/{ts}/{folder}"

    def archive_prearchived(
        self, row, user: str, overwrite: str, overwrite_files: bool, routing: Routing | None = None
    ) -> str:
        store = self.store
        sess = StagedSession.from_json(row["manifest"])
        for scan in sess.scans.values():
            for f in scan.files:
                f.path = str(store.data_dir / f.path)
        if routing:
            sess.project = routing.project or sess.project
            sess.subject = routing.subject or sess.subject
            sess.label = routing.session or sess.label
        with store.write() as c:
            c.execute(
                "UPDATE prearchive SET status = 'ARCHIVING' WHERE project = ? AND"
                " timestamp = ? AND folder = ?",
                (row["project"], row["timestamp"], row["folder"]),
            )
        try:
            uri = self.archive(sess, user, overwrite, overwrite_files)
        except HTTPError:
            with store.write() as c:
                c.execute(
                    "UPDATE prearchive SET status = 'CONFLICT' WHERE project = ? AND"
                    " timestamp = ? AND folder = ?",
                    (row["project"], row["timestamp"], row["folder"]),
                )
            raise
        with store.write() as c:
            c.execute(
                "DELETE FROM prearchive WHERE project = ? AND timestamp = ? AND folder = ?",
                (row["project"], row["timestamp"], row["folder"]),
            )
        shutil.rmtree(store.prearchive_dir / row["project"] / row["timestamp"], ignore_errors=True)
        return uri

    def rebuild_idle(self, idle_seconds: float, user: str = "admin") -> None:
        """The prearchive's periodic task: idle RECEIVING sessions become READY, then may
        be auto-archived according to the project's prearchive code."""
        store = self.store
        cutoff = time.time() - idle_seconds
        with store.write() as c:
            c.execute(
                "UPDATE prearchive SET status = 'READY', lastmod = ? WHERE"
                " status = 'RECEIVING' AND last_activity <= ?",
                (now_text(), cutoff),
            )
        for row in store.query("SELECT * FROM prearchive WHERE status = 'READY'"):
            proj = store.project(row["project"])
            code = proj["prearchive_code"] if proj else 0
            if code in (4, 5):
                with contextlib.suppress(HTTPError):
                    self.archive_prearchived(
                        row, user, "append" if code == 5 else "none", code == 5
                    )
