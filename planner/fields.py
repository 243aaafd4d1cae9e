"""Which metadata fields count, and how they are read from and written to XNAT.

A migration carries the fields people enter (demographics, visit, notes, QC verdicts,
custom fields), and never the ones a server owns (IDs, insert dates, URIs) or derives from
the DICOM on import (UIDs, modality, scanner). This module is the one list of what counts;
the snapshot reads fields through it, the comparison compares exactly what it returns, the
apply steps write it back, and ``docs/metadata.md`` describes it.

Fields are plain ``name -> text`` maps. Custom fields are kept as ``fields/NAME`` so they
can never collide with a built-in name. Only non-empty source values count: a field the
source leaves empty is never reported, nor cleared on the destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CUSTOM_PREFIX = "fields/"

# Subjects: XNAT's demographics (all under the subject's ``demographics`` element) and
# the subject's own plain fields.
DEMOGRAPHICS = (
    "gender",
    "dob",
    "yob",
    "age",
    "handedness",
    "education",
    "race",
    "ethnicity",
    "ses",
    "height",
    "weight",
)
SUBJECT_OWN = ("group", "src")
SUBJECT_FIELDS = (*DEMOGRAPHICS, *SUBJECT_OWN)

# Imaging sessions: what people enter; the DICOM import sets the rest (UID, modality,
# scanner, operator...) on the destination from the same files.
SESSION_FIELDS = ("visit_id", "visit", "session_type", "note", "acquisition_site")

# Scans: ``type``, ``series_description`` and ``quality`` are scan attributes of the
# inventory; the others are kept in ``Scan.fields``.
SCAN_ATTRIBUTE_FIELDS = ("type", "series_description", "quality")
SCAN_EXTRA_FIELDS = ("note", "condition", "documentation")

# Never counted anywhere: identity and bookkeeping the server owns, and values the DICOM
# import derives. Assessors (subject and session) count every other plain field, because
# their fields are defined by plugins this tool cannot list.
SERVER_OWNED = frozenset(
    {
        "ID",
        "id",
        "URI",
        "label",
        "project",
        "xsiType",
        "date",
        "insert_date",
        "insert_user",
        "last_modified",
        "subject_ID",
        "imageSession_ID",
        "image_session_ID",
        "session_ID",
        "prearchivePath",
        "UID",
        "modality",
        "xnat_imagescandata_id",
        "xnat_abstractresource_id",
    }
)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _children(item: Mapping[str, Any], suffix: str) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for child in item.get("children") or ():
        name = str(child.get("field", ""))
        if name == suffix or name.endswith("/" + suffix):
            out.extend(i for i in child.get("items") or () if isinstance(i, Mapping))
    return out


def custom_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """``fields/NAME -> value`` from an object document's ``fields/field`` children."""
    out: dict[str, str] = {}
    for f in _children(item, "fields/field"):
        df = f.get("data_fields") or {}
        name, value = _text(df.get("name")), _text(df.get("field"))
        if name and value:
            out[CUSTOM_PREFIX + name] = value
    return out


def _picked(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    return {k: _text(data[k]) for k in names if _text(data.get(k))}


def subject_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """The counted fields of a subject's ``format=json`` document item."""
    df = item.get("data_fields") or {}
    out = _picked(df, SUBJECT_OWN)
    out.update(_picked(df, DEMOGRAPHICS))  # some servers flatten demographics
    for demo in _children(item, "demographics"):
        out.update(_picked(demo.get("data_fields") or {}, DEMOGRAPHICS))
    out.update(custom_fields(item))
    return dict(sorted(out.items()))


def session_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """The counted fields of an imaging session's document item."""
    out = _picked(item.get("data_fields") or {}, SESSION_FIELDS)
    out.update(custom_fields(item))
    return dict(sorted(out.items()))


def assessor_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """The counted fields of a subject or session assessor: every plain, non-owned field."""
    df = item.get("data_fields") or {}
    out = {
        k: _text(v)
        for k, v in df.items()
        if k not in SERVER_OWNED and not isinstance(v, dict | list) and _text(v)
    }
    out.update(custom_fields(item))
    return dict(sorted(out.items()))


def scan_extra_fields(item: Mapping[str, Any]) -> dict[str, str]:
    """The counted scan fields beyond the inventory's scan attributes."""
    return _picked(item.get("data_fields") or {}, SCAN_EXTRA_FIELDS)


def experiment_fields(item: Mapping[str, Any], *, imaging: bool) -> dict[str, str]:
    return session_fields(item) if imaging else assessor_fields(item)


# -- writing as PUT parameters ----------------------------------------------------------------


def subject_params(fields: Mapping[str, str]) -> dict[str, str]:
    """PUT parameters that set a subject's fields (XNAT's short names, XML paths for custom
    fields); empty values are left out so nothing is cleared."""
    out: dict[str, str] = {}
    for key, value in fields.items():
        if not value:
            continue
        if key.startswith(CUSTOM_PREFIX):
            out[f"xnat:subjectData/fields/field[name={key[len(CUSTOM_PREFIX) :]}]/field"] = value
        elif key in SUBJECT_FIELDS:
            out[key] = value
    return out


def experiment_params(xsi_type: str, fields: Mapping[str, str]) -> dict[str, str]:
    """PUT parameters for an experiment's fields, as XML paths under its xsiType.

    Creation only sets what parameters can; the experiment's XML document (applied after the
    scans are imported) carries the full set.
    """
    out: dict[str, str] = {}
    if not xsi_type:
        return out
    for key, value in fields.items():
        if not value:
            continue
        if key.startswith(CUSTOM_PREFIX):
            out[f"{xsi_type}/fields/field[name={key[len(CUSTOM_PREFIX) :]}]/field"] = value
        elif "/" not in key:
            out[f"{xsi_type}/{key}"] = value
    return out


def compare_fields(src: Mapping[str, str], dst: Mapping[str, str]) -> tuple[str, ...]:
    """Fields the source has and the destination lacks or holds otherwise, by name."""
    return tuple(
        f"{k} {v!r} != {dst.get(k, '')!r}" for k, v in sorted(src.items()) if v and dst.get(k) != v
    )
