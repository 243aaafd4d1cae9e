"""What the soak checks after every round, read independently of xnatctl's own code.

The destination is read over plain REST and compared with the source file by file, by the
project's rule: a scan's DICOM files by name and count and each file's SOPInstanceUID (the
destination's anonymization script rewrites other header tags, so not by bytes), every other
file by its path, size and MD5. The state DB is read with sqlite3.
"""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import requests

from planner.state import pid_alive

AUTH = ("admin", "admin")
TIMEOUT = 120
Key = tuple[str, ...]


@dataclass
class Side:
    """One project on one server, flattened: every file under a key that names it the same
    way on both servers, with the value it is compared by, and every scan's series UIDs."""

    files: dict[Key, list[str]] = field(default_factory=dict)
    scans: dict[tuple[str, str], str] = field(default_factory=dict)  # (session, ID) -> UID
    prearchive: int = 0

    def add(self, key: Key, value: str) -> None:
        self.files.setdefault(key, []).append(value)


@dataclass
class Comparison:
    lost: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    files_checked: int = 0
    scans_checked: int = 0
    prearchive_leftovers: int = 0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.differing or self.duplicated or self.extra)


def _rows(http: requests.Session, url: str) -> list[dict[str, str]]:
    reply = http.get(url, params={"format": "json"}, timeout=TIMEOUT)
    reply.raise_for_status()
    return reply.json()["ResultSet"]["Result"]


def _relpath(uri: str) -> str:
    return uri.split("/files/", 1)[1]


def _plain_files(side: Side, http: requests.Session, url: str, *owner: str) -> None:
    for row in _rows(http, f"{url}/files"):
        key = ("file", *owner, row["collection"], _relpath(row["URI"]))
        side.add(key, f"size={row['Size']} md5={row.get('digest', '')}")


def _dicom(side: Side, http: requests.Session, base: str, session: str, scan: str) -> None:
    reply = http.get(
        f"{base}/scans/{scan}/resources/DICOM/files", params={"format": "zip"}, timeout=TIMEOUT
    )
    reply.raise_for_status()
    series: set[str] = set()
    with zipfile.ZipFile(io.BytesIO(reply.content)) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            ds = pydicom.dcmread(io.BytesIO(zf.read(info)), stop_before_pixels=True)
            side.add(("dicom", session, scan, Path(info.filename).name), str(ds.SOPInstanceUID))
            series.add(str(ds.SeriesInstanceUID))
    side.scans[(session, scan)] = ",".join(sorted(series))


def read_side(url: str, project: str) -> Side:
    """Everything of ``project`` on ``url`` the soak compares."""
    http = requests.Session()
    http.auth = AUTH
    side = Side()
    base = f"{url}/data/projects/{project}"
    _plain_files(side, http, base, "project")
    for subject in _rows(http, f"{base}/subjects"):
        side.add(("subject", subject["label"]), "")
        _plain_files(side, http, f"{url}{subject['URI']}", "subject", subject["label"])
    for exp in _rows(http, f"{base}/experiments"):
        label, uri = exp["label"], f"{url}{exp['URI']}"
        side.add(("experiment", label), exp["xsiType"])
        _plain_files(side, http, uri, "experiment", label)
        if not exp["xsiType"].endswith("SessionData"):
            continue
        for assessor in _rows(http, f"{uri}/assessors"):
            side.add(("assessor", label, assessor["label"]), assessor["xsiType"])
            _plain_files(side, http, f"{url}{assessor['URI']}", "assessor", assessor["label"])
        has_dicom: set[str] = set()
        for row in _rows(http, f"{uri}/scans/ALL/files"):
            scan = row["URI"].split("/scans/", 1)[1].split("/", 1)[0]
            if row["collection"] == "DICOM":
                has_dicom.add(scan)
                continue
            key = ("file", "scan", label, scan, row["collection"], _relpath(row["URI"]))
            side.add(key, f"size={row['Size']} md5={row.get('digest', '')}")
        for scan in _rows(http, f"{uri}/scans"):
            side.add(("scan", label, scan["ID"]), scan["xsiType"])
            if scan["ID"] in has_dicom:
                _dicom(side, http, uri, label, scan["ID"])
    side.prearchive = len(_rows(http, f"{url}/data/prearchive/projects/{project}"))
    return side


