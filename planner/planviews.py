"""A plan's steps and changes as views over its file, and the spool file the diff writes.

A large plan never sits in memory: ``Plan.steps`` and ``Plan.changes`` of a plan the diff
wrote or one loaded from a file are ``FileRecords``, which read the file again on each
pass, in file order, and know their length from the end record. The file is checked whole
once (when written or loaded) through a ``PlanHandle``, an open descriptor that every later
pass reads through: a plan file replaced meanwhile (a new plan saved over it while apply
runs) does not change what this run reads, and one edited in place is refused rather than
trusted.

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

Stamp = tuple[int, int]  # (size, mtime in ns) of the open file: "still what was checked"
_BLOCK = 1 << 20


class PlanHandle:
    """One open plan file, read line by line as often as needed, each pass from its own
    offset (``os.pread``), so passes may run one after another or side by side. Closed when
    the last view of it is dropped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self._close = weakref.finalize(self, os.close, self.fd)
        self.stamp = self._now()

    def _now(self) -> Stamp:
        st = os.fstat(self.fd)
        return (st.st_size, st.st_mtime_ns)

    def unchanged(self) -> bool:
        """Whether the file holds what was checked (not written to since)."""
        return self._now() == self.stamp

    def lines(self) -> Iterator[str]:
        """The file's lines, from the start."""
        offset, rest = 0, b""
        while True:
            block = os.pread(self.fd, _BLOCK, offset)
            if not block:
                break
            offset += len(block)
            *whole, rest = (rest + block).split(b"\n")
            for line in whole:
                yield (line + b"\n").decode("utf-8")
        if rest:
            yield rest.decode("utf-8")

    def copy_to(self, out: Any) -> None:
        """Write the file's bytes to ``out`` (a text file), a block at a time."""
        for line in self.lines():
            out.write(line)


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
        handle: PlanHandle,
        kind: type,
        count: int,
        read: Callable[[Path, Iterator[str]], Iterator[Any]],
        owner: Spool | None = None,
    ) -> None:
        self.handle = handle
        self.path = handle.path
        self.kind = kind
        self.count = count
        self._read = read
        self.owner = owner

    def __iter__(self) -> Iterator[T]:
        from planner.planfile import UnusablePlan

        try:
            same = self.handle.unchanged()
        except OSError as exc:
            raise UnusablePlan(self.path, f"it cannot be read ({exc})") from None
        if not same:
            raise UnusablePlan(self.path, "it changed after it was checked; load it again")
        kind = self.kind
        for record in self._read(self.path, self.handle.lines()):
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
