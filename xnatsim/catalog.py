"""Which catalog entries a `.../files/{path}` request names, as XNAT 1.8.11 decides it.

Pure functions over relative file paths, so the sometimes surprising rules of XNAT's
`FileList` restlet and `CatalogUtils` are written down (and tested) in one place.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# `ZipUtils.isCompressedFile` (via `fileExtraction.Format`): names `extract=true` unpacks.
COMPRESSED_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".gz", ".zar", ".xar")


def is_compressed_name(name: str) -> bool:
    return name.lower().endswith(COMPRESSED_SUFFIXES)


def star_regex(path: str) -> re.Pattern[str] | None:
    """`FileList`/`CatalogUtils`: a path ending in `*` is a regex with that star as `.*`
    (the rest of the path is used as a regex too, as XNAT does)."""
    if not path.endswith("*"):
        return None
    try:
        return re.compile(path[:-1] + ".*")
    except re.error:
        return None


def in_folder(paths: Iterable[str], folder: str, recursive: bool = True) -> list[str]:
    """`FileList.getFolderFilter` for a path ending in `/`: entries whose relative path starts
    with it. With `recursive=false` XNAT keeps an entry only when the rest of its path, from
    one character past the folder, still holds a `/`: files in deeper sub-folders, not the
    folder's own files. That is XNAT 1.8.11's rule, kept as is."""
    out = []
    for rel in paths:
        if not rel.startswith(folder):
            continue
        if recursive or "/" in rel[len(folder) + 1 :]:
            out.append(rel)
    return out


def select_for_get(paths: Iterable[str], path: str, folder: bool, recursive: bool) -> list[str]:
    """Entries a GET of `files/{path}` names: the exact entry; else, for a path ending in
    `/`, the folder's entries; else, for a path ending in `*`, the regex matches."""
    paths = list(paths)
    if path in paths:
        return [path]
    if folder:
        return in_folder(paths, path + "/", recursive)
    rx = star_regex(path)
    if rx is not None:
        return [p for p in paths if rx.fullmatch(p)]
    return []


def select_for_delete(paths: Iterable[str], path: str) -> list[str]:
    """`CatalogUtils.findCatEntriesWithinPath`: every entry equal to or merely *starting
    with* the path (a plain string prefix: deleting `files/1.dcm` also takes `1.dcm.bak`, and
    an empty path takes them all), or matching a trailing-`*` regex."""
    rx = star_regex(path)
    return [p for p in paths if p.startswith(path) or (rx is not None and rx.fullmatch(p))]
