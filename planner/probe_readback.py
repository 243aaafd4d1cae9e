"""The probe's read-back checks: the listings carry what the snapshot reads (scans by series
UID, files with names and sizes, MD5 digests or not), and the download gives back every
instance sent, noting how the server rewrote DICOM headers on import.
"""

from __future__ import annotations

import zipfile

from planner import restpaths as rest
from planner.errors import BackendError
from planner.inventory import Experiment
from planner.probe_scratch import ProbeScratch
from planner.probedata import compare_headers
from planner.rows import get_listing
from planner.snapshot import EXPERIMENT_COLUMNS, snapshot_experiment
from planner.statuses import CheckStatus
from planner.steps import describe

__all__ = ["ReadBack"]


class ReadBack(ProbeScratch):
    """The steps that read the scratch session back."""

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
            CheckStatus.PASS,
            f"session {self.experiment_id}: scans {scans}, each with file names and sizes",
        )
        files = [
            f for s in experiment.scans.values() for r in s.resources.values() for f in r.files
        ]
        if all(f.digest for f in files):
            self.add(
                "MD5 digests in file listings", CheckStatus.PASS, f"all {len(files)} files have one"
            )
        else:
            self.add(
                "MD5 digests in file listings",
                CheckStatus.INFO,
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
            CheckStatus.PASS,
            f"{len(received)} files: names and count per scan and every SOPInstanceUID as sent",
        )
        if report.changes:
            changes = "; ".join(c.describe() for c in report.changes)
            self.add(
                "DICOM header rewrite",
                CheckStatus.INFO,
                f"this server rewrites DICOM on import: {changes}",
                "transfers compare DICOM by file names and count (the probe checked that each "
                "SOPInstanceUID arrived), so the rewrite is expected; prevent_anon: true in the "
                "transfer config asks the server to skip its site anonymization script",
            )
        else:
            self.add("DICOM header rewrite", CheckStatus.INFO, "none: every header arrived as sent")
