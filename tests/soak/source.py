"""The soak's source project: seeded once, then changed a little every round.

Every change goes through the source server's REST API, as a user of XNAT would make it, so
later rounds always have new work: a scan added to a session, a new subject with a session,
or a file sent again (a scan's NIfTI with new content, or a series imported again).
"""

from __future__ import annotations

import io
import random
import tempfile
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import pydicom
import requests

from xnatsim.dicomgen import SeriesSpec, StudySpec, write_series_zip, write_study_zip
from xnatsim.seed import SeedSpec, plan_sessions, seed_project

AUTH = ("admin", "admin")
TIMEOUT = 120


@dataclass
class Session:
    subject: str
    label: str
    study: StudySpec


class SourceProject:
    """The source project and the DICOM studies of its imaging sessions."""

    def __init__(self, url: str, project: str, spec: SeedSpec) -> None:
        self.url = url
        self.project = project
        self.spec = spec
        self.http = requests.Session()
        self.http.auth = AUTH
        self.sessions: list[Session] = []
        self.next_subject = spec.subjects + 1
        self.resent = 0

    def seed(self) -> None:
        seed_project(self.url, self.spec, auth=AUTH)
        self.sessions = [Session(p.subject, p.label, p.study) for p in plan_sessions(self.spec)]

    # -- changes ---------------------------------------------------------------------------

    def change(self, rng: random.Random) -> str:
        """Make one random change and describe it."""
        kind = rng.choice(("add_scan", "add_subject", "resend_nifti", "resend_series"))
        return getattr(self, kind)(rng)

    def add_scan(self, rng: random.Random) -> str:
        session = rng.choice(self.sessions)
        last = session.study.series[-1]
        series = replace(
            last,
            series_number=last.series_number + 1,
            description=f"Added_{last.series_number + 1}",
        )
        session.study = replace(session.study, series=(*session.study.series, series))
        self._import(session, series.series_number)
        return f"added scan {series.series_number} to {session.label}"

    def add_subject(self, rng: random.Random) -> str:
        subject = f"SUBJ{self.next_subject:03d}"
        self.next_subject += 1
        modality = rng.choice(self.spec.modalities)
        label = f"{subject}_{modality}1"
        series = tuple(
            SeriesSpec(
                series_number=i + 1,
                description=f"{modality}_{i + 1}",
                modality=modality,
                instances=self.spec.instances_per_scan,
                rows=self.spec.rows,
                cols=self.spec.cols,
            )
            for i in range(rng.randint(1, 2))
        )
        study = StudySpec(
            patient_name=subject,
            patient_id=label,
            study_date=f"2023{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}",
            series=series,
            seed=self.spec.seed,
        )
        self._put(f"/data/projects/{self.project}/subjects/{subject}")
        session = Session(subject, label, study)
        self.sessions.append(session)
        self._import(session, None)
        return f"added subject {subject} with session {label} ({len(series)} scans)"

    def resend_nifti(self, rng: random.Random) -> str:
        """Send a scan's NIfTI again with other content: same name, other size and MD5."""
        session = rng.choice(self.sessions)
        series = rng.choice(session.study.series)
        scan = series.series_number
        name = f"{session.label}_{scan}_{series.description}.nii.gz"
        base = f"/data/projects/{self.project}/subjects/{session.subject}"
        path = f"{base}/experiments/{session.label}/scans/{scan}/resources/NIFTI"
        self._put(path, params={"format": "NIFTI"}, ok=(200, 201, 409))
        body = rng.randbytes(rng.randint(64, 2048))
        self._put(f"{path}/files/{name}", params={"inbody": "true", "overwrite": "true"}, data=body)
        return f"sent {session.label} scan {scan} NIFTI/{name} again ({len(body)} bytes)"

    def resend_series(self, rng: random.Random) -> str:
        """Import a series again over itself with other bytes (a new ImageComments): the same
        instances under the same names, so only remembered digests can see the change."""
        session = rng.choice(self.sessions)
        series = rng.choice(session.study.series).series_number
        self.resent += 1
        self._import(session, series, comment=f"sent again ({self.resent})")
        return f"sent {session.label} series {series} again with new ImageComments"

    # -- requests --------------------------------------------------------------------------

    def _import(self, session: Session, series: int | None, comment: str = "") -> None:
        with tempfile.TemporaryDirectory(prefix="soak-src-") as tmp:
            zip_path = Path(tmp) / "study.zip"
            if series is None:
                write_study_zip(session.study, zip_path)
            else:
                write_series_zip(session.study, series, zip_path)
            if comment:
                _comment_zip(zip_path, comment)
            with zip_path.open("rb") as body:
                reply = self.http.post(
                    f"{self.url}/data/services/import",
                    params={
                        "import-handler": "DICOM-zip",
                        "PROJECT_ID": self.project,
                        "SUBJECT_ID": session.subject,
                        "EXPT_LABEL": session.label,
                        "dest": "/archive",
                        "overwrite": "append",
                        "overwrite_files": "true",
                    },
                    data=body,
                    headers={"Content-Type": "application/zip"},
                    timeout=TIMEOUT,
                )
        if reply.status_code != 200:
            raise RuntimeError(f"source import of {session.label} failed: {reply.status_code}")

    def _put(
        self,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> None:
        reply = self.http.put(f"{self.url}{path}", params=params, data=data, timeout=TIMEOUT)
        if reply.status_code not in ok:
            raise RuntimeError(f"PUT {path} on the source: {reply.status_code} {reply.text[:200]}")


def _comment_zip(zip_path: Path, comment: str) -> None:
    """Set ImageComments in every DICOM file of the zip, keeping names and UIDs."""
    rewritten = zip_path.with_suffix(".new.zip")
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(rewritten, "w") as dst:
        for info in src.infolist():
            ds = pydicom.dcmread(io.BytesIO(src.read(info)))
            ds.ImageComments = comment
            out = io.BytesIO()
            ds.save_as(out, enforce_file_format=True)
            dst.writestr(info, out.getvalue())
    rewritten.replace(zip_path)
