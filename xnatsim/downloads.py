"""Streaming zip and tar.gz bodies built file by file, never held whole in memory."""

from __future__ import annotations

import re
import tarfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

CHUNK = 1 << 20


class _Sink:
    """A write-only file for zipfile; the generator drains it between writes."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        if data:
            self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def stream_zip(entries: list[tuple[str, Path]], compress: bool = False) -> Iterator[bytes]:
    sink = _Sink()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(sink, "w", compression=method, allowZip64=True) as zf:
        for arcname, path in entries:
            stat = path.stat()
            info = zipfile.ZipInfo(arcname, time.localtime(stat.st_mtime)[:6])
            # Announcing the size lets zipfile pick zip64 only for entries that need it.
            info.file_size = stat.st_size
            info.compress_type = method
            with open(path, "rb") as src, zf.open(info, "w") as dst:
                while data := src.read(CHUNK):
                    dst.write(data)
                    if sink.parts:
                        yield sink.drain()
            if sink.parts:
                yield sink.drain()
    tail = sink.drain()
    if tail:
        yield tail


def stream_targz(entries: list[tuple[str, Path]]) -> Iterator[bytes]:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    for arcname, path in entries:
        info = tarfile.TarInfo(arcname)
        stat = path.stat()
        info.size = stat.st_size
        info.mtime = int(stat.st_mtime)
        info.mode = 0o644
        yield comp.compress(info.tobuf(format=tarfile.PAX_FORMAT))
        with open(path, "rb") as src:
            while data := src.read(CHUNK):
                out = comp.compress(data)
                if out:
                    yield out
        pad = (-stat.st_size) % 512
        if pad:
            yield comp.compress(b"\0" * pad)
    yield comp.compress(b"\0" * 1024)
    yield comp.flush()


def type_part(scan_type: str) -> str:
    return re.sub(r"\W", "_", scan_type or "")


def stream_file(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while data := src.read(CHUNK):
            yield data
