"""Fill a project with sample data through the public REST API, as a real site would be filled.

Seeding only talks HTTP, so the same code fills an xnatsim server or a real XNAT, and every
byte goes through the import and upload paths the transfer tool later reads back. Sessions are
generated into a temporary zip one at a time per worker and streamed from disk, so gigabyte
projects never sit in memory.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import random
import re
import struct
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import requests

from xnatsim.dicomgen import SeriesSpec, StudySpec, write_study_zip

SERIES_POOLS = {
    "MR": ("Localizer", "T1w_MPRAGE", "T2w_SPACE", "FLAIR", "rsfMRI", "DWI", "SWI", "ASL"),
    "CT": ("Scout", "CT_HEAD", "CT_CHEST", "CT_ABDOMEN", "CT_PELVIS", "CT_ANGIO"),
    "PT": ("PET_AC", "PET_NAC", "PET_CT_LowDose"),
    "OT": ("Secondary_Capture",),
}
SESSION_TYPES = {
    "MR": "xnat:mrSessionData",
    "CT": "xnat:ctSessionData",
    "PT": "xnat:petSessionData",
    "OT": "xnat:otherDicomSessionData",
}
SUBJECT_ASSESSOR_TYPE = "clin:clinicalAssessmentData"
"""A non-imaging subject assessor type as clinical-data plugins define them."""
SESSION_ASSESSOR_TYPE = "xnat:qcAssessmentData"
RENAMED_SCAN = 3
"""Series number of the scan whose type is renamed after import (differs from its
SeriesDescription), as sites do when they tidy scan types."""
SHARED_SUFFIX = "_PARTNER"
"""The second project a shared subject comes from: ``{project}_PARTNER``."""

TIMEOUT = (10, 3600)  # connect, read: a gigabyte import may take a while to archive


class SeedError(RuntimeError):
    """A seeding request failed; the message names the request and the server's reason."""


@dataclass(frozen=True)
class SeedSpec:
    project: str
    subjects: int = 2
    sessions_per_subject: int = 1
    scans_per_session: int = 3
    instances_per_scan: int = 2
    rows: int = 64
    cols: int = 64
    modalities: tuple[str, ...] = ("MR", "CT")
    seed: int = 0
    extras: bool = True  # non-DICOM resources, assessors, and the metadata fields below
    shared: bool = False  # a subject (and its session) shared in from {project}_PARTNER


@dataclass(frozen=True)
class SeedReport:
    project: str
    subjects: int
    sessions: int
    scans: int
    files: int
    bytes: int

    def summary(self) -> str:
        return (
            f"Seeded project {self.project}: {self.subjects} subjects, {self.sessions} "
            f"sessions, {self.scans} scans, {self.files} files, {self.bytes} bytes"
        )


@dataclass(frozen=True)
class SubjectPlan:
    label: str
    demographics: dict[str, str]
    custom: dict[str, str] = field(default_factory=dict)  # custom subject fields


def subject_params(plan: SubjectPlan) -> dict[str, str]:
    params = dict(plan.demographics)
    for name, value in plan.custom.items():
        params[f"xnat:subjectData/fields/field[name={name}]/field"] = value
    return params


def session_fields(plan: SessionPlan) -> dict[str, str]:
    """The session fields the seed sets after import (none of them comes from DICOM)."""
    xsi = SESSION_TYPES.get(plan.modality, SESSION_TYPES["OT"])
    number = plan.label.rsplit(plan.modality, 1)[-1] or "1"
    return {
        "visit_id": f"V{number}",
        "note": f"{plan.modality} session {number} of {plan.subject}",
        f"{xsi}/acquisition_site": "Site North",
        f"{xsi}/fields/field[name=protocol_version]/field": "2.1",
    }


@dataclass(frozen=True)
class SessionPlan:
    subject: str
    label: str
    modality: str
    study: StudySpec


@dataclass
class _Tally:
    """Counts shared by the worker threads."""

    files: int = 0
    bytes: int = 0
    scans: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, files: int = 0, nbytes: int = 0, scans: int = 0) -> None:
        with self.lock:
            self.files += files
            self.bytes += nbytes
            self.scans += scans


# -- the plan: pure functions of the spec --------------------------------------------------------
def subject_label(index: int) -> str:
    return f"SUBJ{index + 1:03d}"


