"""Probe a destination by doing what a transfer does, once, on a scratch subject.

``transfer-check --probe`` answers what the read-only checks cannot: does this server accept
imports the way apply sends them (the same handler, the same query, one series per request,
the second merging into the session the first created), do its listings carry what the
snapshot reads, does it rewrite DICOM headers on import, and does it let everything go again.

The probe writes one subject whose label cannot collide (``xnatctl_probe_<UTC time>_<hex>``)
in the destination project, with one session of two tiny series; it refuses to start when that
label (or the session's) is taken. Whatever happens, it then deletes the subject with
``removeFiles=true`` (its session goes with it) and the prearchive sessions of its study or
labels, and proves they are gone. Nothing else on the server is ever written.
"""

from __future__ import annotations

import secrets
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

from planner import restpaths as rest
from planner.backend import XnatBackend
from planner.errors import BackendError, NotFound
from planner.inventory import Experiment
from planner.prearchive import PrearchiveSession, leftover_note, list_sessions
from planner.preflight import FAIL, INFO, NOT_RUN, PASS, Check
from planner.probedata import ProbeStudy, compare_headers, make_study
from planner.rows import get_listing
from planner.snapshot import EXPERIMENT_COLUMNS, server_version, snapshot_experiment
from planner.steps import describe, import_handler_for, import_query, post_import

SCRATCH_PREFIX = "xnatctl_probe_"
SESSION_SUFFIX = "_MR"
ANONYMIZATION_PATH = "/xapi/anonymize/site/enabled"
# Projects where the user may delete subjects (``DefaultGroupsAndPermissionsCache
# .getProjectsForDatatypeAction``, as ``planner.preflight.may_write`` asks for edit).
DELETABLE_PROJECTS = {"permissions": "delete", "dataType": "xnat:subjectData"}


