"""The DICOM-zip import service: parse an upload into sessions, then prearchive or archive.

Everything is staged under the data dir's tmp folder first; the catalog and the archive change
only once every check passed, so a refused import leaves no trace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import pydicom
import pydicom.errors
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from xnatsim import dicomnaming, modality
from xnatsim.anonymize import Labels, apply_default_script
from xnatsim.modality import SESSION_TYPES
from xnatsim.store import Store
from xnatsim.uploads import extract_archive, file_md5
from xnatsim.web import HTTPError

ROUTING_TAGS = ("PatientComments", "StudyComments", "AdditionalPatientHistory")


def sanitise(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", label.strip())


@dataclass
class StagedFile:
    name: str
    path: str
    size: int
    md5: str
    uid: str = ""  # SOPInstanceUID: the catalog entry's UID (`cat:dcmEntry`)


@dataclass
class StagedScan:
    scan_id: str
    xsi_type: str
    type: str
    uid: str
    files: list[StagedFile] = field(default_factory=list)


@dataclass
class StagedSession:
    study_uid: str
    project: str
    subject: str
    label: str
    modality: str
    date: str
    scans: dict[str, StagedScan] = field(default_factory=dict)
    session_type: str = ""

    @property
    def xsi_type(self) -> str:
        return self.session_type or SESSION_TYPES.get(self.modality, "xnat:otherDicomSessionData")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> StagedSession:
        data = json.loads(text)
        scans = {
            k: StagedScan(
                v["scan_id"],
                v["xsi_type"],
                v["type"],
                v["uid"],
                [StagedFile(**f) for f in v["files"]],
            )
            for k, v in data.pop("scans").items()
        }
        return cls(**data, scans=scans)


def _routing_hint(ds: pydicom.Dataset, key: str) -> str:
    for tag in ROUTING_TAGS:
        value = str(ds.get(tag, "") or "")
        match = re.search(rf"{key}:\s*([^\s:]+)", value)
        if match:
            return match.group(1)
    return ""


def _scan_id(ds: pydicom.Dataset) -> str:
    number = ds.get("SeriesNumber", None)
    if number not in (None, ""):
        return str(number)
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    return re.sub(r"[^A-Za-z0-9]", "_", uid) if uid else "NA"


def _dicom_date(value: str) -> str:
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


@dataclass
class Routing:
    project: str = ""
    subject: str = ""
    session: str = ""


ExistingScans = Callable[[str, str], dict[str, str]]
"""(project, session label) -> {scan ID: series UID} of that session in the archive."""


@dataclass
class ImportOptions:
    """What an import request asks of the parser (see `parse_upload`)."""

    ignore_unparsable: bool = False
    anonymize: bool = False
    rename: bool = False
    session_importer: bool = False
    pet_mr: str = "petmr"
    existing_scans: ExistingScans | None = None


@dataclass
class _Parsed:
    """One readable instance of the upload."""

    rel: str
    path: Path
    size: int
    md5: str
    ds: pydicom.Dataset


def _looks_bare(path: Path) -> bool:
    """True when `path` starts like a file without preamble: file meta (group 0002) or a data
    element of an even group below the pixel data, in little endian."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if len(head) < 8:
        return False
    group = int.from_bytes(head[0:2], "little")
    return group % 2 == 0 and 0x0002 <= group < 0x7FE0


def _header(path: Path) -> pydicom.Dataset:
    """A Part 10 file's header; a bare data set's too, as dcm4che's `DicomInputStream` (which
    `GradualDicomImporter` reads with) guesses the transfer syntax of one."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        if not _looks_bare(path):
            raise
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _to_part10(path: Path) -> None:
    """Store a file read without preamble as a Part 10 file, as `GradualDicomImporter` does:
    file meta it came with is kept (`fileMetaInfo`), with its transfer syntax; a bare data
    set gets new file meta (`initFileMetaInformation` with the SOP class and instance UIDs
    and Explicit VR Little Endian, its default syntax) and is written in that syntax."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
    ds.preamble = b"\0" * 128
    tmp = path.with_name(path.name + ".part10")
    try:
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _read(rel: str, path: Path) -> pydicom.Dataset:
    """The header of one entry, or the client error XNAT gives for it."""
    try:
        ds = _header(path)
        str(ds.StudyInstanceUID)
    except Exception:  # any unreadable header (pydicom raises many types) is "unparsable"
        raise HTTPError(400, f"unable to read DICOM object {rel}") from None
    # GradualDicomImporter.call refuses objects without SOP class or instance UIDs.
    if not str(ds.get("SOPClassUID", "") or ""):
        raise HTTPError(400, f"object {rel} contains no SOP Class UID")
    if not str(ds.get("SOPInstanceUID", "") or ""):
        raise HTTPError(400, f"object {rel} contains no SOP Instance UID")
    return ds