def series_for(modality: str, count: int, spec: SeedSpec) -> tuple[SeriesSpec, ...]:
    pool = SERIES_POOLS.get(modality, SERIES_POOLS["OT"])
    out = []
    for i in range(count):
        base = pool[i % len(pool)]
        desc = base if i < len(pool) else f"{base}_{i // len(pool) + 1}"
        out.append(
            SeriesSpec(
                series_number=i + 1,
                description=desc,
                modality=modality,
                instances=spec.instances_per_scan,
                rows=spec.rows,
                cols=spec.cols,
            )
        )
    return tuple(out)


def plan_subjects(spec: SeedSpec) -> list[SubjectPlan]:
    out = []
    for i in range(spec.subjects):
        rng = random.Random(f"{spec.seed}/subject/{i}")
        demographics = {
            "gender": rng.choice(("male", "female")),
            "yob": str(rng.randint(1940, 2005)),
            "handedness": rng.choices(("right", "left", "ambidextrous"), (8, 2, 1))[0],
            "group": rng.choice(("control", "patient")),
        }
        custom = {"study_arm": rng.choice(("A", "B"))}
        out.append(SubjectPlan(subject_label(i), demographics, custom))
    return out


def plan_sessions(spec: SeedSpec) -> list[SessionPlan]:
    if not spec.modalities:
        raise ValueError("SeedSpec.modalities must name at least one modality")
    out = []
    k = 0
    for i in range(spec.subjects):
        subject = subject_label(i)
        per_modality: dict[str, int] = {}
        for _ in range(spec.sessions_per_subject):
            modality = spec.modalities[k % len(spec.modalities)].upper()
            k += 1
            per_modality[modality] = per_modality.get(modality, 0) + 1
            label = f"{subject}_{modality}{per_modality[modality]}"
            rng = random.Random(f"{spec.seed}/session/{label}")
            date = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500))
            study = StudySpec(
                patient_name=subject,
                patient_id=label,
                study_date=date.strftime("%Y%m%d"),
                series=series_for(modality, spec.scans_per_session, spec),
                seed=spec.seed,
                project_hint=spec.project,
                subject_hint=subject,
                session_hint=label,
            )
            out.append(SessionPlan(subject, label, modality, study))
    return out


# -- small deterministic extra files -------------------------------------------------------------
def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit greyscale PNG; enough of a snapshot for a viewer or a digest."""
    height, width = image.shape
    rows = b"".join(b"\0" + image[y].astype(np.uint8).tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 6))
        + chunk(b"IEND", b"")
    )


def nifti_gz_bytes(volume: np.ndarray) -> bytes:
    """A gzipped NIfTI-1 image (int16) with a fixed gzip timestamp so digests are stable."""
    nx, ny, nz = volume.shape
    header = bytearray(348)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # datatype int16, bitpix
    struct.pack_into("<8f", header, 76, 1.0, 1.0, 1.0, 1.0, 0, 0, 0, 0)
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    header[344:348] = b"n+1\0"
    data = bytes(header) + b"\0\0\0\0" + volume.astype("<i2").tobytes(order="F")
    return gzip.compress(data, compresslevel=6, mtime=0)


def _rng(spec: SeedSpec, *parts: object) -> np.random.Generator:
    key = "/".join(map(str, (spec.seed, *parts))).encode()
    return np.random.default_rng(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def scan_extras(spec: SeedSpec, session: str, scan: SeriesSpec) -> dict[str, dict[str, bytes]]:
    """The files of a scan's NIFTI and SNAPSHOTS resources."""
    rng = _rng(spec, session, scan.series_number)
    depth = max(1, min(scan.instances, 16))
    volume = rng.integers(0, 1000, size=(16, 16, depth), dtype=np.int16)
    nifti = {f"{session}_{scan.series_number}_{scan.description}.nii.gz": nifti_gz_bytes(volume)}
    image = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
    snapshots = {
        f"{session}_{scan.series_number}_qc.png": png_bytes(image),
        f"{session}_{scan.series_number}_qc_t.png": png_bytes(image[::2, ::2]),
    }
    return {"NIFTI": nifti, "SNAPSHOTS": snapshots}