def scratch_label() -> str:
    """A subject label nobody else uses: the probe's prefix, the UTC time, random hex."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{SCRATCH_PREFIX}{stamp}_{secrets.token_hex(4)}"


class _Stop(Exception):
    """A probe step failed: later steps are reported as not run."""


@dataclass
class _Probe:
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

    def add(self, name: str, status: str, detail: str = "", hint: str = "") -> Check:
        check = Check(f"probe: {name}", status, detail, hint)
        self.checks.append(check)
        return check

    def fail(self, name: str, detail: str, hint: str = "") -> NoReturn:
        self.add(name, FAIL, detail, hint or "see the message; the probe stopped here")
        raise _Stop(name)

    # -- steps ---------------------------------------------------------------------------
    def describe_scope(self) -> None:
        n = sum(len(s.instances) for s in self.study.series)
        self.add(
            "what it writes",
            INFO,
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
            INFO,
            f"{shown}; transfers import with the {self.handler} handler",
        )
        try:
            enabled = self.backend.get_json(ANONYMIZATION_PATH)
        except BackendError as exc:
            self.add(
                "site anonymization",
                INFO,
                f"unknown: GET {ANONYMIZATION_PATH} answered {exc.status or 'nothing'}",
            )
            return
        if isinstance(enabled, bool):
            word = "enabled" if enabled else "disabled"
            self.add("site anonymization", INFO, f"{word} (GET {ANONYMIZATION_PATH})")
        else:
            self.add(
                "site anonymization", INFO, f"unknown: GET {ANONYMIZATION_PATH} gave {enabled!r}"
            )

    def claim_label(self) -> None:
        """Refuse a label that exists: the clean-up would otherwise delete someone's data."""
        name = "scratch subject"
        self._may_delete(name)
        taken: list[str] = []
        for what, path in (("subject", self.subject_path), ("session", self.session_path)):
            try:
                self.backend.get_json(path)
            except NotFound:
                continue
            except BackendError as exc:
                self.fail(
                    name,
                    f"could not tell whether {what} {path} exists ({describe(exc)}); "
                    "nothing was written",
                )
            taken.append(f"{what} {path}")
        try:
            rows = list_sessions(self.backend, self.project)
        except NotFound:
            rows = []
        except BackendError as exc:
            self.fail(name, f"could not read the prearchive ({describe(exc)}); nothing was written")
        taken += [f"prearchive session {s.url}" for s in rows if self._ours(s)]
        if taken:
            self.fail(
                name,
                f"{', '.join(taken)} already exists; the probe refuses to touch it and wrote "
                "nothing",
                "an earlier probe may have been killed before its clean-up: check and delete "
                "it, then run the probe again",
            )
        self.add(name, PASS, f"{self.subject} (session {self.session}) is free in {self.project}")

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
            self.add(name, PASS, f"{detail}; archived as {uri or '(no URI returned)'}")

    def read_back(self) -> Experiment:
        name = "listings carry what the snapshot reads"
        try:
            rows = get_listing(
                self.backend,
                f"{self.subject_path}/experiments",
                {"columns": EXPERIMENT_COLUMNS},
            )
            row = next((r for r in rows if r.get("label", "") == self.session), None)
            if row is None:
                self.fail(name, f"session {self.session} is not in the subject's listing")
            self.experiment_id = str(row.get("ID", ""))
            experiment = snapshot_experiment(self.backend, self.project, self.subject, row)
        except BackendError as exc:
            self.fail(name, f"reading the session back failed: {describe(exc)}")
        missing: list[str] = []
        for series in self.study.series:
            scan = next((s for s in experiment.scans.values() if s.uid == series.uid), None)
            if scan is None:
                missing.append(f"no scan with series UID {series.uid}")
                continue
            dicom = scan.resources.get("DICOM")
            if dicom is None or not dicom.files:
                missing.append(f"scan {scan.id} lists no DICOM files")
                continue
            for f in dicom.files:
                if not f.path or f.size <= 0:
                    missing.append(f"scan {scan.id} file {f.path!r} without a name or size")
        if len(experiment.scans) != len(self.study.series):
            missing.append(
                f"{len(experiment.scans)} scans listed ({', '.join(experiment.scans)}), "
                f"{len(self.study.series)} sent"
            )
        if missing:
            self.fail(name, "; ".join(missing), "the snapshot cannot compare this server's data")
        scans = ", ".join(f"{s.id} (UID {s.uid})" for s in experiment.scans.values())
        self.add(
            name,
            PASS,
            f"session {self.experiment_id}: scans {scans}, each with file names and sizes",
        )
        files = [
            f for s in experiment.scans.values() for r in s.resources.values() for f in r.files
        ]
        if all(f.digest for f in files):
            self.add("MD5 digests in file listings", PASS, f"all {len(files)} files have one")
        else:
            self.add(
                "MD5 digests in file listings",
                INFO,
                "the file listings give no MD5 digests (checksums off): verification compares "
                "sizes only",
            )
        return experiment

    def download_and_compare(self, experiment: Experiment) -> None:
        whole = "both series arrived whole"
        path = self.work / "download.zip"
        try:
            self.backend.download(
                rest.all_scan_files(self.experiment_id),
                path,
                {"format": "zip"},
            )
            with zipfile.ZipFile(path) as zf:
                received = {
                    info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()
                }
        except (BackendError, zipfile.BadZipFile) as exc:
            self.fail(whole, f"downloading the session's DICOM failed: {describe(exc)}")
        report, uids = compare_headers(self.study.instances(), received)
        problems: list[str] = []
        for series in self.study.series:
            scan = next((s for s in experiment.scans.values() if s.uid == series.uid), None)
            sent = sorted(i.name for i in series.instances)
            got = sorted(f.path for f in scan.resources["DICOM"].files) if scan else []
            if got != sent:
                problems.append(f"series {series.number}: sent {sent}, listed {got}")
        sent_uids = {i.sop_instance_uid for i in self.study.instances()}
        got_uids = set(uids.values())
        if got_uids != sent_uids:
            problems.append(
                f"{len(sent_uids - got_uids)} sent SOPInstanceUIDs missing from the download, "
                f"{len(got_uids - sent_uids)} unexpected"
            )
        if report.unreadable:
            problems.append(f"not DICOM in the download: {', '.join(report.unreadable)}")
        if problems:
            self.fail(whole, "; ".join(problems), "transfers of this server would lose instances")
        self.add(
            whole,
            PASS,
            f"{len(received)} files: names and count per scan and every SOPInstanceUID as sent",
        )
        if report.changes:
            changes = "; ".join(c.describe() for c in report.changes)
            self.add(
                "DICOM header rewrite",
                INFO,
                f"this server rewrites DICOM on import: {changes}",
                "transfers compare DICOM by file names and count (the probe checked that each "
                "SOPInstanceUID arrived), so the rewrite is expected; prevent_anon: true in the "
                "transfer config asks the server to skip its site anonymization script",
            )
        else:
            self.add("DICOM header rewrite", INFO, "none: every header arrived as sent")

    # -- clean-up ------------------------------------------------------------------------
    def _ours(self, s: PrearchiveSession) -> bool:
        labels = {self.subject, self.session}
        return (
            s.tag == self.study.study_uid
            or s.folder in labels
            or s.name in labels
            or s.subject == self.subject
        )

    def clean_up(self) -> None:
        """Delete what the probe wrote, then prove it is gone; say what is left otherwise."""
        name = "clean-up"
        if not self.wrote:
            self.add(name, NOT_RUN, "nothing was written")
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
            for s in list_sessions(self.backend, self.project):
                if self._ours(s):
                    try:
                        self.backend.request_text("DELETE", s.path)
                        removed.append(f"prearchive session {s.url}")
                    except NotFound:
                        pass
                    except BackendError as exc:
                        errors.append(f"deleting {s.url} failed: {describe(exc)}")
        except NotFound:
            pass
        except BackendError as exc:
            errors.append(f"reading the prearchive failed: {describe(exc)}")
        left = self._left(server)
        if left:
            detail = "; ".join(errors + left)
            self.add(name, FAIL, detail, "remove what is left with the requests given")
            return
        done = ", ".join(removed) or "nothing was left to remove"
        self.add(
            name,
            PASS,
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
                self.backend.get_json(path)
            except NotFound:
                continue
            except BackendError as exc:
                left.append(f"could not confirm that {what} {path} is gone ({describe(exc)})")
                continue
            left.append(f"{what} {path} is still there; remove it with: {request}")
        try:
            sessions = list_sessions(self.backend, self.project)
        except NotFound:
            sessions = []
        except BackendError as exc:
            left.append(
                f"could not read {self.project}'s prearchive to confirm it holds nothing of "
                f"the probe ({describe(exc)}); check for study {self.study.study_uid}"
            )
            sessions = []
        left += [leftover_note(server, s, "left by the probe") for s in sessions if self._ours(s)]
        return left


def run_probe(backend: XnatBackend, project: str) -> list[Check]:
    """Probe ``project`` on ``backend`` (which must be writable); one ``Check`` per finding."""
    subject = scratch_label()
    with tempfile.TemporaryDirectory(prefix="xnatctl-probe-") as tmp:
        probe = _Probe(
            backend,
            project,
            subject,
            subject + SESSION_SUFFIX,
            make_study(),
            Path(tmp),
        )
        probe.describe_scope()
        try:
            probe.server_facts()
            probe.claim_label()
            probe.import_series()
            experiment = probe.read_back()
            probe.download_and_compare(experiment)
        except _Stop:
            probe.add("remaining steps", NOT_RUN, "an earlier probe step failed")
        except Exception as exc:  # an unexpected error must still leave the server clean
            probe.add("stopped", FAIL, f"the probe stopped unexpectedly: {describe(exc)}")
        finally:
            probe.clean_up()
    return probe.checks
