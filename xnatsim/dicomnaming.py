"""File names of imported DICOM, as XNAT 1.8.11 chooses them.

DICOM-zip / gradual-DICOM (`GradualDicomImporter.getSafeFile`): a file keeps its uploaded base
name unless the import says `rename=true`; when that name is already taken in the scan's
directory by another instance (another SOPInstanceUID or SOPClassUID), or with `rename=true`,
the site's file-name template names it (`TemplatizedDicomFileNamer`, default
`${StudyInstanceUID}-${SeriesNumber}-${InstanceNumber}-${HashSOPClassUIDWithSOPInstanceUID}`).
The same instance under the same name replaces the earlier copy.

The session importer (`Restructurer.run`, `Utils.getUnique`) never renames: a second file
under a taken name becomes `name_1`, `name_2`...
"""

from __future__ import annotations

import re

import pydicom

DEFAULT_TEMPLATE = (
    "${StudyInstanceUID}-${SeriesNumber}-${InstanceNumber}-${HashSOPClassUIDWithSOPInstanceUID}"
)
_VARIABLE = re.compile(r"\$\{([A-Za-z0-9]+)\}")
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]+$")


def _java_string_hash(text: str) -> int:
    """Java's `String.hashCode` (UTF-16 code units, 32-bit overflow)."""
    h = 0
    data = text.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + int.from_bytes(data[i : i + 2], "big")) & 0xFFFFFFFF
    return h


def _java_list_hash(values: list[str]) -> int:
    """Java's `List.hashCode` over strings, as an unsigned 32-bit value."""
    h = 1
    for value in values:
        h = (31 * h + _java_string_hash(value)) & 0xFFFFFFFF
    return h


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def _value(ds: pydicom.Dataset, keyword: str) -> str:
    value = ds.get(keyword, None)
    text = "" if value is None else str(value).strip()
    return text or f"no-value-for-{keyword}"


def template_name(ds: pydicom.Dataset, template: str = DEFAULT_TEMPLATE) -> str:
    """The name `TemplatizedDicomFileNamer.makeFileName` gives `ds`.

    A `Hash{A}With{B}...` variable is Java's `List.hashCode` of the named values, masked to
    32 bits and written in base 36; a missing value reads `no-value-for-{keyword}`; `.dcm` is
    added when the template has no extension.
    """
    tail = template[template.rfind(".") :] if "." in template else ""
    naming = template if tail and _EXTENSION.match(tail) else template + ".dcm"

    def substitute(match: re.Match) -> str:
        variable = match.group(1)
        if variable.startswith("Hash"):
            parts = variable[4:].split("With")
            return _base36(_java_list_hash([_value(ds, p) for p in parts]))
        return _value(ds, variable)

    name = _VARIABLE.sub(substitute, naming)
    return name.lstrip(".") or name


def same_instance(a: pydicom.Dataset, b: pydicom.Dataset) -> bool:
    return str(a.get("SOPInstanceUID", "")) == str(b.get("SOPInstanceUID", "")) and str(
        a.get("SOPClassUID", "")
    ) == str(b.get("SOPClassUID", ""))


def unique_name(name: str, taken: set[str]) -> str:
    """`Utils.getUnique`: the name itself if free, else `name_1`, `name_2`..."""
    if name not in taken:
        return name
    n = 1
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"