def _new_session(ds: pydicom.Dataset, routing: Routing) -> StagedSession:
    project = (
        routing.project
        or _routing_hint(ds, "Project")
        or str(ds.get("StudyDescription", "") or "")
        or str(ds.get("AccessionNumber", "") or "")
    )
    subject = (
        routing.subject or _routing_hint(ds, "Subject") or str(ds.get("PatientName", "") or "")
    )
    label = routing.session or _routing_hint(ds, "Session") or str(ds.get("PatientID", "") or "")
    return StagedSession(
        str(ds.StudyInstanceUID),
        sanitise(project),
        sanitise(subject),
        sanitise(label),
        "",
        _dicom_date(str(ds.get("StudyDate", ""))),
    )


class _SessionBuilder:
    """Files of one study into scans: scan IDs, file names and the session's data type."""

    def __init__(self, sess: StagedSession, opts: ImportOptions) -> None:
        self.sess = sess
        self.opts = opts
        self.scan_of: dict[tuple[str, str], str] = {}  # (scan dir, series UID) -> scan ID
        # Per scan directory: file name -> (header, staged file, scan ID). XNAT's prearchive
        # keeps every series of one SeriesNumber in one directory, so names clash across them.
        self.names: dict[str, dict[str, tuple[pydicom.Dataset, StagedFile, str]]] = {}
        self.modalities: set[str] = set()

    def add(self, item: _Parsed) -> None:
        ds = item.ds
        series_uid = str(ds.get("SeriesInstanceUID", "") or "")
        sop_class = str(ds.get("SOPClassUID", "") or "")
        mod = modality.scan_modality(str(ds.get("Modality", "") or ""), sop_class)
        if mod:
            self.modalities.add(mod)
        scan_dir = _scan_id(ds)
        scan_id = self.scan_of.get((scan_dir, series_uid))
        if scan_id is None:
            xsi = modality.scan_type(mod, sop_class)
            scan_id = self._free_id(scan_dir, modality.modality_code(xsi))
            self.scan_of[(scan_dir, series_uid)] = scan_id
            desc = str(ds.get("SeriesDescription", "") or "")
            self.sess.scans[scan_id] = StagedScan(scan_id, xsi, desc, series_uid)
        name = self._name(item, scan_dir)
        staged = StagedFile(name, str(item.path), item.size, item.md5, str(ds.SOPInstanceUID))
        self.sess.scans[scan_id].files.append(staged)
        self.names.setdefault(scan_dir, {})[name] = (ds, staged, scan_id)

    def _free_id(self, scan_dir: str, code: str) -> str:
        """A second series under one SeriesNumber becomes `{n}-{code}{k}` (e.g. `1-MR1`)."""
        if scan_dir not in self.sess.scans:
            return scan_dir
        k = 1
        while f"{scan_dir}-{code}{k}" in self.sess.scans:
            k += 1
        return f"{scan_dir}-{code}{k}"

    def _name(self, item: _Parsed, scan_dir: str) -> str:
        taken = self.names.get(scan_dir, {})
        base = PurePosixPath(item.rel).name
        if self.opts.session_importer:  # Restructurer: never renamed, made unique
            return dicomnaming.unique_name(base, set(taken))
        clash = base in taken and not dicomnaming.same_instance(taken[base][0], item.ds)
        name = dicomnaming.template_name(item.ds) if self.opts.rename or not base or clash else base
        if name in taken:  # the same instance again (or a template clash): the later wins
            _, old, old_scan = taken.pop(name)
            files = self.sess.scans[old_scan].files
            files[:] = [f for f in files if f is not old]
            Path(old.path).unlink(missing_ok=True)
        return name

    def finish(self) -> None:
        self.sess.scans = {k: v for k, v in self.sess.scans.items() if v.files}
        self.sess.session_type, self.sess.modality = modality.session_type(
            self.modalities, self.opts.pet_mr
        )


