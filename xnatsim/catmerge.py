"""How an incoming scan catalog merges into an archived one, as XNAT 1.8.11 decides it.

Pure functions over catalog entries (file name plus, for DICOM entries, the instance's
SOPInstanceUID), so the rules of `MergeCatCatalog` and `SessionOverwriteCheck` are written
down and tested in one place; the archiver moves the files.
"""

from __future__ import annotations

from dataclasses import dataclass

# MergeCatCatalog's messages.
DUPLICATE_DICOM = "Duplicate DICOM file uploaded."
DUPLICATE_FILE = "Duplicate file uploaded."
NAME_OF_NON_DICOM = (
    "A non-DICOM file exists with the same name as an incoming DICOM file. "
    "There is no way to override this conflict, you will need to fix your data."
)
NAME_OTHER_UID = (
    "A DICOM file with the same name but different UID already exists. "
    "There is no way to override this conflict, you will need to fix your data."
)
# MergeSessionsA's messages.
CAT_ENTRY_MATCH = "Session already exists with the same resources."
HAS_FILES = "Session already exists with matching files."


@dataclass(frozen=True)
class Entry:
    """One catalog entry: a file name in the resource and, for a DICOM entry
    (`cat:dcmEntry`), its SOPInstanceUID. A plain `cat:entry` has uid ""."""

    name: str
    uid: str = ""

    @property
    def is_dicom(self) -> bool:
        return bool(self.uid)


class CatalogConflict(Exception):
    """The incoming entry cannot be merged (`MergeCatCatalog.DCMEntryConflict` and
    `EntryConflict`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Merged:
    """One incoming entry's fate: `replaces` is the archived entry it overwrites (None when
    it is added). When that entry has another name, its old file goes."""

    entry: Entry
    replaces: Entry | None

    @property
    def renames(self) -> bool:
        return self.replaces is not None and self.replaces.name != self.entry.name


def merge_catalog(
    existing: list[Entry], incoming: list[Entry], *, overwrite: bool, use_uid: bool
) -> list[Merged]:
    """`MergeCatCatalog.merge`: each incoming entry is matched to an archived one by UID first
    (when `use_uid`, XNAT's `useSopInstanceUidToUniquelyIdentifyDicom`), else by name. A match
    without `overwrite` is a conflict. With it, a DICOM entry matched by UID must not land on a
    name held by a non-DICOM entry or by a DICOM entry of another UID: neither can be
    overridden. The archived catalog changes as entries merge, so later entries see earlier
    ones, as the Java's in-place updates do."""
    by_name: dict[str, Entry] = {e.name: e for e in existing}
    by_uid: dict[str, Entry] = {e.uid: e for e in existing if e.is_dicom}
    out: list[Merged] = []
    for new in incoming:
        match = by_uid.get(new.uid) if use_uid and new.is_dicom else None
        if match is None:
            match = by_name.get(new.name)
        if match is None:
            out.append(Merged(new, None))
        else:
            if not overwrite:
                raise CatalogConflict(DUPLICATE_DICOM if match.is_dicom else DUPLICATE_FILE)
            if use_uid and new.is_dicom:  # throwForDicomUidConflict
                holder = by_name.get(new.name)
                if holder is not None and not holder.is_dicom:
                    raise CatalogConflict(NAME_OF_NON_DICOM)
                if holder is not None and holder.uid != new.uid:
                    raise CatalogConflict(NAME_OTHER_UID)
            out.append(Merged(new, match))
            if by_name.get(match.name) is match:
                del by_name[match.name]
            if match.is_dicom and by_uid.get(match.uid) is match:
                del by_uid[match.uid]
        by_name[new.name] = new
        if new.is_dicom:
            by_uid[new.uid] = new
    return out


def overwrite_conflict(existing: list[Entry], incoming: list[Entry]) -> str | None:
    """`MergeSessionsA.checkForConflict` without overwrite permission: a file of the same name
    already in the archived scan is `HAS_FILES` (`FileUtils.FindFirstMatch` over the
    directories); else an entry of the same SOPInstanceUID, whatever the site's matching
    preference, is `CAT_ENTRY_MATCH` (`SessionOverwriteCheck.detectOverwrite`)."""
    names = {e.name for e in existing}
    if any(e.name in names for e in incoming):
        return HAS_FILES
    uids = {e.uid for e in existing if e.is_dicom}
    if any(e.is_dicom and e.uid in uids for e in incoming):
        return CAT_ENTRY_MATCH
    return None
