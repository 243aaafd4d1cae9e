"""A plan's steps and changes as views over its file, and the spool file the diff writes.

A large plan never sits in memory: ``Plan.steps`` and ``Plan.changes`` of a plan the diff
wrote or one loaded from a file are ``FileRecords``, which read the file again on each
pass, in file order, and know their length from the end record. The file is checked whole
once (when written or loaded); each later pass makes sure it is still the same file, so a
plan edited after the check is refused rather than trusted.

The diff writes to a ``Spool``: a private file (mode 0600) in a local directory, removed
when the last view of it is dropped or the process exits; saving the plan copies it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import weakref
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from planner.privatedirs import private_dir
from planner.processes import pid_alive

T = TypeVar("T")

Stamp = tuple[int, int, int]  # (inode, size, mtime in ns): "still the file that was checked"


def stamp(path: Path) -> Stamp:
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class Spool:
    """A private plan file the diff writes and the plan's views read; removed when this
    object is dropped (with the plan that holds it) or when the process exits."""

    def __init__(self, directory: Path | str) -> None:
        directory = Path(directory)
        private_dir(directory)
        prefix = f"plan-{os.getpid()}-"  # whose it is, for ``remove_orphaned_spools``
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".jsonl", dir=directory)
        os.close(fd)
        os.chmod(name, 0o600)
        self.path = Path(name)
        self._remove = weakref.finalize(self, _unlink, name)

    def remove(self) -> None:
        """Remove the file now (a failed diff leaves nothing behind)."""
        self._remove()


def remove_orphaned_spools(directory: Path | str) -> list[Path]:
    """Remove the spool files of processes that are gone (killed before they could remove
    their own); return them."""
    removed = []
    for path in Path(directory).glob("plan-*-*.jsonl"):
        pid = path.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            _unlink(str(path))
            removed.append(path)
    return removed


def _unlink(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


class FileRecords(Collection[T], Generic[T]):
    """The records of one type (``Step`` or ``Change``) of a plan file, read on each pass.

    ``read`` yields the file's records (``planner.planfile.iter_plan``); ``owner`` keeps a
    ``Spool`` alive as long as a view of it is. Equality with another collection compares
    the records in order (reading both), for tests and small plans.
    """

    def __init__(
        self,
        path: Path,
        kind: type,
        count: int,
        read: Callable[[Path], Iterator[Any]],
        owner: Spool | None = None,
    ) -> None:
        self.path = path
        self.kind = kind
        self.count = count
        self._read = read
        self._stamp = stamp(path)
        self.owner = owner

    def __iter__(self) -> Iterator[T]:
        from planner.planfile import UnusablePlan

        try:
            same = stamp(self.path) == self._stamp
        except OSError as exc:
            raise UnusablePlan(self.path, f"it cannot be read ({exc})") from None
        if not same:
            raise UnusablePlan(self.path, "it changed after it was checked; load it again")
        kind = self.kind
        for record in self._read(self.path):
            if isinstance(record, kind):
                yield record

    def __len__(self) -> int:
        return self.count

    def __contains__(self, item: object) -> bool:
        return any(item == r for r in self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Collection) or isinstance(other, str | bytes):
            return NotImplemented
        if len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FileRecords({self.kind.__name__}, {self.count} in {self.path})"
