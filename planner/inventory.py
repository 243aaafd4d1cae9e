"""A plain, serialisable picture of one XNAT project on one server.

Entities are keyed by their labels (what a person and both servers agree on); server IDs
(accession numbers, resource ids) are kept only as facts, because they differ between
servers. Addresses are ``subject/experiment/scan/resource`` paths in source labels and are the
keys every other module (diff, plan, state, verify) uses.

An inventory is held either in memory (plain dicts, as tests and single experiments build
it) or on disk (``planner.invstore``, as a snapshot writes it): there ``Inventory.subjects``
and ``Subject.experiments`` are read-only mappings that read an entity on access and do not
keep it, so a caller reads what it needs and never copies a project-wide mapping.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

INVENTORY_FORMAT = 1


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a resource: path relative to the resource root, size, MD5 or ``""``."""

    path: str
    size: int
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource folder (``DICOM``, ``NIFTI``, ``SNAPSHOTS``...) with its files sorted by path."""

    label: str
    format: str = ""
    content: str = ""
    files: tuple[FileEntry, ...] = ()

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True, slots=True)
class Scan:
    id: str
    type: str = ""
    series_description: str = ""
    uid: str = ""
    xsi_type: str = ""
    quality: str = ""
    resources: dict[str, Resource] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # see planner.fields


@dataclass(frozen=True, slots=True)
class Assessor:
    """A session assessor (QC, derived data) belonging to one imaging session."""

    label: str
    id: str = ""
    xsi_type: str = ""
    date: str = ""
    resources: dict[str, Resource] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)  # see planner.fields


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment of a subject: an imaging session or a subject assessor.

    ``is_imaging`` separates the two; ``shared_from`` names the owning project when the
    experiment is only shared into the inventoried project.
    """

    label: str
    id: str = ""
    xsi_type: str = ""
    date: str = ""
    subject_label: str = ""
    uid: str = ""
    modality: str = ""
    is_imaging: bool = True
    shared_from: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    scans: dict[str, Scan] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    assessors: dict[str, Assessor] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Subject:
    label: str
    id: str = ""
    shared_from: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    experiments: Mapping[str, Experiment] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Inventory:
    """One project on one server at one moment.

    ``digests`` is true when the server gave an MD5 for every file, so that comparisons may
    rely on digests rather than sizes alone.
    """

    server_url: str
    project: str
    server_version: str = ""
    taken_at: str = ""
    digests: bool = True
    resources: dict[str, Resource] = field(default_factory=dict)
    subjects: Mapping[str, Subject] = field(default_factory=dict)
    requests: int = 0

    def fingerprint(self) -> str:
        """A digest of the content (not of when or how it was read): that of
        ``content_dict()``, hashed one subject and experiment at a time, so that an inventory
        read from disk (``planner.invstore``) is never held whole."""
        return _hash_chunks(_content_chunks(self))

    def content_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "resources": {k: resource_to_dict(v) for k, v in sorted(self.resources.items())},
            "subjects": {k: subject_to_dict(v) for k, v in sorted(self.subjects.items())},
        }

    def to_dict(self) -> dict[str, Any]:
        data = {
            "format": INVENTORY_FORMAT,
            "server_url": self.server_url,
            "server_version": self.server_version,
            "taken_at": self.taken_at,
            "digests": self.digests,
            "requests": self.requests,
        }
        data.update(self.content_dict())
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Inventory:
        return cls(
            server_url=data["server_url"],
            project=data["project"],
            server_version=data.get("server_version", ""),
            taken_at=data.get("taken_at", ""),
            digests=bool(data.get("digests", True)),
            requests=int(data.get("requests", 0)),
            resources={k: resource_from_dict(v) for k, v in data.get("resources", {}).items()},
            subjects={k: subject_from_dict(v) for k, v in data.get("subjects", {}).items()},
        )


_FINGERPRINT_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_FINGERPRINT_BUFFER = 1 << 20


def content_fingerprint(data: Any) -> str:
    """SHA-256 of canonical JSON: equal content gives an equal fingerprint on any machine.

    The JSON is hashed as it is encoded, a megabyte at a time, so fingerprinting a project
    of millions of files never holds its whole JSON text in memory.
    """
    return _hash_chunks(_FINGERPRINT_ENCODER.iterencode(data))


def _hash_chunks(chunks: Iterable[str]) -> str:
    digest = hashlib.sha256()
    pending: list[str] = []
    size = 0
    for chunk in chunks:
        pending.append(chunk)
        size += len(chunk)
        if size >= _FINGERPRINT_BUFFER:
            digest.update("".join(pending).encode())
            pending.clear()
            size = 0
    digest.update("".join(pending).encode())
    return digest.hexdigest()


def _canonical_subjects(inv: Inventory) -> Iterator[tuple[str, str, Iterable[tuple[str, str]]]]:
    """(label, canonical JSON of the subject without its experiments, its experiments as
    (label, canonical JSON)), sorted by label."""
    canonical = getattr(inv.subjects, "store", None)
    if canonical is not None:
        yield from canonical.canonical_subjects()
        return
    enc = _FINGERPRINT_ENCODER.encode
    for label in sorted(inv.subjects):
        s = inv.subjects[label]
        own = subject_to_dict(replace(s, experiments={}))
        del own["experiments"]
        exps = ((k, enc(experiment_to_dict(s.experiments[k]))) for k in sorted(s.experiments))
        yield label, enc(own), exps