def compare(src: Side, dst: Side) -> Comparison:
    """Lost: on the source, not on the destination. Differing: on both, not equal by the rule.
    Duplicated: twice on the destination (a file under one name, or a scan's series under two
    IDs). Extra: on the destination only."""
    out = Comparison(prearchive_leftovers=dst.prearchive)
    for key, values in src.files.items():
        theirs = dst.files.get(key)
        out.files_checked += key[0] in ("file", "dicom")
        if theirs is None:
            out.lost.append("/".join(key))
        elif sorted(set(theirs)) != sorted(set(values)):
            out.differing.append(f"{'/'.join(key)}: source {values}, destination {theirs}")
    for key, values in dst.files.items():
        if len(values) > 1:
            out.duplicated.append(f"{'/'.join(key)} x{len(values)}")
        if key not in src.files:
            out.extra.append("/".join(key))
    out.scans_checked = len(src.scans)
    per_session = Counter((session, uid) for (session, _), uid in dst.scans.items())
    for (session, uid), count in per_session.items():
        if count > 1:
            ids = [s for (sess, s), u in dst.scans.items() if sess == session and u == uid]
            out.duplicated.append(f"scan series {uid} of {session} under IDs {ids}")
    return out


@dataclass
class StateCheck:
    runs: int = 0
    dead_locks: int = 0
    problems: list[str] = field(default_factory=list)


def runs_left_running(path: Path) -> int:
    """Runs marked running: right after a SIGKILL, the killed run if apply had started it."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchone()[0]
    finally:
        db.close()


def check_state_db(path: Path) -> StateCheck:
    """Runs, steps and history agree: no run left running, every run ended or interrupted,
    a finished run's step rows add up to its recorded counts, the latest status of every step
    is the one its run recorded, and no live process holds a lock."""
    out = StateCheck()
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        runs = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        out.runs = len(runs)
        for run in runs:
            rid, status = run["id"], run["status"]
            steps = Counter(
                r["status"] for r in db.execute("SELECT status FROM steps WHERE run_id = ?", (rid,))
            )
            if status == "running":
                out.problems.append(f"run {rid} is left running")
                continue
            if not run["ended_at"] and status != "interrupted":
                out.problems.append(f"run {rid} ({status}) has no end")
            if status in ("completed", "failed"):
                counts = json.loads(run["counts"] or "{}")
                ran = steps["done"] + steps["failed"]
                if counts.get("steps_run") != ran:
                    out.problems.append(
                        f"run {rid} ({status}) counts steps_run={counts.get('steps_run')} "
                        f"but has {ran} done or failed steps ({dict(steps)})"
                    )
                if len(counts.get("failed_steps", [])) != steps["failed"]:
                    out.problems.append(
                        f"run {rid} lists {len(counts.get('failed_steps', []))} failed steps "
                        f"but has {steps['failed']} failed step rows"
                    )
                if steps["running"] or steps["pending"]:
                    out.problems.append(f"run {rid} ({status}) has unfinished steps {dict(steps)}")
            if status == "completed" and steps["failed"]:
                out.problems.append(f"run {rid} completed with {steps['failed']} failed steps")
        latest = db.execute(
            "SELECT s.step_id, s.run_id, s.status, h.status AS recorded FROM step_status s"
            " LEFT JOIN steps h ON h.run_id = s.run_id AND h.step_id = s.step_id"
        ).fetchall()
        for row in latest:
            if row["recorded"] != row["status"]:
                out.problems.append(
                    f"step {row['step_id']}: latest status {row['status']} but run "
                    f"{row['run_id']} recorded {row['recorded']}"
                )
        # Every command has ended, so no lock may be held by a live process. A lock of a
        # killed process stays until the next apply takes it over (as documented), so it is
        # counted, not failed.
        for lock in db.execute("SELECT owner, host, pid, operation FROM locks").fetchall():
            if lock["host"] == socket.gethostname() and not pid_alive(lock["pid"]):
                out.dead_locks += 1
            else:
                out.problems.append(f"lock left behind by a live process: {dict(lock)}")
    finally:
        db.close()
    return out
