"""Stable addresses of entities, in source labels, as values.

An address is what the diff, the plan, the state DB and verification all use to name one
entity. It is a value (``Address``) with a parent, a level and the labels of what it belongs
to, so no module takes its text apart by hand; its text (``str``) is what plan files, the
state DB and outputs hold, and ``Address.parse`` reads that text back. XNAT labels never
contain ``/`` or ``@`` (XNAT replaces anything outside ``[A-Za-z0-9_-]``), so the separators
below cannot collide.

    @project                                      the project itself
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

from dataclasses import dataclass, field, replace
from functools import lru_cache

from planner.plan import Level

PROJECT = "@project"
_RESOURCES = "resources"
_SCANS = "scans"
_ASSESSORS = "assessors"


class BadAddress(ValueError):
    """Text that is not an address, or labels that cannot make one."""


@dataclass(frozen=True)
class Address:
    """One entity's place in a project: the labels of everything that holds it, and its own.

    ``subject`` is None for the project and its resources; ``scan`` and ``assessor`` need an
    ``experiment``, which needs a ``subject``; ``resource`` is the label of a resource held
    by whichever of these is deepest. Build one with the constructors below (or the
    ``with_*`` methods of its holder) and read one with ``parse``.
    """

    subject: str | None = None
    experiment: str | None = None
    scan: str | None = None
    assessor: str | None = None
    resource: str | None = None
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("subject", "experiment", "scan", "assessor", "resource"):
            value = getattr(self, name)
            if value is not None and (not value or "/" in value):
                raise BadAddress(f"{name} label {value!r} cannot be part of an address")
        if self.subject is not None and self.subject.startswith("@"):
            raise BadAddress(f"subject label {self.subject!r} cannot be part of an address")
        if self.experiment is not None and self.subject is None:
            raise BadAddress(f"experiment {self.experiment!r} has no subject")
        if (self.scan is not None or self.assessor is not None) and self.experiment is None:
            raise BadAddress("a scan or assessor address needs an experiment")
        if self.scan is not None and self.assessor is not None:
            raise BadAddress("an address names a scan or an assessor, not both")
        object.__setattr__(self, "_text", self._render())

    # -- reading and writing ----------------------------------------------------------------

    @staticmethod
    def parse(text: str) -> Address:
        """The address written as ``text``; ``BadAddress`` when it is not one."""
        return _parse(text)

    def __str__(self) -> str:
        return self._text

    def _render(self) -> str:
        if self.subject is None:
            base = PROJECT
        elif self.experiment is None:
            base = self.subject
        else:
            base = f"{self.subject}/{self.experiment}"
            if self.scan is not None:
                base += f"/{_SCANS}/{self.scan}"
            elif self.assessor is not None:
                base += f"/{_ASSESSORS}/{self.assessor}"
        if self.resource is None:
            return base
        if self.scan is not None or self.assessor is not None:
            return f"{base}/{self.resource}"
        return f"{base}/{_RESOURCES}/{self.resource}"

    # -- what it is and where it sits -------------------------------------------------------

    @property
    def level(self) -> Level:
        if self.resource is not None:
            return Level.RESOURCE
        if self.scan is not None:
            return Level.SCAN
        if self.assessor is not None:
            return Level.ASSESSOR
        if self.experiment is not None:
            return Level.EXPERIMENT
        if self.subject is not None:
            return Level.SUBJECT
        return Level.PROJECT

    @property
    def parent(self) -> Address | None:
        """The address of the entity that holds this one; None for the project."""
        if self.resource is not None:
            return replace(self, resource=None)
        if self.scan is not None or self.assessor is not None:
            return replace(self, scan=None, assessor=None)
        if self.experiment is not None:
            return replace(self, experiment=None)
        if self.subject is not None:
            return PROJECT_ADDRESS
        return None

    def up_to(self, level: Level) -> Address | None:
        """The address of what holds this one at ``level`` (itself when at that level), or
        None when nothing does (a subject resource is in no experiment)."""
        at: Address | None = self
        while at is not None and at.level != level:
            at = at.parent
        return at

    @property
    def in_experiment(self) -> bool:
        """Is this an experiment or something under one?"""
        return self.experiment is not None

    # -- what it holds ----------------------------------------------------------------------

    def with_experiment(self, label: str) -> Address:
        return Address(self.subject, label)

    def with_scan(self, scan_id: str) -> Address:
        return Address(self.subject, self.experiment, scan=scan_id)

    def with_assessor(self, label: str) -> Address:
        return Address(self.subject, self.experiment, assessor=label)

    def with_resource(self, label: str) -> Address:
        if self.resource is not None:
            raise BadAddress(f"a resource holds no resource ({self}/{label})")
        return replace(self, resource=label)


PROJECT_ADDRESS = Address()


@lru_cache(maxsize=4096)
def _parse(text: str) -> Address:
    parts = text.split("/")
    n = len(parts)
    try:
        if parts[0] == PROJECT:
            if n == 1:
                return PROJECT_ADDRESS
            if n == 3 and parts[1] == _RESOURCES:
                return Address(resource=parts[2])
        elif n == 1:
            return Address(parts[0])
        elif n == 2:
            return Address(parts[0], parts[1])
        elif n == 3 and parts[1] == _RESOURCES:
            return Address(parts[0], resource=parts[2])
        elif n in (4, 5):
            subject, experiment, kind, name = parts[:4]
            own = parts[4] if n == 5 else None
            if kind == _RESOURCES and n == 4:
                return Address(subject, experiment, resource=name)
            if kind == _SCANS:
                return Address(subject, experiment, scan=name, resource=own)
            if kind == _ASSESSORS:
                return Address(subject, experiment, assessor=name, resource=own)
    except BadAddress as exc:
        raise BadAddress(f"{text!r} is not an address: {exc}") from None
    raise BadAddress(f"{text!r} is not an address")


# -- constructors -----------------------------------------------------------------------------


def project_resource(label: str) -> Address:
    return PROJECT_ADDRESS.with_resource(label)


def subject(subject_label: str) -> Address:
    return Address(subject_label)


def subject_resource(subject_label: str, label: str) -> Address:
    return Address(subject_label, resource=label)


def experiment(subject_label: str, experiment_label: str) -> Address:
    return Address(subject_label, experiment_label)


def experiment_resource(subject_label: str, experiment_label: str, label: str) -> Address:
    return Address(subject_label, experiment_label, resource=label)


def scan(subject_label: str, experiment_label: str, scan_id: str) -> Address:
    return Address(subject_label, experiment_label, scan=scan_id)


def scan_resource(subject_label: str, experiment_label: str, scan_id: str, label: str) -> Address:
    return Address(subject_label, experiment_label, scan=scan_id, resource=label)


def assessor(subject_label: str, experiment_label: str, label: str) -> Address:
    return Address(subject_label, experiment_label, assessor=label)


def assessor_resource(
    subject_label: str, experiment_label: str, assessor_label: str, label: str
) -> Address:
    return Address(subject_label, experiment_label, assessor=assessor_label, resource=label)


def step_id(kind: str, address: Address | str) -> str:
    """Step IDs are ``kind:address``: stable across runs for the same inputs."""
    return f"{kind}:{address}"