def zip_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def scan_fields(scan: SeriesSpec) -> dict[str, str]:
    """Fields the seed sets on a scan after import: a quality and note on the first scan,
    and a renamed type (no longer its SeriesDescription) on scan ``RENAMED_SCAN``."""
    if scan.series_number == 1:
        return {"quality": "questionable", "note": "motion in the last volumes"}
    if scan.series_number == RENAMED_SCAN:
        return {"type": f"{scan.description} (renamed)"}
    return {}


# -- HTTP ---------------------------------------------------------------------------------------
def _reason(resp: requests.Response) -> str:
    match = re.search(r"<h3>(.*?)</h3>", resp.text or "", re.S)
    text = match.group(1) if match else (resp.text or "").strip()
    return text[:300] or resp.reason or ""


class _Client:
    """One requests session per thread against one server."""

    def __init__(self, url: str, auth: tuple[str, str]) -> None:
        self.base = url.rstrip("/")
        self.auth = auth
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self.auth
            session.headers["User-Agent"] = "xnatsim-seed"
            self._local.session = session
        return session

    def call(
        self, method: str, path: str, ok: tuple[int, ...] = (200, 201), **kwargs
    ) -> requests.Response:
        try:
            resp = self._session().request(method, self.base + path, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise SeedError(f"{method} {path} failed: {type(exc).__name__}: {exc}") from None
        if resp.status_code not in ok:
            hint = ""
            if resp.status_code in (401, 403):
                hint = " (check the user name and password, and that the user may write here)"
            raise SeedError(f"{method} {path} returned {resp.status_code}: {_reason(resp)}{hint}")
        return resp


def _q(label: str) -> str:
    return quote(label, safe="")


class _Seeder:
    def __init__(self, client: _Client, spec: SeedSpec, progress: Callable[[str], None]) -> None:
        self.client = client
        self.spec = spec
        self.progress = progress
        self.tally = _Tally()
        self.project_path = f"/data/projects/{_q(spec.project)}"

    def ensure_project(self) -> None:
        resp = self.client.call("GET", self.project_path, ok=(200, 404), params={"format": "json"})
        if resp.status_code == 404:
            self.client.call(
                "PUT",
                self.project_path,
                params={"name": self.spec.project, "description": "Sample data from xnatsim"},
            )
            self.progress(f"created project {self.spec.project}")

    def upload(self, owner_path: str, resource: str, files: dict[str, bytes], **params) -> None:
        """Create a resource folder (tolerating an existing one) and upload files into it."""
        res_path = f"{owner_path}/resources/{_q(resource)}"
        self.client.call("PUT", res_path, ok=(200, 201, 409), params=params)
        for name, data in files.items():
            self.client.call(
                "PUT",
                f"{res_path}/files/{quote(name)}",
                params={"inbody": "true"},
                data=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            self.tally.add(files=1, nbytes=len(data))

    def upload_extracted(self, owner_path: str, resource: str, files: dict[str, bytes]) -> None:
        """Upload files as one zip that the server unpacks into the resource."""
        res_path = f"{owner_path}/resources/{_q(resource)}"
        self.client.call("PUT", res_path, ok=(200, 201, 409), params={"format": "PNG"})
        self.client.call(
            "PUT",
            f"{res_path}/files/{_q(resource.lower())}.zip",
            params={"extract": "true"},
            data=zip_bytes(files),
            headers={"Content-Type": "application/zip"},
        )
        self.tally.add(files=len(files), nbytes=sum(map(len, files.values())))

    def shared_subject(self) -> None:
        """A subject with a session in ``{project}_PARTNER``, shared into the project."""
        partner = self.spec.project + SHARED_SUFFIX
        partner_path = f"/data/projects/{_q(partner)}"
        resp = self.client.call("GET", partner_path, ok=(200, 404), params={"format": "json"})
        if resp.status_code == 404:
            self.client.call("PUT", partner_path, params={"name": partner})
        label = "PARTNER001"
        subject_path = f"{partner_path}/subjects/{label}"
        self.client.call(
            "PUT", subject_path, params={"gender": "female", "yob": "1975", "group": "partner"}
        )
        session = f"{label}_MR1"
        study = StudySpec(
            patient_name=label,
            patient_id=session,
            study_date="20210315",
            series=series_for("MR", 1, self.spec),
            seed=self.spec.seed,
            project_hint=partner,
            subject_hint=label,
            session_hint=session,
        )
        with tempfile.TemporaryDirectory(prefix="xnatsim-seed-") as tmp:
            zip_path = Path(tmp) / f"{session}.zip"
            write_study_zip(study, zip_path)
            with zip_path.open("rb") as body:
                self.client.call(
                    "POST",
                    "/data/services/import",
                    params={
                        "import-handler": "DICOM-zip",
                        "PROJECT_ID": partner,
                        "SUBJECT_ID": label,
                        "EXPT_LABEL": session,
                        "dest": "/archive",
                        "overwrite": "append",
                        "overwrite_files": "true",
                    },
                    data=body,
                    headers={"Content-Type": "application/zip"},
                )
        into = f"projects/{_q(self.spec.project)}"
        self.client.call("PUT", f"{subject_path}/{into}", ok=(200, 201, 409))
        self.client.call("PUT", f"{subject_path}/experiments/{session}/{into}", ok=(200, 201, 409))
        self.progress(f"shared {label} and {session} from {partner}")

    def project_extras(self) -> None:
        text = (
            f"Acquisition protocol for {self.spec.project}.\n"
            "MR: localizer, T1w MPRAGE 1 mm iso, T2w SPACE, FLAIR, rsfMRI, DWI.\n"
            "CT: scout, non-contrast head and chest.\n"
        ).encode()
        self.upload(
            self.project_path,
            "PROTOCOL",
            {"protocol.txt": text, "README.txt": b"Sample project made by xnatsim seed.\n"},
            format="TXT",
            content="protocol",
        )

    def subject(self, plan: SubjectPlan) -> None:
        path = f"{self.project_path}/subjects/{_q(plan.label)}"
        if not self.spec.extras:
            self.client.call("PUT", path, params=plan.demographics)
            return
        self.client.call("PUT", path, params=subject_params(plan))
        consent = f"Subject {plan.label} consented to data sharing.\n".encode()
        self.upload(path, "CONSENT", {"consent_form.txt": consent}, format="TXT")
        rng = random.Random(f"{self.spec.seed}/assessor/{plan.label}")
        date = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 1500))
        clin = f"{path}/experiments/{_q(plan.label)}_CLIN1"
        self.client.call(
            "PUT",
            clin,
            params={
                "xsiType": SUBJECT_ASSESSOR_TYPE,
                "date": date.isoformat(),
                "note": "baseline clinical assessment",
                f"{SUBJECT_ASSESSOR_TYPE}/fields/field[name=moca]/field": str(rng.randint(20, 30)),
            },
        )
        form = f"Clinical form of {plan.label}, {date.isoformat()}.\n".encode()
        self.upload(clin, "FORMS", {"clinical_form.txt": form}, format="TXT")

    def session(self, plan: SessionPlan, workdir: Path) -> None:
        spec = self.spec
        zip_path = workdir / f"{plan.label}.zip"
        try:
            write_study_zip(plan.study, zip_path)
            with zipfile.ZipFile(zip_path) as zf:
                infos = zf.infolist()
            dicom_bytes = sum(i.file_size for i in infos)
            with zip_path.open("rb") as body:
                self.client.call(
                    "POST",
                    "/data/services/import",
                    params={
                        "import-handler": "DICOM-zip",
                        "PROJECT_ID": spec.project,
                        "SUBJECT_ID": plan.subject,
                        "EXPT_LABEL": plan.label,
                        "dest": "/archive",
                        "overwrite": "append",
                        "overwrite_files": "true",
                    },
                    data=body,
                    headers={"Content-Type": "application/zip"},
                )
        finally:
            zip_path.unlink(missing_ok=True)
        self.tally.add(files=len(infos), nbytes=dicom_bytes, scans=len(plan.study.series))
        if spec.extras:
            self.session_extras(plan)
        self.progress(
            f"imported {plan.label}: {len(plan.study.series)} scans, {len(infos)} DICOM files, "
            f"{dicom_bytes / 1e6:.1f} MB"
        )

    def session_extras(self, plan: SessionPlan) -> None:
        path = f"{self.project_path}/subjects/{_q(plan.subject)}/experiments/{_q(plan.label)}"
        self.client.call("PUT", path, params=session_fields(plan))
        for scan in plan.study.series:
            extras = scan_extras(self.spec, plan.label, scan)
            scan_path = f"{path}/scans/{scan.series_number}"
            self.upload(scan_path, "NIFTI", extras["NIFTI"], format="NIFTI", content="RAW")
            self.upload_extracted(scan_path, "SNAPSHOTS", extras["SNAPSHOTS"])
            fields = scan_fields(scan)
            if fields:
                self.client.call("PUT", scan_path, params=fields)
        qc_label = f"{plan.label}_QC"
        qc_path = f"{path}/assessors/{_q(qc_label)}"
        self.client.call(
            "PUT",
            qc_path,
            params={
                "xsiType": SESSION_ASSESSOR_TYPE,
                "date": f"{plan.study.study_date[:4]}-{plan.study.study_date[4:6]}-"
                f"{plan.study.study_date[6:]}",
                "note": "automatic QC: passed",
            },
        )
        self.upload(
            qc_path,
            "QC_REPORT",
            {"qc_summary.txt": f"QC of {plan.label}: passed\n".encode()},
            format="TXT",
        )
        report = {
            "session": plan.label,
            "modality": plan.modality,
            "scans": [s.description for s in plan.study.series],
            "passed": True,
        }
        self.upload(
            path,
            "QC",
            {"qc_report.json": json.dumps(report, indent=2, sort_keys=True).encode()},
            format="JSON",
        )


