"""Stable addresses of entities, in source labels.

An address is what the diff, the plan, the state DB and verification all use to name one
entity, so it is built in this one place. XNAT labels never contain ``/`` or ``@`` (XNAT
replaces anything outside ``[A-Za-z0-9_-]``), so the separators below cannot collide.

    @project/resources/{label}                    project resource
    {subject}                                     subject
    {subject}/resources/{label}                   subject resource
    {subject}/{experiment}                        experiment (session or subject assessor)
    {subject}/{experiment}/resources/{label}      session resource
    {subject}/{experiment}/scans/{scan}           scan (its DICOM)
    {subject}/{experiment}/scans/{scan}/{label}   scan resource
    {subject}/{experiment}/assessors/{label}      session assessor
    {subject}/{experiment}/assessors/{label}/{r}  session assessor resource
"""

from __future__ import annotations

PROJECT = "@project"


def project_resource(label: str) -> str:
    return f"{PROJECT}/resources/{label}"


def subject(subject_label: str) -> str:
    return subject_label


def subject_resource(subject_label: str, label: str) -> str:
    return f"{subject_label}/resources/{label}"


def experiment(subject_label: str, experiment_label: str) -> str:
    return f"{subject_label}/{experiment_label}"


def experiment_resource(subject_label: str, experiment_label: str, label: str) -> str:
    return f"{subject_label}/{experiment_label}/resources/{label}"


def scan(subject_label: str, experiment_label: str, scan_id: str) -> str:
    return f"{subject_label}/{experiment_label}/scans/{scan_id}"


def scan_resource(subject_label: str, experiment_label: str, scan_id: str, label: str) -> str:
    return f"{subject_label}/{experiment_label}/scans/{scan_id}/{label}"


def assessor(subject_label: str, experiment_label: str, label: str) -> str:
    return f"{subject_label}/{experiment_label}/assessors/{label}"


def assessor_resource(
    subject_label: str, experiment_label: str, assessor_label: str, label: str
) -> str:
    return f"{subject_label}/{experiment_label}/assessors/{assessor_label}/{label}"


def subject_of(address: str) -> str | None:
    """The subject label an address belongs to, or None for project-level addresses."""
    head = address.split("/", 1)[0]
    return None if head == PROJECT else head


def step_id(kind: str, address: str) -> str:
    """Step IDs are ``kind:address``: stable across runs for the same inputs."""
    return f"{kind}:{address}"
