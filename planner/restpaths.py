"""XNAT's REST URL scheme, in one place: every ``/data/...`` path the planner sends.

XNAT names an entity two ways: by labels under its project
(``/data/projects/P/subjects/S/experiments/E/scans/ID/resources/R/files``), which is how
writes reach the destination, and by accession ID (``/data/experiments/ID/...``), which is
how reads reach one source experiment whatever subject holds it. Every label or ID is one
path segment, percent-encoded by ``quote_segment``, so a label with a space or ``+`` never
splits or shifts a path. Functions here only build text; they send nothing.
"""

from __future__ import annotations

from planner.address import Address
from planner.backend import quote_segment as q
from planner.plan import Dest, ImportScan, Level, Step, UpdateDocument, UploadResource

__all__ = ["q"]

PROJECTS = "/data/projects"
IMPORT_SERVICE = "/data/services/import"
PREARCHIVE_DELETE = "/data/services/prearchive/delete"
SESSION = "/data/JSESSION"  # log in (POST) and out (DELETE)
# XNAT's newer API, beside /data: who is logged in, the build, the site anonymization switch
WHOAMI = "/xapi/users/username"
BUILD_INFO = "/xapi/siteConfig/buildInfo"
SITE_ANONYMIZATION = "/xapi/anonymize/site/enabled"


# -- by labels, under a project ----------------------------------------------------------------


def project(p: str) -> str:
    return f"{PROJECTS}/{q(p)}"


def project_subjects(p: str) -> str:
    """The project's subject listing."""
    return f"{project(p)}/subjects"


def project_experiments(p: str) -> str:
    """The project's experiment listing (every subject's), or one experiment by label."""
    return f"{project(p)}/experiments"


def project_experiment(p: str, label: str) -> str:
    return f"{project_experiments(p)}/{q(label)}"


def subject(p: str, s: str) -> str:
    return f"{project_subjects(p)}/{q(s)}"


def subject_experiments(p: str, s: str) -> str:
    return f"{subject(p, s)}/experiments"


def experiment(p: str, s: str, e: str) -> str:
    return f"{subject_experiments(p, s)}/{q(e)}"


def scan(p: str, s: str, e: str, scan_id: str) -> str:
    return f"{experiment(p, s, e)}/scans/{q(scan_id)}"


def assessor(p: str, s: str, e: str, label: str) -> str:
    return f"{experiment(p, s, e)}/assessors/{q(label)}"


def owner(
    p: str,
    s: str | None = None,
    e: str | None = None,
    *,
    scan_id: str | None = None,
    assessor_label: str | None = None,
) -> str:
    """The entity holding a resource, by labels: the project, a subject, an experiment, or
    a scan or assessor of an experiment (the deepest one given)."""
    if not s:
        return project(p)
    if not e:
        return subject(p, s)
    if scan_id:
        return scan(p, s, e, scan_id)
    if assessor_label:
        return assessor(p, s, e, assessor_label)
    return experiment(p, s, e)


def resource(owner_path: str, label: str) -> str:
    """A resource (folder) of the entity at ``owner_path``."""
    return f"{owner_path}/resources/{q(label)}"


def files(resource_path: str) -> str:
    """The files of a resource (``?format=zip`` downloads them in one zip)."""
    return f"{resource_path}/files"


def resources(owner_path: str) -> str:
    """The resource listing of the entity at ``owner_path``."""
    return f"{owner_path}/resources"


def owner_files(owner_path: str) -> str:
    """Every file of every resource of the entity at ``owner_path``, in one listing (each
    row names its resource): how a snapshot reads a whole level in one request."""
    return f"{owner_path}/files"


def prearchive(p: str) -> str:
    """The project's prearchive listing."""
    return f"/data/prearchive/projects/{q(p)}"


def listed(url: str) -> str:
    """The REST path of an entry a listing names by URL: XNAT lists prearchive sessions as
    ``/prearchive/projects/P/TS/FOLDER``, without the ``/data`` every request needs."""
    return f"/data{url}" if url.startswith("/prearchive/") else url


# -- by accession ID ---------------------------------------------------------------------------


def experiment_by_id(experiment_id: str) -> str:
    return f"/data/experiments/{q(experiment_id)}"


def scan_by_id(experiment_id: str, scan_id: str) -> str:
    return f"{experiment_by_id(experiment_id)}/scans/{q(scan_id)}"


def assessor_by_id(experiment_id: str, assessor_id: str) -> str:
    return f"{experiment_by_id(experiment_id)}/assessors/{q(assessor_id)}"


def all_scans(experiment_id: str) -> str:
    """Every scan of one experiment at once (``scans/ALL``)."""
    return f"{experiment_by_id(experiment_id)}/scans/ALL"


def all_scan_files(experiment_id: str, resource_label: str = "DICOM") -> str:
    """Every scan's files of one resource label, in one download."""
    return files(resource(all_scans(experiment_id), resource_label))


def source_resource(
    project_id: str,
    subject_label: str | None = None,
    *,
    experiment_id: str | None = None,
    scan_id: str | None = None,
    assessor_id: str | None = None,
    label: str,
) -> str:
    """Where a source resource is read from: project and subject resources by label, anything
    in an experiment by the experiment's accession ID (and the scan's or assessor's ID)."""
    if experiment_id is None:
        if subject_label is None:
            return resource(project(project_id), label)
        return resource(subject(project_id, subject_label), label)
    if scan_id is not None:
        return resource(scan_by_id(experiment_id, scan_id), label)
    if assessor_id is not None:
        return resource(assessor_by_id(experiment_id, assessor_id), label)
    return resource(experiment_by_id(experiment_id), label)


# -- where a step reads and writes -------------------------------------------------------------


def dest_owner(d: Dest) -> str:
    """The destination entity a step's ``Dest`` names (a resource's holder for an upload)."""
    return owner(d.project, d.subject, d.experiment, scan_id=d.scan, assessor_label=d.assessor)


def document_source(step: UpdateDocument) -> str:
    """The source XML document an update step reads: its experiment's or assessor's."""
    if step.owner_level == Level.ASSESSOR:
        return assessor_by_id(step.source_experiment_id, step.source_id)
    return experiment_by_id(step.source_experiment_id)


def upload_source(step: UploadResource, source_project: str) -> str:
    """The source resource an upload reads: by labels outside experiments, by accession IDs
    inside one."""
    at = Address.parse(step.address)
    level, eid, oid = step.owner_level, step.source_experiment_id, step.source_owner_id
    if level in (Level.PROJECT, Level.SUBJECT):
        return source_resource(source_project, at.subject, label=step.label)
    if level == Level.SCAN:
        return source_resource(source_project, experiment_id=eid, scan_id=oid, label=step.label)
    if level == Level.ASSESSOR:
        return source_resource(source_project, experiment_id=eid, assessor_id=oid, label=step.label)
    return source_resource(source_project, experiment_id=eid, label=step.label)


def import_source(step: ImportScan) -> str:
    """The source scan's DICOM files an import downloads."""
    return files(resource(scan_by_id(step.source_experiment_id, step.scan_id), step.resource))


def step_source(step: Step, source_project: str) -> str:
    """The source path a step reads (a resource, a document, a scan's DICOM), or ``""`` for
    a step that reads nothing from the source (a creation)."""
    if isinstance(step, UploadResource):
        return upload_source(step, source_project)
    if isinstance(step, UpdateDocument):
        return document_source(step)
    if isinstance(step, ImportScan):
        return import_source(step)
    return ""
