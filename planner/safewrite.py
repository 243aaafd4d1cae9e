"""Write a file the user named without ever replacing something that is not a file.

Files are written by rename (a temporary file beside the target, flushed, then renamed over
it), so a reader sees the old or the new content, never half. A rename replaces whatever
has the name, though: a symlink would become a plain file, and a FIFO or a device node
(``/dev/full`` as root) would be swapped for one. So the name is resolved first: a symlink
is written through, to its final target (by rename in the target's directory, so still
atomically), and a name that is (or leads to) anything but a regular file is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotARegularFile(Exception):
    """The path names something a write must not replace."""


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def write_target(path: Path | str) -> Path:
    """The regular file a write to ``path`` replaces: ``path`` itself, or its symlink's final
    target. Raise ``NotARegularFile`` when that exists and is not a regular file."""
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    try:
        mode = os.lstat(target).st_mode
    except FileNotFoundError:
        return target
    if stat.S_ISREG(mode):
        return target
    via = f" (the symlink {given} leads to {target})" if target != given else ""
    raise NotARegularFile(
        f"{given} is {_kind(mode)}{via}; not writing to it: give the path of a regular file"
    )


def replace_file(path: Path | str, text: str, *, mode: int = 0o600) -> Path:
    """Write ``text`` to ``path`` (through a symlink) by rename, durably; return the file
    written. The target is checked again just before the rename."""
    with replacing(path, mode=mode) as fh:
        fh.write(text)
    return write_target(path)


@contextlib.contextmanager
def replacing(path: Path | str, *, mode: int = 0o600) -> Iterator[TextIO]:
    """A text file to write ``path``'s new content into, piece by piece (a plan too large to
    hold as one string); it replaces ``path`` by rename when the block ends without an
    exception, and is removed otherwise, so the old file stays whole."""
    target = write_target(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, mode)
        write_target(target)  # something else may have taken the name meanwhile
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where supported
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