def _correct_scan_ids(sess: StagedSession, existing: dict[str, str]) -> None:
    """Match new scans to those already archived in the session, as
    `PrearcSessionArchiver.correctScanID` does: a scan whose series UID is archived takes that
    scan's ID; one whose ID is taken by another series becomes `{n}-{code}{k}`."""
    if not existing:
        return
    by_uid = {uid: sid for sid, uid in existing.items() if uid}
    used = set(existing)
    renamed: dict[str, StagedScan] = {}
    for scan in sess.scans.values():
        target = by_uid.get(scan.uid) if scan.uid else None
        if target is None:
            code = modality.modality_code(scan.xsi_type)
            stub = scan.scan_id
            if re.fullmatch(rf".+-{re.escape(code)}[0-9]+", stub):
                stub = stub[: stub.rfind("-")]
            target, k = scan.scan_id, 1
            while target in used or target in renamed:
                target = f"{stub}-{code}{k}"
                k += 1
        used.add(target)
        scan.scan_id = target
        renamed[target] = scan
    sess.scans = renamed


def parse_upload(
    archive: Path,
    staging: Path,
    routing: Routing,
    ignore_unparsable: bool = False,
    *,
    anonymize: bool = False,
    options: ImportOptions | None = None,
) -> list[StagedSession]:
    """Read every entry's DICOM header and group files into one session per study.

    Routing reads the headers as uploaded; with `anonymize` the site script then writes the
    routed labels into every staged file (see `xnatsim.anonymize`). Unreadable entries fail
    the import with XNAT's "unable to read DICOM object" unless `Ignore-Unparsable`, and even
    then when nothing else was readable (`DicomZipImporter.call`).
    """
    opts = options or ImportOptions(ignore_unparsable=ignore_unparsable, anonymize=anonymize)
    entries = extract_archive(archive, staging)
    builders: dict[str, _SessionBuilder] = {}
    skipped: HTTPError | None = None
    for rel, path, size, md5 in entries:
        try:
            ds = _read(rel, path)
        except HTTPError as exc:
            if not opts.ignore_unparsable:
                raise
            skipped = exc
            path.unlink(missing_ok=True)
            continue
        if ds.preamble is None:
            _to_part10(path)
            size, md5 = path.stat().st_size, file_md5(path)
        study_uid = str(ds.StudyInstanceUID)
        builder = builders.get(study_uid)
        if builder is None:
            builder = builders[study_uid] = _SessionBuilder(_new_session(ds, routing), opts)
        builder.add(_Parsed(rel, path, size, md5, ds))
    if not builders and skipped is not None:
        raise skipped
    sessions = []
    for builder in builders.values():
        builder.finish()
        sess = builder.sess
        if not sess.project:
            raise HTTPError(400, "No project given and none found in the DICOM headers")
        if not sess.subject or not sess.label:
            raise HTTPError(400, "Could not determine the subject or session label")
        if opts.existing_scans is not None:
            _correct_scan_ids(sess, opts.existing_scans(sess.project, sess.label))
        if opts.anonymize:
            _anonymize_session(sess)
        sessions.append(sess)
    return sessions


def _anonymize_session(sess: StagedSession) -> None:
    """Apply the site script with the session's routed labels; refresh size and MD5."""
    labels = Labels(sess.project, sess.subject, sess.label)
    for scan in sess.scans.values():
        for f in scan.files:
            path = Path(f.path)
            apply_default_script(path, labels)
            f.size = path.stat().st_size
            f.md5 = file_md5(path)


def archived_scans(store: Store) -> ExistingScans:
    """An `ExistingScans` lookup over the store's archive."""

    def lookup(project: str, label: str) -> dict[str, str]:
        exp = store.experiment_by(project, label)
        if exp is None:
            return {}
        rows = store.query(
            "SELECT scan_id, uid FROM scans WHERE experiment_id = ? ORDER BY pk", (exp["id"],)
        )
        return {r["scan_id"]: r["uid"] or "" for r in rows}

    return lookup
