"""The steps of a plan, one maker per kind, and what they depend on.

``planner.diff``'s ``PlanBuilder`` decides which steps the walk needs; this module makes
them. It keeps the holders being walked (the subject's creation step, the experiment, scan
and assessor pairs with their steps), so every step depends on the step that makes its
holder, and names the destination by the destination's labels where a pair has one. Steps
record labels and accession IDs only: ``planner.restpaths`` makes the paths.
"""

from __future__ import annotations

from typing import Any

from planner import address as A
from planner.address import Address
from planner.compare import DICOM, dicom_size, files_digest, scan_field_values
from planner.inventory import (
    Assessor,
    Experiment,
    Resource,
    Scan,
    Subject,
    assessor_to_dict,
    content_fingerprint,
    experiment_to_dict,
    subject_to_dict,
)
from planner.plan import (
    STEP_CLASSES,
    CreateAssessor,
    CreateExperiment,
    CreateScan,
    CreateSubject,
    Dest,
    ImportScan,
    Level,
    Step,
    StepKind,
    UpdateDocument,
    UpdateSubject,
    UploadResource,
)
from planner.sameness import names_digest

Pair = tuple[Any, Any, str]  # (source, destination or None, the step that makes it or "")


def dest_state(entity: dict[str, Any] | None) -> str:
    """A digest of what the destination held when a field update was planned.

    Field updates are idempotent and cheap, and are planned only when something differs.
    Recording the destination's state with them makes a resumed run skip an update it
    already made, while a new plan (after the destination changed) runs it again.
    """
    return content_fingerprint(entity) if entity is not None else ""


class ExperimentWork:
    """What the walk found under one experiment that its XML document must settle."""

    def __init__(self, *, new: bool = False, own: tuple[str, ...] = ()) -> None:
        self.new = new
        self.own = own  # its own fields (and date) that differ
        self.scans: list[str] = []  # source scan IDs the destination has or will have
        self.scan_fields: dict[str, dict[str, str]] = {}
        self.imports: list[str] = []  # import steps: the document goes after them
        self.creates: list[str] = []  # create_scan steps: the document goes after them too
        self.scans_differ = 0

    def add_scan(
        self,
        scan: Scan,
        import_step: str = "",
        *,
        created: str = "",
        fields_differ: bool = False,
    ) -> None:
        self.scans.append(scan.id)
        self.scan_fields[scan.id] = scan_field_values(scan)
        if import_step:
            self.imports.append(import_step)
        if created:
            self.creates.append(created)
        self.scans_differ += fields_differ

    def why(self) -> str:
        """Why the experiment's document is written, or ``""`` when it needs not be.

        A scan import sets the scan's type to its DICOM SeriesDescription, so every import
        is followed by the document that puts the source's scan fields back.
        """
        if self.new:
            return "experiment fields and scan fields, after its creation and imports"
        reasons = list(self.own)
        if self.scans_differ:
            n = self.scans_differ
            reasons.append(f"fields of {n} scan{'s' if n != 1 else ''} differ")
        if self.imports:
            reasons.append("scan fields after the imports")
        if self.creates:
            n = len(self.creates)
            reasons.append(f"fields of {n} created scan{'s' if n != 1 else ''}")
        return "; ".join(reasons)