def _content_chunks(inv: Inventory) -> Iterator[str]:
    """The canonical JSON of ``content_dict()``, piece by piece. A subject's keys sort with
    ``experiments`` first, so its experiments are written before the rest of its document."""
    enc = _FINGERPRINT_ENCODER.encode
    resources = {k: resource_to_dict(v) for k, v in sorted(inv.resources.items())}
    yield f'{{"project":{enc(inv.project)},"resources":{enc(resources)},"subjects":{{'
    for i, (label, own, experiments) in enumerate(_canonical_subjects(inv)):
        yield f'{"," if i else ""}{enc(label)}:{{"experiments":{{'
        for j, (e_label, e_json) in enumerate(experiments):
            yield f"{',' if j else ''}{enc(e_label)}:{e_json}"
        yield "}," + own[1:]
    yield "}}"


def resource_to_dict(r: Resource) -> dict[str, Any]:
    return {
        "label": r.label,
        "format": r.format,
        "content": r.content,
        "files": [[f.path, f.size, f.digest] for f in r.files],
    }


def resource_from_dict(d: dict[str, Any]) -> Resource:
    return Resource(
        label=d["label"],
        format=d.get("format", ""),
        content=d.get("content", ""),
        files=tuple(FileEntry(p, int(s), dg) for p, s, dg in d.get("files", [])),
    )


def _resources_to_dict(resources: dict[str, Resource]) -> dict[str, Any]:
    return {k: resource_to_dict(v) for k, v in sorted(resources.items())}


def _resources_from_dict(d: dict[str, Any]) -> dict[str, Resource]:
    return {k: resource_from_dict(v) for k, v in d.items()}


def scan_to_dict(s: Scan) -> dict[str, Any]:
    data = {
        "id": s.id,
        "type": s.type,
        "series_description": s.series_description,
        "uid": s.uid,
        "xsi_type": s.xsi_type,
        "quality": s.quality,
        "resources": _resources_to_dict(s.resources),
    }
    if s.fields:  # only when present, so inventories without them keep their fingerprint
        data["fields"] = dict(sorted(s.fields.items()))
    return data


def scan_from_dict(d: dict[str, Any]) -> Scan:
    return Scan(
        id=d["id"],
        type=d.get("type", ""),
        series_description=d.get("series_description", ""),
        uid=d.get("uid", ""),
        xsi_type=d.get("xsi_type", ""),
        quality=d.get("quality", ""),
        resources=_resources_from_dict(d.get("resources", {})),
        fields=dict(d.get("fields", {})),
    )


def assessor_to_dict(a: Assessor) -> dict[str, Any]:
    data = {
        "label": a.label,
        "id": a.id,
        "xsi_type": a.xsi_type,
        "date": a.date,
        "resources": _resources_to_dict(a.resources),
    }
    if a.fields:
        data["fields"] = dict(sorted(a.fields.items()))
    return data


def assessor_from_dict(d: dict[str, Any]) -> Assessor:
    return Assessor(
        label=d["label"],
        id=d.get("id", ""),
        xsi_type=d.get("xsi_type", ""),
        date=d.get("date", ""),
        resources=_resources_from_dict(d.get("resources", {})),
        fields=dict(d.get("fields", {})),
    )


def experiment_to_dict(e: Experiment) -> dict[str, Any]:
    return {
        "label": e.label,
        "id": e.id,
        "xsi_type": e.xsi_type,
        "date": e.date,
        "subject_label": e.subject_label,
        "uid": e.uid,
        "modality": e.modality,
        "is_imaging": e.is_imaging,
        "shared_from": e.shared_from,
        "fields": dict(sorted(e.fields.items())),
        "scans": {k: scan_to_dict(v) for k, v in sorted(e.scans.items())},
        "resources": _resources_to_dict(e.resources),
        "assessors": {k: assessor_to_dict(v) for k, v in sorted(e.assessors.items())},
    }


def experiment_from_dict(d: dict[str, Any]) -> Experiment:
    return Experiment(
        label=d["label"],
        id=d.get("id", ""),
        xsi_type=d.get("xsi_type", ""),
        date=d.get("date", ""),
        subject_label=d.get("subject_label", ""),
        uid=d.get("uid", ""),
        modality=d.get("modality", ""),
        is_imaging=bool(d.get("is_imaging", True)),
        shared_from=d.get("shared_from", ""),
        fields=dict(d.get("fields", {})),
        scans={k: scan_from_dict(v) for k, v in d.get("scans", {}).items()},
        resources=_resources_from_dict(d.get("resources", {})),
        assessors={k: assessor_from_dict(v) for k, v in d.get("assessors", {}).items()},
    )


def subject_to_dict(s: Subject) -> dict[str, Any]:
    return {
        "label": s.label,
        "id": s.id,
        "shared_from": s.shared_from,
        "fields": dict(sorted(s.fields.items())),
        "resources": _resources_to_dict(s.resources),
        "experiments": {k: experiment_to_dict(v) for k, v in sorted(s.experiments.items())},
    }


def subject_from_dict(d: dict[str, Any]) -> Subject:
    return Subject(
        label=d["label"],
        id=d.get("id", ""),
        shared_from=d.get("shared_from", ""),
        fields=dict(d.get("fields", {})),
        resources=_resources_from_dict(d.get("resources", {})),
        experiments={k: experiment_from_dict(v) for k, v in d.get("experiments", {}).items()},
    )
