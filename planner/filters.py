"""The one place the transfer config's filters are applied to an inventory.

Plan, apply, verify and the drift check all call ``apply_filters`` on the source inventory
(and the diff on the destination's too), so they can never disagree about what a filter
keeps. The result is a new ``Inventory`` holding only what is kept, plus what was left out,
each at the highest level left out: an excluded session is reported once, not once per scan.

What each filter governs (see ``planner.config`` for the full semantics):

- project resources: ``filtering.project_resources`` by label;
- subject resources: ``filtering.subject_resources`` by label (subjects are never filtered);
- experiments that are not imaging sessions: ``filtering.subject_assessors`` by xsiType,
  kept whole;
- imaging sessions: ``filtering.imaging_sessions`` by xsiType; then, for a kept type with an
  entry, its ``scan_types`` (scans by type), ``scan_resources`` (scan resources by label,
  together with the top-level ``filtering.scan_resources``), ``resources`` (session
  resources by label) and ``session_assessors`` (by assessor xsiType, case-insensitively,
  like session xsiTypes). A kept scan whose
  resources are all left out stays in the inventory with no resources.

Shared data (subjects and experiments another project shares into the source project) is
left out by ``apply_sharing`` unless ``copy_shared`` is set, on both sides, and reported.
``filter_inventory`` and ``filter_experiment`` apply the filters a plan records (its config
as a dict), for apply and verification to see what the plan saw.

Kept objects are reused, not copied: an experiment nothing was removed from is the very
object of the input inventory, and resources (with their file tuples) are always shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from planner import address as A
from planner.address import PROJECT_ADDRESS, Address
from planner.config import Filtering, ItemFilter, SessionTypeFilter, TransferConfig, TypedFilter
from planner.inventory import Experiment, Inventory, Resource, Scan, Subject
from planner.invstore import LazyMapping, is_lazy, store_of
from planner.plan import Level

__all__ = [
    "Filtered",
    "Scope",
    "apply_filters",
    "apply_sharing",
    "in_scope",
    "shared_reason",
    "skip_reason",
]

Skip = tuple[str, Level, str]


def _skip(at: Address, reason: str) -> Skip:
    return (str(at), at.level, reason)


@dataclass(frozen=True)
class Filtered:
    inventory: Inventory  # a new Inventory holding only what is kept
    skipped: tuple[Skip, ...]  # (address, level, reason), at the highest level left out

    def skipped_at(self, level: Level) -> tuple[Skip, ...]:
        return tuple(s for s in self.skipped if s[1] is level)


def skip_reason(filter_name: str, value: str) -> str:
    """The reason text for something a filter left out (stable: tests and views rely on it)."""
    return f"filter: {filter_name} excludes {value or '(no type)'}"


class _Cached:
    """Memoised ``allows`` for one filter: inventories repeat the same few values a lot."""

    __slots__ = ("_allows", "_cache", "everything")

    def __init__(self, f: ItemFilter | TypedFilter) -> None:
        self._allows = f.allows
        self._cache: dict[str, bool] = {}
        self.everything = f.sync_type == "all"

    def __call__(self, value: str) -> bool:
        if self.everything:
            return True
        hit = self._cache.get(value)
        if hit is None:
            hit = self._cache[value] = self._allows(value)
        return hit


def _lowered(f: ItemFilter) -> ItemFilter:
    """Assessor xsiTypes match case-insensitively, like session xsiTypes."""
    return ItemFilter(f.sync_type, tuple(i.lower() for i in f.items))


class _TypeRules:
    """The cached filters for one imaging session type."""

    __slots__ = ("assessors", "entry_name", "resources", "scan_resources", "scan_types", "whole")

    def __init__(self, entry: SessionTypeFilter | None, top_scan_resources: _Cached) -> None:
        e = entry or SessionTypeFilter(xsi_type="")
        self.entry_name = f"imaging_sessions[{entry.xsi_type}]" if entry else ""
        self.scan_types = _Cached(e.scan_types)
        self.scan_resources = _Cached(e.scan_resources)
        self.resources = _Cached(e.resources)
        self.assessors = _Cached(_lowered(e.session_assessors))
        self.whole = (
            top_scan_resources.everything
            and self.scan_types.everything
            and self.scan_resources.everything
            and self.resources.everything
            and self.assessors.everything
        )


class _Filterer:
    def __init__(self, filtering: Filtering) -> None:
        self.f = filtering
        self.skipped: list[Skip] = []
        self.project_resources = _Cached(filtering.project_resources)
        self.subject_resources = _Cached(filtering.subject_resources)
        self.subject_assessors = _Cached(filtering.subject_assessors)
        self.sessions = _Cached(filtering.imaging_sessions)
        self.top_scan_resources = _Cached(filtering.scan_resources)
        self._rules: dict[str, _TypeRules] = {}

    def rules(self, xsi_type: str) -> _TypeRules:
        r = self._rules.get(xsi_type)
        if r is None:
            entry = self.f.imaging_sessions.entry(xsi_type)
            r = self._rules[xsi_type] = _TypeRules(entry, self.top_scan_resources)
        return r

    def resources(
        self,
        resources: dict[str, Resource],
        allows: _Cached,
        name: str,
        owner: Address,
    ) -> dict[str, Resource]:
        """The resources of the entity at ``owner`` that ``allows`` keeps."""
        if allows.everything or not resources:
            return resources
        kept: dict[str, Resource] = {}
        for key, r in resources.items():
            if allows(r.label):
                kept[key] = r
            else:
                self.skipped.append(_skip(owner.with_resource(r.label), skip_reason(name, r.label)))
        return resources if len(kept) == len(resources) else kept

    def inventory(self, inv: Inventory) -> Inventory:
        resources = self.resources(
            inv.resources, self.project_resources, "project_resources", PROJECT_ADDRESS
        )
        if is_lazy(inv.subjects):
            return replace(inv, resources=resources, subjects=self.lazy_subjects(inv.subjects))
        subjects = {k: self.subject(s) for k, s in inv.subjects.items()}
        return replace(inv, resources=resources, subjects=subjects)

    def lazy_subjects(self, subjects: Mapping[str, Subject]) -> Mapping[str, Subject]:
        """Subjects read on access (an inventory on disk), filtered as they are read.

        One pass reads every experiment once, to note what the filters leave out, keeping
        nothing; then a filterer that notes nothing applies the same filters on each read.
        """
        dropped: set[tuple[str, str]] = set()
        for key in subjects:
            s = subjects[key]
            self.resources(s.resources, self.subject_resources, "subject_resources", A.subject(key))
            for e_key in s.experiments:
                if self.experiment(s.label, s.experiments[e_key]) is None:
                    dropped.add((key, e_key))
        quiet = _Filterer(self.f)
        quiet.skipped = _Discard()
        return _narrowed(subjects, set(), dropped, quiet.subject_view)

    def subject_view(self, s: Subject) -> Subject:
        """A subject of a lazy inventory with its resources and experiments filtered."""
        resources = self.resources(
            s.resources, self.subject_resources, "subject_resources", A.subject(s.label)
        )
        exps = s.experiments
        return replace(
            s,
            resources=resources,
            experiments=LazyMapping(list(exps), lambda k: self.experiment(s.label, exps[k])),
        )

    def subject(self, s: Subject) -> Subject:
        label = s.label
        resources = self.resources(
            s.resources,
            self.subject_resources,
            "subject_resources",
            A.subject(label),
        )
        experiments: dict[str, Experiment] = {}
        changed = resources is not s.resources
        for key, e in s.experiments.items():
            kept = self.experiment(label, e)
            if kept is not e:
                changed = True
            if kept is not None:
                experiments[key] = kept
        if not changed:
            return s
        return replace(s, resources=resources, experiments=experiments)

    def experiment(self, subject: str, e: Experiment) -> Experiment | None:
        addr = A.experiment(subject, e.label)
        if not e.is_imaging:
            if self.subject_assessors(e.xsi_type):
                return e
            self.skipped.append(_skip(addr, skip_reason("subject_assessors", e.xsi_type)))
            return None
        if not self.sessions(e.xsi_type):
            self.skipped.append(_skip(addr, skip_reason("imaging_sessions", e.xsi_type)))
            return None
        rules = self.rules(e.xsi_type)
        if rules.whole:
            return e
        return self.session(subject, e, rules)

    def session(self, subject: str, e: Experiment, rules: _TypeRules) -> Experiment:
        exp = e.label
        prefix = rules.entry_name
        scans: dict[str, Scan] = {}
        scans_changed = False
        for key, sc in e.scans.items():
            if not rules.scan_types(sc.type):
                scans_changed = True
                self.skipped.append(
                    _skip(A.scan(subject, exp, sc.id), skip_reason(f"{prefix}.scan_types", sc.type))
                )
                continue
            kept = self.scan(subject, exp, sc, rules)
            scans_changed = scans_changed or kept is not sc
            scans[key] = kept
        resources = self.resources(
            e.resources,
            rules.resources,
            f"{prefix}.resources",
            A.experiment(subject, exp),
        )
        assessors = e.assessors
        if not rules.assessors.everything and e.assessors:
            assessors = {}
            for key, a in e.assessors.items():
                if rules.assessors(a.xsi_type.lower()):
                    assessors[key] = a
                else:
                    self.skipped.append(
                        _skip(
                            A.assessor(subject, exp, a.label),
                            skip_reason(f"{prefix}.session_assessors", a.xsi_type),
                        )
                    )
            if len(assessors) == len(e.assessors):
                assessors = e.assessors
        if not scans_changed and resources is e.resources and assessors is e.assessors:
            return e
        return replace(
            e,
            scans=scans if scans_changed else e.scans,
            resources=resources,
            assessors=assessors,
        )

    def scan(self, subject: str, exp: str, sc: Scan, rules: _TypeRules) -> Scan:
        if not sc.resources:
            return sc
        top, own = self.top_scan_resources, rules.scan_resources
        if top.everything and own.everything:
            return sc
        kept: dict[str, Resource] = {}
        for key, r in sc.resources.items():
            if not top(r.label):
                name = "scan_resources"
            elif not own(r.label):
                name = f"{rules.entry_name}.scan_resources"
            else:
                kept[key] = r
                continue
            self.skipped.append(
                _skip(A.scan_resource(subject, exp, sc.id, r.label), skip_reason(name, r.label))
            )
        if len(kept) == len(sc.resources):
            return sc
        return replace(sc, resources=kept)


def apply_filters(inventory: Inventory, filtering: Filtering) -> Filtered:
    """Keep what the filters allow; report the rest. Pure: the input is not changed."""
    if filtering.keeps_everything:
        return Filtered(inventory=inventory, skipped=())
    f = _Filterer(filtering)
    kept = f.inventory(inventory)
    return Filtered(inventory=kept, skipped=tuple(f.skipped))


# -- shared data --------------------------------------------------------------------------------


def shared_reason(owner: str) -> str:
    """Why shared data is left out (stable: tests and views rely on it)."""
    return f"shared from project {owner} (copy_shared: true copies it)"


class _Discard(list):  # type: ignore[type-arg]
    """A skip list that keeps nothing: the skips were noted once already."""

    def append(self, item: object) -> None:
        pass


def _narrowed(
    subjects: Mapping[str, Subject],
    gone: set[str],
    gone_experiments: set[tuple[str, str]],
    view: Callable[[Subject], Subject] | None = None,
) -> Mapping[str, Subject]:
    """Lazy subjects without those in ``gone`` and experiments in ``gone_experiments``
    (subject key, experiment key); ``view`` narrows each subject as it is read."""

    def load(key: str) -> Subject:
        s = subjects[key]
        if view is not None:
            s = view(s)
        exps = s.experiments
        keep = [k for k in exps if (key, k) not in gone_experiments]
        if len(keep) != len(exps):
            s = replace(s, experiments=LazyMapping(keep, exps.get))
        return s

    return LazyMapping([k for k in subjects if k not in gone], load)


def _drop(inv: Inventory, subjects: set[str], experiments: set[tuple[str, str]]) -> Inventory:
    if not subjects and not experiments:
        return inv
    if is_lazy(inv.subjects):
        return replace(inv, subjects=_narrowed(inv.subjects, subjects, experiments))
    kept: dict[str, Subject] = {}
    for key, s in inv.subjects.items():
        if s.label in subjects:
            continue
        exps = {k: e for k, e in s.experiments.items() if (s.label, e.label) not in experiments}
        if len(exps) != len(s.experiments):
            s = replace(s, experiments=exps)
        kept[key] = s
    return replace(inv, subjects=kept)


def apply_sharing(
    src: Inventory, dst: Inventory | None = None, *, copy_shared: bool
) -> tuple[Inventory, Inventory | None, tuple[Skip, ...]]:
    """Leave out what is only shared into the source project, unless ``copy_shared``.

    Shared subjects and experiments belong to another project; by default they are reported
    and neither copied nor compared (so the same labels on the destination are not
    compared either). With ``copy_shared`` they are ordinary members, copied as the
    destination project's own.
    """
    if copy_shared:
        return src, dst, ()
    skipped: list[Skip] = []
    subjects: set[str] = set()
    experiments: set[tuple[str, str]] = set()
    store = store_of(src)
    if store is not None:  # from the store's index, reading no experiment
        shared_subjects, shared_experiments = store.shared()
        for label, owner in shared_subjects:
            subjects.add(label)
            skipped.append(_skip(A.subject(label), shared_reason(owner)))
        for s_label, e_label, owner in shared_experiments:
            if s_label not in subjects:
                experiments.add((s_label, e_label))
                skipped.append(_skip(A.experiment(s_label, e_label), shared_reason(owner)))
        skipped.sort(key=lambda sk: sk[0])
    for s in () if store is not None else src.subjects.values():
        if s.shared_from:
            subjects.add(s.label)
            skipped.append(_skip(A.subject(s.label), shared_reason(s.shared_from)))
            continue
        for e in s.experiments.values():
            if e.shared_from:
                experiments.add((s.label, e.label))
                skipped.append(_skip(A.experiment(s.label, e.label), shared_reason(e.shared_from)))
    if not skipped:
        return src, dst, ()
    return (
        _drop(src, subjects, experiments),
        _drop(dst, subjects, experiments) if dst is not None else None,
        tuple(skipped),
    )


@dataclass(frozen=True)
class Scope:
    """Both inventories as a transfer sees them, and what was left out on the way."""

    source: Inventory
    dest: Inventory | None
    filtered: tuple[Skip, ...]  # left out by the filters (source side)
    shared: tuple[Skip, ...]  # only shared into the source project (without copy_shared)


def in_scope(
    src: Inventory, dst: Inventory | None, filtering: Filtering, *, copy_shared: bool
) -> Scope:
    """The one way plan, drift and apply narrow inventories: filters, then shared data."""
    kept = apply_filters(src, filtering)
    kept_dst = apply_filters(dst, filtering).inventory if dst is not None else None
    source, dest, shared = apply_sharing(kept.inventory, kept_dst, copy_shared=copy_shared)
    return Scope(source, dest, tuple(kept.skipped), shared)


# -- the plan's filters, from the config it records ------------------------------------------


def filter_inventory(inventory: Inventory, config: dict[str, Any]) -> Inventory:
    """The inventory as the plan's transfer config sees it (filters applied)."""
    if not config:
        return inventory
    parsed = TransferConfig.from_dict(config)
    return in_scope(inventory, None, parsed.filtering, copy_shared=parsed.copy_shared).source


def filter_experiment(experiment: Experiment, config: dict[str, Any]) -> Experiment | None:
    """One experiment as the plan's filters see it (None when they leave it out).

    Verification filters the destination experiment it reads back as well, so data a filter
    leaves out (say, a scan's DICOM) is compared on neither side, as in the plan. Sharing is
    not applied: the experiment was chosen by the plan already.
    """
    if not config:
        return experiment
    holder = experiment.subject_label or "subject"  # the filters read no subject label
    one = Inventory(
        server_url="",
        project="",
        subjects={holder: Subject(label=holder, experiments={experiment.label: experiment})},
    )
    kept = apply_filters(one, TransferConfig.from_dict(config).filtering).inventory
    return kept.subjects[holder].experiments.get(experiment.label)
