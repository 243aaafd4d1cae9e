"""Streaming request bodies to disk: raw bodies, multipart parts, and archive unpacking."""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from xnatsim.web import HTTPError, Request

CHUNK = 1 << 20
RAW_TYPES = (
    "application/octet-stream",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/dicom",
    "application/x-gtar",
    "application/x-tgz",
)


@dataclass
class Stored:
    """One file written to a temp location, with what the catalog needs about it."""

    name: str  # file name from the request (multipart part) or "" for a raw body
    path: Path
    size: int
    md5: str


def write_stream(chunks: Iterable[bytes], dest: Path) -> tuple[int, str]:
    md5 = hashlib.md5()
    size = 0
    with open(dest, "wb") as out:
        for chunk in chunks:
            md5.update(chunk)
            out.write(chunk)
            size += len(chunk)
    return size, md5.hexdigest()


def copy_fileobj(src: BinaryIO, dest: Path) -> tuple[int, str]:
    def gen() -> Iterator[bytes]:
        while True:
            data = src.read(CHUNK)
            if not data:
                return
            yield data

    return write_stream(gen(), dest)


def file_md5(path: Path) -> str:
    md5 = hashlib.md5()
    with open(path, "rb") as fh:
        while data := fh.read(CHUNK):
            md5.update(data)
    return md5.hexdigest()


def is_raw_body(req: Request) -> bool:
    ctype = req.content_type.split(";")[0].strip().lower()
    if req.flag("inbody"):
        return True
    return ctype in RAW_TYPES or ctype.startswith("image/") or "dicom" in ctype


def boundary_of(content_type: str) -> bytes | None:
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            return value.strip().strip('"').encode("latin-1")
    return None


# Space kept free on the data disk: an upload that would eat into it is refused up front.
DISK_RESERVE = 64 << 20


def free_bytes(path: Path) -> int:
    """Free space on the disk holding ``path`` (a function so tests can shrink the disk)."""
    return shutil.disk_usage(path).free


def check_room(req: Request, where: Path) -> None:
    """Refuse, before reading it, a body that the disk cannot hold (XNAT fails such an upload
    part-way; refusing first leaves nothing behind and says why)."""
    declared = req.environ.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) + DISK_RESERVE > free_bytes(where):
        raise HTTPError(
            507,
            f"Not enough disk space on the server for this upload ({int(declared)} bytes)",
        )


def receive(req: Request, tmp_factory, *, field: str | None = None) -> list[Stored]:
    """Stream the request's file(s) to temp files: a raw body or each multipart file part."""
    first = tmp_factory()
    check_room(req, first.parent)
    factory = iter([first])

    def next_path() -> Path:
        return next(factory, None) or tmp_factory()

    return _receive(req, next_path, field)


def _receive(req: Request, tmp_factory, field: str | None) -> list[Stored]:
    ctype = req.content_type.lower()
    if ctype.startswith("multipart/") and not req.flag("inbody"):
        boundary = boundary_of(req.content_type)
        if not boundary:
            raise HTTPError(400, "Multipart body without a boundary")
        return list(iter_multipart(req.iter_body(), boundary, tmp_factory, field))
    path = tmp_factory()
    size, md5 = write_stream(req.iter_body(), path)
    return [Stored("", path, size, md5)]


def _parse_part_headers(block: bytes) -> tuple[str | None, str | None]:
    name = filename = None
    for line in block.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        for item in value.split(";"):
            k, _, v = item.strip().partition("=")
            v = v.strip().strip('"')
            if k.lower() == "name":
                name = v
            elif k.lower() == "filename":
                filename = v
    return name, filename


def iter_multipart(
    chunks: Iterable[bytes], boundary: bytes, tmp_factory, field: str | None
) -> Iterator[Stored]:
    """A streaming multipart/form-data reader: parts go straight to disk, chunk by chunk."""
    delim = b"\r\n--" + boundary
    it = iter(chunks)
    buf = b"\r\n"
    # Skip the preamble up to the first boundary.
    while delim not in buf:
        nxt = next(it, None)
        if nxt is None:
            return
        buf = buf[-len(delim) :] + nxt
    buf = buf[buf.index(delim) + len(delim) :]
    while True:
        while len(buf) < 2:
            nxt = next(it, None)
            if nxt is None:
                return
            buf += nxt
        if buf.startswith(b"--"):
            return
        while b"\r\n\r\n" not in buf:
            nxt = next(it, None)
            if nxt is None:
                raise HTTPError(400, "Truncated multipart body")
            buf += nxt
        head, buf = buf.split(b"\r\n\r\n", 1)
        name, filename = _parse_part_headers(head)
        keep = filename is not None and (field is None or name == field)
        path = tmp_factory() if keep else None
        md5 = hashlib.md5()
        size = 0
        out = open(path, "wb") if path else None  # noqa: SIM115
        try:
            while True:
                idx = buf.find(delim)
                if idx >= 0:
                    data, buf = buf[:idx], buf[idx + len(delim) :]
                    if out:
                        out.write(data)
                        md5.update(data)
                        size += len(data)
                    break
                safe = len(buf) - len(delim)
                if safe > 0:
                    data, buf = buf[:safe], buf[safe:]
                    if out:
                        out.write(data)
                        md5.update(data)
                        size += len(data)
                nxt = next(it, None)
                if nxt is None:
                    raise HTTPError(400, "Truncated multipart body")
                buf += nxt
        finally:
            if out:
                out.close()
        if keep and path is not None:
            yield Stored(
                PurePosixPath(filename.replace("\\", "/")).name, path, size, md5.hexdigest()
            )


def safe_relpath(name: str) -> str:
    """A relative POSIX path inside the target, or 400 for absolute or `..` entries."""
    clean = name.replace("\\", "/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if clean.startswith("/") or any(p == ".." for p in parts) or (parts and ":" in parts[0]):
        raise HTTPError(400, f"Archive entry {name!r} points outside the target folder")
    return "/".join(parts)


def archive_kind(path: Path) -> str | None:
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        with tarfile.open(path, "r:*"):
            return "tar"
    except (tarfile.TarError, OSError, EOFError):
        return None


def extract_archive(path: Path, staging: Path) -> list[tuple[str, Path, int, str]]:
    """Unpack into `staging`; returns (relative path, staged file, size, md5) per file.

    Every entry name is checked before anything is written, so a bad archive leaves nothing.
    """
    kind = archive_kind(path)
    out: list[tuple[str, Path, int, str]] = []
    staging.mkdir(parents=True, exist_ok=True)
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                infos = [i for i in zf.infolist() if not i.is_dir()]
                names = [safe_relpath(i.filename) for i in infos]
                for n, (info, rel) in enumerate(zip(infos, names, strict=True)):
                    if not rel:
                        continue
                    dest = staging / f"{n:07d}"
                    with zf.open(info) as src:
                        size, md5 = copy_fileobj(src, dest)
                    out.append((rel, dest, size, md5))
        elif kind == "tar":
            with tarfile.open(path, "r:*") as tf:
                members = [m for m in tf.getmembers() if m.isfile()]
                names = [safe_relpath(m.name) for m in members]
                for n, (member, rel) in enumerate(zip(members, names, strict=True)):
                    src = tf.extractfile(member)
                    if src is None or not rel:
                        continue
                    dest = staging / f"{n:07d}"
                    with src:
                        size, md5 = copy_fileobj(src, dest)
                    out.append((rel, dest, size, md5))
        else:
            raise HTTPError(400, "The uploaded file is not a zip, tar or tar.gz archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise HTTPError(400, f"Unreadable archive: {exc}") from None
    except HTTPError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
