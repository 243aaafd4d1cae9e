"""Directories only their owner may read: plan spools and inventory stores hold a project's
labels, IDs and file names, so neither they nor a parent xnatctl creates for them is left
readable by others (``mkdir(parents=True)`` would create the parents with the umask's mode).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["private_dir"]


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parent with mode 0700; an existing one is left as it
    is (it may be the user's own choice, like ``XNATCTL_STORE_DIR``)."""
    missing: list[Path] = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    return path