class StepMaker:
    """Makes the steps, in walk order, and remembers the holders they depend on."""

    def __init__(self, dst_project: str) -> None:
        self.dst_project = dst_project
        self.steps: list[Step] = []
        self.subject_step = ""  # create_subject step of the subject being walked
        self.exp: Pair = (None, None, "")
        self.scan: Pair = (None, None, "")
        self.assessor: Pair = (None, None, "")
        self.work = ExperimentWork()

    # -- common ------------------------------------------------------------------------------

    def _add(self, cls: type[Step], at: Address, depends: tuple[str, ...], **kw: Any) -> str:
        kind = _KINDS[cls]
        sid = A.step_id(kind.value, at)
        deps = tuple(d for d in depends if d)
        step = cls(id=sid, kind=kind, address=str(at), level=at.level, depends_on=deps, **kw)
        self.steps.append(step)
        return sid

    def _exp_dest(self, at: Address, **more: str) -> Dest:
        """Under the destination's label of the experiment being walked."""
        exp_src, exp_dst, _ = self.exp
        label = exp_dst.label if exp_dst is not None else exp_src.label
        return Dest(self.dst_project, at.subject, label, **more)

    # -- subjects ----------------------------------------------------------------------------

    def create_subject(self, at: Address, s: Subject) -> str:
        self.subject_step = self._add(
            CreateSubject,
            at,
            (),
            dest=Dest(self.dst_project, at.subject),
            reason="subject missing on the destination",
            source_id=s.id,
            fields=dict(sorted(s.fields.items())),
        )
        return self.subject_step

    def update_subject(self, at: Address, s: Subject, d: Subject, why: str) -> str:
        return self._add(
            UpdateSubject,
            at,
            (),
            dest=Dest(self.dst_project, at.subject),
            reason=why,
            source_id=s.id,
            fields=dict(sorted(s.fields.items())),
            dest_state=dest_state(subject_to_dict(d)),
        )

    # -- experiments and assessors ------------------------------------------------------------

    def create_experiment(self, at: Address, e: Experiment) -> str:
        return self._add(
            CreateExperiment,
            at,
            (self.subject_step,),
            dest=Dest(self.dst_project, at.subject, e.label),
            reason="experiment missing on the destination",
            source_id=e.id,
            xsi_type=e.xsi_type,
            date=e.date,
            fields=dict(sorted(e.fields.items())),
        )

    def update_experiment(self, at: Address, e: Experiment, why: str) -> str:
        """The experiment's XML document, after its creation and all its scan imports."""
        exp_dst, work = self.exp[1], self.work
        return self._add(
            UpdateDocument,
            at,
            (self.exp[2], *work.imports, *work.creates),
            dest=self._exp_dest(at),
            reason=why,
            owner_level=Level.EXPERIMENT,
            source_id=e.id,
            source_experiment_id=e.id,
            xsi_type=e.xsi_type,
            date=e.date,
            fields=dict(sorted(e.fields.items())),
            scans=tuple(sorted(work.scans)),
            scan_fields=dict(sorted(work.scan_fields.items())),
            dest_state=dest_state(experiment_to_dict(exp_dst) if exp_dst else None),
        )

    def create_assessor(self, at: Address, a: Assessor) -> str:
        return self._add(
            CreateAssessor,
            at,
            (self.exp[2],),
            dest=self._exp_dest(at, assessor=a.label),
            reason="assessor missing on the destination",
            source_id=a.id,
            xsi_type=a.xsi_type,
            date=a.date,
        )

    def update_assessor(
        self, at: Address, a: Assessor, d: Assessor | None, depends: str, why: str
    ) -> str:
        return self._add(
            UpdateDocument,
            at,
            (depends,),
            dest=self._exp_dest(at, assessor=a.label),
            reason=why,
            owner_level=Level.ASSESSOR,
            source_id=a.id,
            source_experiment_id=self.exp[0].id,
            xsi_type=a.xsi_type,
            date=a.date,
            fields=dict(sorted(a.fields.items())),
            dest_state=dest_state(assessor_to_dict(d) if d else None),
        )

    # -- scans -------------------------------------------------------------------------------

    def import_scan(self, at: Address, s: Scan, d: Scan | None, why: str) -> str:
        dicom = s.resources[DICOM]
        files, nbytes = dicom_size(s)
        return self._add(
            ImportScan,
            at,
            (self.exp[2],),
            dest=self._exp_dest(at, scan=d.id if d is not None else s.id),
            reason=why,
            source_experiment_id=self.exp[0].id,
            scan_id=s.id,
            xsi_type=s.xsi_type,
            type=s.type,
            uid=s.uid,
            file_count=files,
            bytes=nbytes,
            files_digest=files_digest(dicom),
            names_digest=names_digest(dicom),
            resource=DICOM,
            repair=d is not None,
        )

    def create_scan(self, at: Address, s: Scan) -> str:
        """A scan no DICOM import will create: PUT it, so its other resources have a home.

        It keeps the source scan ID on the destination (there is no SeriesNumber to number
        it by); its other fields follow with the experiment's XML document.
        """
        return self._add(
            CreateScan,
            at,
            (self.exp[2],),
            dest=self._exp_dest(at, scan=s.id),
            reason="scan missing on the destination, without DICOM to import",
            source_experiment_id=self.exp[0].id,
            scan_id=s.id,
            xsi_type=s.xsi_type,
            type=s.type,
            series_description=s.series_description,
        )

    # -- resources ---------------------------------------------------------------------------

    def upload_resource(self, at: Address, r: Resource, repair: bool, why: str) -> str:
        where, depends, ids = self._resource_holder(at)
        return self._add(
            UploadResource,
            at,
            depends,
            dest=Dest(**{**where.as_dict(), "label": r.label}),
            reason=why,
            label=r.label,
            format=r.format,
            content=r.content,
            file_count=r.file_count,
            bytes=r.total_bytes,
            files_digest=files_digest(r),
            repair=repair,
            **ids,
        )

    def _resource_holder(self, at: Address) -> tuple[Dest, tuple[str, ...], dict[str, Any]]:
        """Where a resource goes, the step making its holder, and the source IDs to read it."""
        if at.subject is None:
            return Dest(self.dst_project), (), {"owner_level": Level.PROJECT}
        if not at.in_experiment:
            dest = Dest(self.dst_project, at.subject)
            return dest, (self.subject_step,), {"owner_level": Level.SUBJECT}
        exp_src, _exp_dst, exp_step = self.exp
        ids: dict[str, Any] = {"source_experiment_id": exp_src.id}
        if at.assessor is not None:
            a_src, _a_dst, a_step = self.assessor
            ids |= {"owner_level": Level.ASSESSOR, "source_owner_id": a_src.id}
            return self._exp_dest(at, assessor=a_src.label), (a_step or exp_step,), ids
        if at.scan is not None:
            scan_src, scan_dst, scan_step = self.scan
            ids |= {"owner_level": Level.SCAN, "source_owner_id": scan_src.id}
            if scan_dst is None and DICOM in scan_src.resources and scan_src.uid:
                # The import numbers the new scan by its SeriesNumber, not the source ID:
                # the upload finds it by series UID once the import has made it.
                ids["scan_uid"] = scan_src.uid
            scan_id = scan_dst.id if scan_dst is not None else scan_src.id
            return self._exp_dest(at, scan=scan_id), (scan_step or exp_step,), ids
        ids["owner_level"] = Level.EXPERIMENT
        return self._exp_dest(at), (exp_step,), ids


_KINDS: dict[type[Step], StepKind] = {cls: kind for kind, cls in STEP_CLASSES.items()}