def seed_project(
    url: str,
    spec: SeedSpec,
    *,
    auth: tuple[str, str] = ("admin", "admin"),
    workers: int = 2,
    progress: Callable[[str], None] | None = None,
) -> SeedReport:
    """Create `spec.project` if missing and fill it; the same spec always gives the same data."""
    seeder = _Seeder(_Client(url, auth), spec, progress or (lambda _msg: None))
    seeder.ensure_project()
    subjects = plan_subjects(spec)
    sessions = plan_sessions(spec)
    if spec.extras:
        seeder.project_extras()
    for subject in subjects:  # demographics exist before any import refers to the subject
        seeder.subject(subject)
    if spec.shared:
        seeder.shared_subject()
    with tempfile.TemporaryDirectory(prefix="xnatsim-seed-") as tmp:
        workdir = Path(tmp)
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(seeder.session, plan, workdir) for plan in sessions]
            errors = [f.exception() for f in futures]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first
    tally = seeder.tally
    return SeedReport(
        project=spec.project,
        subjects=len(subjects),
        sessions=len(sessions),
        scans=tally.scans,
        files=tally.files,
        bytes=tally.bytes,
    )


# -- command line ------------------------------------------------------------------------------
def register(app) -> None:
    """Add `xnatsim seed` to a typer app."""
    import typer

    @app.command("seed")
    def seed_command(
        url: str = typer.Option(..., "--url", help="Server URL, e.g. http://127.0.0.1:8080"),
        user: str = typer.Option("admin", "--user", help="User name."),
        password: str = typer.Option(
            "admin",
            "--password",
            envvar="XNATSIM_PASSWORD",
            help="Password (better: set XNATSIM_PASSWORD).",
            show_default=False,
        ),
        project: str = typer.Option(..., "--project", help="Project ID (created if missing)."),
        subjects: int = typer.Option(2, "--subjects", min=0),
        sessions: int = typer.Option(1, "--sessions", min=0, help="Sessions per subject."),
        scans: int = typer.Option(3, "--scans", min=1, help="Scans per session."),
        instances: int = typer.Option(2, "--instances", min=1, help="DICOM files per scan."),
        matrix: int = typer.Option(64, "--matrix", min=1, help="Image rows and columns."),
        seed: int = typer.Option(0, "--seed", help="Same seed, same data."),
        workers: int = typer.Option(2, "--workers", min=1, help="Sessions imported at once."),
        extras: bool = typer.Option(
            True, "--extras/--no-extras", help="Add non-DICOM resources and an assessor."
        ),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress lines."),
    ) -> None:
        """Fill a project with deterministic sample data through the REST API."""
        spec = SeedSpec(
            project=project,
            subjects=subjects,
            sessions_per_subject=sessions,
            scans_per_session=scans,
            instances_per_scan=instances,
            rows=matrix,
            cols=matrix,
            seed=seed,
            extras=extras,
        )

        def show(msg: str) -> None:
            if not quiet:
                typer.echo(msg, err=True)

        try:
            report = seed_project(url, spec, auth=(user, password), workers=workers, progress=show)
        except (SeedError, ValueError, OSError) as exc:
            typer.echo(f"xnatsim seed: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(report.summary())
