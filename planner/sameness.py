"""When two copies of a resource's files are "the same": the one rule every comparison uses.

XNAT applies its site-wide anonymization script to every DICOM import by default
(``SiteConfigPreferences.getEnableSitewideAnonymizationScript``; the default script sets
StudyDescription to the project, PatientName to the subject label and PatientID to the
session label) and DicomEdit records each script it applies in the file
(DeidentificationMethodCodeSequence; NRG's TestAnonymizerLegacy reads it). A destination's
copy of a scan's DICOM therefore differs in bytes, size and MD5 from the source's, although
it holds the same instances. So:

- the DICOM files of a scan's ``DICOM`` resource are the same when their names and count
  agree; header rewrites by the destination do not count;
- every other file is the same when its path, size and (where both servers give one) MD5
  agree.

Names alone cannot see a source file re-sent with other content under the same name, nor a
destination file replaced. So when a scan pair is made or found equal, both sides' DICOM file
lists are remembered (``ScanMemory``, kept in the state DB) and a later comparison also asks
whether either side changed since. The plan (diff), apply's already-there check, verification,
the stale check and drift all compare through the functions below.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from planner.inventory import FileEntry, Resource
from planner.plan import ImportScan, UploadResource

DICOM = "DICOM"
MAX_FILE_DIFFERENCES = 5  # per resource: more are summarised as "and N more"

# Kinds of file difference, so verification can tell its tiers apart without parsing text.
COUNT = "count"
MISSING = "missing"
EXTRA = "extra"
SIZE = "size"
DIGEST = "digest"
SOURCE_CHANGED = "source_changed"
DEST_CHANGED = "dest_changed"
NAME_KINDS = frozenset({COUNT, MISSING, EXTRA})  # tier 2: which files are there
CONTENT_KINDS = frozenset({SIZE, DIGEST, SOURCE_CHANGED, DEST_CHANGED})  # tier 3


@dataclass(frozen=True)
class FileDifference:
    kind: str
    text: str


# -- digests ---------------------------------------------------------------------------------


def files_digest(resource: Resource) -> str:
    """SHA-256 over sorted ``path<TAB>size<TAB>md5`` lines: the source content a step was
    planned from (a step's ``files_digest``); a source re-sent with other bytes changes it."""
    return _digest(f"{f.path}\t{f.size}\t{f.digest}" for f in _sorted(resource.files))


def names_digest(resource: Resource) -> str:
    """SHA-256 over the sorted file names: what a destination copy of DICOM must match."""
    return _digest(f.path for f in _sorted(resource.files))


def shape_digest(files: Iterable[FileEntry]) -> str:
    """Names and sizes: the remembered state of one side when MD5 is not compared."""
    return _digest(f"{f.path}\t{f.size}" for f in _sorted(files))


def content_digest(files: Iterable[FileEntry]) -> str:
    """Names, sizes and MD5s; ``""`` when any file has no MD5 (nothing to compare by)."""
    entries = _sorted(files)
    if any(not f.digest for f in entries):
        return ""
    return _digest(f"{f.path}\t{f.size}\t{f.digest}" for f in entries)


def _sorted(files: Iterable[FileEntry]) -> list[FileEntry]:
    return sorted(files, key=lambda f: f.path)


def _digest(lines: Iterable[str]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


# -- remembered scan pairs -------------------------------------------------------------------


@dataclass(frozen=True)
class SideState:
    """One side's DICOM files of a scan pair when it was last made or found equal."""

    shape: str  # shape_digest
    content: str  # content_digest, "" when the server gave no MD5

    @classmethod
    def of(cls, resource: Resource | None) -> SideState:
        files = resource.files if resource is not None else ()
        return cls(shape_digest(files), content_digest(files))

    def changed(self, resource: Resource | None, *, digests: bool) -> bool:
        now = SideState.of(resource)
        if digests and self.content and now.content:
            return now.content != self.content
        return now.shape != self.shape


@dataclass(frozen=True)
class ScanMemory:
    """A scan pair (source scan address, destination scan ID) and both sides' DICOM files
    when the pair was last made (verified after an import) or found equal by a walk."""

    address: str
    dest_scan: str
    source: SideState
    dest: SideState


def remember(
    address: str, dest_scan: str, src: Resource | None, dst: Resource | None
) -> ScanMemory:
    return ScanMemory(address, dest_scan, SideState.of(src), SideState.of(dst))


# -- comparisons -----------------------------------------------------------------------------


def byte_differences(src: Resource, dst: Resource, *, digests: bool) -> list[FileDifference]:
    """Non-DICOM files: path, size and (with ``digests``, where both have one) MD5. The
    count first, then file by file in source order, then files only on the destination."""
    if src.files == dst.files:
        return []
    out: list[FileDifference] = []
    if src.file_count != dst.file_count:
        out.append(FileDifference(COUNT, f"file count {src.file_count} != {dst.file_count}"))
    theirs = {f.path: f for f in dst.files}
    for f in src.files:
        other = theirs.pop(f.path, None)
        if other is None:
            out.append(FileDifference(MISSING, f"{f.path} missing on the destination"))
        elif f.size != other.size:
            out.append(FileDifference(SIZE, f"size of {f.path} {f.size} != {other.size}"))
        elif digests and f.digest and other.digest and f.digest != other.digest:
            out.append(FileDifference(DIGEST, f"digest of {f.path} differs"))
    out.extend(FileDifference(EXTRA, f"{p} only on the destination") for p in sorted(theirs))
    return out


def dicom_differences(
    src: Resource, dst: Resource, *, digests: bool, memory: ScanMemory | None = None
) -> list[FileDifference]:
    """A scan's DICOM: names and count; then, when the pair was remembered, whether either
    side changed since (a source file re-sent with other content, a destination file
    replaced or rewritten again)."""
    out: list[FileDifference] = []
    if src.file_count != dst.file_count:
        out.append(FileDifference(COUNT, f"file count {src.file_count} != {dst.file_count}"))
    ours = {f.path for f in src.files}
    theirs = {f.path for f in dst.files}
    out.extend(
        FileDifference(MISSING, f"{p} missing on the destination") for p in sorted(ours - theirs)
    )
    out.extend(FileDifference(EXTRA, f"{p} only on the destination") for p in sorted(theirs - ours))
    if memory is None or out:
        return out
    if memory.source.changed(src, digests=digests):
        out.append(FileDifference(SOURCE_CHANGED, f"source files changed since {_EQUAL}"))
    if memory.dest.changed(dst, digests=digests):
        out.append(FileDifference(DEST_CHANGED, f"destination files changed since {_EQUAL}"))
    return out


_EQUAL = "they were last found equal"


def render(diffs: list[FileDifference]) -> tuple[str, ...]:
    """Texts for people: the file count, then at most ``MAX_FILE_DIFFERENCES`` files."""
    counts = [d.text for d in diffs if d.kind == COUNT]
    details = [d.text for d in diffs if d.kind != COUNT]
    if len(details) > MAX_FILE_DIFFERENCES:
        rest = len(details) - MAX_FILE_DIFFERENCES
        details = [*details[:MAX_FILE_DIFFERENCES], f"and {rest} more file differences"]
    return (*counts, *details)


# -- a planned step against what a server holds ----------------------------------------------


@dataclass(frozen=True)
class PlannedFiles:
    """The files a step was planned to move, as the step recorded them from the source.

    ``dicom`` marks a scan's DICOM (an import): the destination's copy is then the same by
    names and count. An empty ``files_digest`` or ``names_digest`` is not compared.
    """

    file_count: int
    bytes: int
    files_digest: str = ""
    names_digest: str = ""
    dicom: bool = False


def planned_files(step: ImportScan | UploadResource) -> PlannedFiles:
    """What an import or upload step was planned to move."""
    names = step.names_digest if isinstance(step, ImportScan) else ""
    is_dicom = isinstance(step, ImportScan) and step.resource == DICOM
    return PlannedFiles(step.file_count, step.bytes, step.files_digest, names, is_dicom)


def dest_holds(resource: Resource | None, planned: PlannedFiles) -> tuple[bool, str]:
    """Does a destination resource already hold what a step was planned to copy?

    For a scan's DICOM, the same file names (``names_digest``) and count: the destination
    may have rewritten headers. For other resources, count, bytes and the digest of (path,
    size, MD5) when the destination gives MD5s.
    """
    if resource is None:
        return False, "the destination has no such scan"
    count = planned.file_count
    if resource.file_count != count:
        return False, f"the destination holds {resource.file_count} files, the source {count}"
    if planned.dicom:
        if planned.names_digest and names_digest(resource) != planned.names_digest:
            return False, "the destination's DICOM file names differ from the source's"
        return True, ""
    size = planned.bytes
    if resource.total_bytes != size:
        return False, f"the destination holds {resource.total_bytes} bytes, the source {size}"
    digest = planned.files_digest
    if digest and all(f.digest for f in resource.files) and files_digest(resource) != digest:
        return False, "the destination files differ from the source (sizes or MD5)"
    return True, ""


def source_unchanged(where: str, resource: Resource | None, planned: PlannedFiles) -> list[str]:
    """Does the source still hold the files a step was planned from? (The stale check.)

    Source against source, so every byte counts, DICOM included: a file re-sent with other
    content under the same name makes the plan stale.
    """
    if resource is None:
        return [f"{where} is gone from the source"]
    if resource.file_count != planned.file_count:
        return [f"{where} now has {resource.file_count} files (planned {planned.file_count})"]
    if resource.total_bytes != planned.bytes:
        return [f"{where} now has {resource.total_bytes} bytes (planned {planned.bytes})"]
    if planned.files_digest and files_digest(resource) != planned.files_digest:
        return [f"{where}: files changed on the source (names, sizes or MD5)"]
    return []
