"""Check a downloaded zip before it is imported anywhere.

A zip that is cut short, corrupted on the wire or missing files must never reach the
destination: XNAT would archive whatever part of it parses, and the scan would look
transferred while files are missing. So every entry is read through once (in chunks, never
whole into memory) to let ``zipfile`` check its CRC, DICOM entries are recognised by their
header, and the entry count must equal what the plan expects.
"""

from __future__ import annotations

import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

from planner.errors import BackendError

CHUNK = 1 << 20
_PREAMBLE = 128
# Value representations of explicit-VR DICOM: a header without a preamble still starts with
# a data element, and in explicit VR its bytes 4-5 are one of these.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    b"UN UR US UT UV".split()
)


class InvalidZip(BackendError):
    """A downloaded zip is unusable; downloading it again may well give a good one."""

    transient = True


class NotDicom(InvalidZip):
    """An intact entry of a DICOM zip is not DICOM: the source resource holds it, so every
    download gives it again (the CRC proved it arrived as sent) and XNAT's import refuses it
    (400 "unable to read DICOM object"). Retrying cannot help."""

    transient = False


@dataclass(frozen=True)
class ZipSummary:
    entries: int
    uncompressed_bytes: int


def looks_like_dicom(head: bytes) -> bool:
    """True for a DICOM Part 10 file (preamble + ``DICM``) or a bare dataset.

    A bare dataset (no preamble) starts with a data element of a low, even group in little
    endian: either explicit VR (two VR letters follow the tag) or implicit VR (a 32-bit length
    follows). Text, images and other files fail both tests.
    """
    if len(head) >= _PREAMBLE + 4 and head[_PREAMBLE : _PREAMBLE + 4] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group, _element = struct.unpack_from("<HH", head, 0)
    if group % 2 or not 0x0002 <= group <= 0x0028:
        return False
    if head[4:6] in _VRS:
        return True
    (length,) = struct.unpack_from("<I", head, 4)
    return length < (1 << 24)


# A DICOMDIR's file meta names the Media Storage Directory SOP class; its data set has no
# SOPClassUID, so XNAT's import refuses it ("contains no SOP Class UID",
# GradualDicomImporter.call). The file meta follows the preamble within the first bytes.
_DICOMDIR_CLASS = b"1.2.840.10008.1.3.10"
_MEDIA_SOP_CLASS = b"\x02\x00\x02\x00UI"
_HEAD = _PREAMBLE + 4 + 512


def is_dicomdir(head: bytes) -> bool:
    """True for a Part 10 file whose file meta names the Media Storage Directory SOP class."""
    start = _PREAMBLE + 4
    if (
        len(head) < start + 12
        or head[_PREAMBLE:start] != b"DICM"
        or head[start : start + 6] != b"\x02\x00\x00\x00UL"
    ):
        return False
    (length,) = struct.unpack_from("<I", head, start + 8)
    meta = head[start + 12 : start + 12 + length]
    at = meta.find(_MEDIA_SOP_CLASS)  # (0002,0002) UI, explicit VR little endian
    if at < 0 or at + 8 > len(meta):
        return False
    (size,) = struct.unpack_from("<H", meta, at + 6)
    return meta[at + 8 : at + 8 + size].rstrip(b"\0 ") == _DICOMDIR_CLASS


def _is_dir(info: zipfile.ZipInfo) -> bool:
    return info.filename.endswith("/")


def validate_zip(
    path: Path, *, expected_files: int | None = None, dicom: bool = True
) -> ZipSummary:
    """Read every entry of ``path`` through, or raise ``InvalidZip`` saying what is wrong."""
    name = path.name
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidZip(f"downloaded zip {name} does not open: {exc}") from exc
    entries = 0
    total = 0
    with archive:
        for info in archive.infolist():
            if _is_dir(info):
                continue
            entries += 1
            try:
                with archive.open(info) as member:
                    head = member.read(_HEAD)
                    size = len(head)
                    while chunk := member.read(CHUNK):
                        size += len(chunk)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                raise InvalidZip(
                    f"entry {info.filename} of downloaded zip {name} is damaged: {exc}"
                ) from exc
            total += size
            if dicom and is_dicomdir(head):
                raise NotDicom(
                    f"entry {info.filename} of downloaded zip {name} is a DICOMDIR, which XNAT's "
                    "import refuses: move it to another resource on the source, then make a "
                    "new plan"
                )
            if dicom and not looks_like_dicom(head):
                raise NotDicom(
                    f"entry {info.filename} of downloaded zip {name} is not DICOM; the source's "
                    "DICOM resource holds a file XNAT's import refuses: move it to another "
                    "resource on the source, then make a new plan"
                )
    if expected_files is not None and entries != expected_files:
        raise InvalidZip(
            f"downloaded zip {name} holds {entries} files where the plan expects {expected_files}"
        )
    return ZipSummary(entries=entries, uncompressed_bytes=total)


def resource_relative_path(entry: str) -> str | None:
    """The path of a zip entry relative to its resource root, or None if not in one.

    XNAT's zips prefix every file with where it lives, e.g.
    ``S1/scans/2-T1/resources/NIFTI/files/a/b.nii`` or ``P/resources/DOCS/files/x.pdf``; the
    part after the first ``resources/{label}/files/`` is the file's own path.
    """
    parts = entry.split("/")
    for i in range(len(parts) - 3):
        if parts[i] == "resources" and parts[i + 2] == "files":
            rest = "/".join(parts[i + 3 :])
            return rest or None
    return None


def repack_relative(src: Path, dest: Path) -> ZipSummary:
    """Copy ``src`` to ``dest`` with entries renamed relative to their resource root.

    Streams entry by entry (STORED, no recompression) so memory stays flat for any file size.
    Entries outside a resource layout keep their name; unsafe names are refused.
    """
    entries = 0
    total = 0
    seen: set[str] = set()
    try:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
            for info in zin.infolist():
                if _is_dir(info):
                    continue
                rel = resource_relative_path(info.filename) or info.filename
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise InvalidZip(f"zip entry {info.filename} has an unsafe path")
                if rel in seen:
                    raise InvalidZip(f"zip holds {rel} twice")
                seen.add(rel)
                out_info = zipfile.ZipInfo(rel, date_time=info.date_time)
                out_info.compress_type = zipfile.ZIP_STORED
                with zin.open(info) as member, zout.open(out_info, "w", force_zip64=True) as out:
                    while chunk := member.read(CHUNK):
                        out.write(chunk)
                        total += len(chunk)
                entries += 1
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidZip(f"downloaded zip {src.name} is damaged: {exc}") from exc
    return ZipSummary(entries=entries, uncompressed_bytes=total)
