"""The one traversal that pairs source and destination entities.

Planning, verification and drift are visitors over this walk, so they can never disagree
about what matches what. The walk knows nothing of copying: it only decides pairs and calls

- ``src_only(at, src) -> bool``: on the source only; return True to descend;
- ``dst_only(at, dst) -> bool``: on the destination only; True to descend;
- ``match(at, src, dst)``: paired; the walk always descends;
- ``conflict(at, src, dst, why, text)``: paired by name but they cannot be the same thing
  (``why`` a ``ChangeReason`` for code, ``text`` for people); the walk does not descend;
- ``leave(at, src, dst)``: optional, after the children of a visited entity.

``at`` is the entity's ``Address`` (its ``level`` says what kind of entity it is). What a
visitor returns from ``match`` or ``conflict`` is its own business (a visitor may hand it to
a subclass); the walk ignores it.

Pairing rules, all here: entities pair by label (``label_key``). Scans pair by ID when their
series UIDs agree (or one is unknown); left-over source scans then pair with left-over
destination scans of the same series UID, because DICOM import numbers a destination scan
by its SeriesNumber, which may differ from the source scan ID; a source scan whose ID is
taken on the destination by another series is a conflict. An experiment label found on the
destination under another subject is a conflict, as are paired experiments or scans of
different xsiTypes and paired sessions of different study UIDs. Session assessors pair by
label, and their resources are walked under them (never as session resources). Addresses
are always in source labels (destination labels for destination-only entities).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from planner.address import PROJECT_ADDRESS, Address
from planner.address import subject as subject_address
from planner.inventory import Assessor, Experiment, Inventory, Resource, Scan, Subject
from planner.plan import ChangeReason

XSI = ChangeReason.XSI_TYPE_DIFFERS


class Visitor(Protocol):
    def src_only(self, at: Address, src: Any) -> bool: ...

    def dst_only(self, at: Address, dst: Any) -> bool: ...

    def match(self, at: Address, src: Any, dst: Any) -> object: ...

    def conflict(self, at: Address, src: Any, dst: Any, why: ChangeReason, text: str) -> object: ...


def label_key(label: str) -> str:
    """How labels are compared between servers: exactly, as XNAT stores them."""
    return label


def _leave(visitor: Any, at: Address, src: Any, dst: Any) -> None:
    leave = getattr(visitor, "leave", None)
    if leave is not None:
        leave(at, src, dst)


def _pair_by_label(
    src: Mapping[str, Any], dst: Mapping[str, Any]
) -> Iterator[tuple[str, Any | None, Any | None]]:
    """(key, src or None, dst or None), sorted by key; source keys win for the address.

    Keys are paired first and values read only as each pair is visited, so a mapping read
    from disk (``planner.invstore``) yields one entity per side at a time."""
    dst_by_key = {label_key(k): k for k in dst}
    seen: set[str] = set()
    keys: list[tuple[str, str | None, str | None]] = []
    for k in src:
        key = label_key(k)
        seen.add(key)
        keys.append((k, k, dst_by_key.get(key)))
    for k in dst:
        if label_key(k) not in seen:
            keys.append((k, None, k))
    keys.sort(key=lambda t: t[0])
    for k, sk, dk in keys:
        yield k, src[sk] if sk is not None else None, dst[dk] if dk is not None else None


# -- resources -------------------------------------------------------------------------------


def walk_resources(
    src: dict[str, Resource],
    dst: dict[str, Resource],
    owner: Address,
    visitor: Visitor,
) -> None:
    """The resources of the entity at ``owner``."""
    for label, s, d in _pair_by_label(src, dst):
        at = owner.with_resource(label)
        if s is not None and d is not None:
            visitor.match(at, s, d)
            _leave(visitor, at, s, d)
        elif s is not None:
            visitor.src_only(at, s)
        else:
            visitor.dst_only(at, d)


# -- scans -----------------------------------------------------------------------------------


def _uids_agree(a: Scan, b: Scan) -> bool:
    return not a.uid or not b.uid or a.uid == b.uid


def pair_scans(
    src: dict[str, Scan], dst: dict[str, Scan]
) -> tuple[list[tuple[Scan, Scan]], list[tuple[Scan, Scan]], list[Scan], list[Scan]]:
    """(pairs, conflicts, source only, destination only) by the rules in the module doc."""
    pairs: list[tuple[Scan, Scan]] = []
    used_dst: set[str] = set()
    left_src: list[Scan] = []
    for sid in sorted(src):
        s = src[sid]
        d = dst.get(sid)
        if d is not None and _uids_agree(s, d):
            pairs.append((s, d))
            used_dst.add(sid)
        else:
            left_src.append(s)
    by_uid: dict[str, list[Scan]] = {}
    for did in sorted(dst):
        if did not in used_dst and dst[did].uid:
            by_uid.setdefault(dst[did].uid, []).append(dst[did])
    conflicts: list[tuple[Scan, Scan]] = []
    src_only: list[Scan] = []
    still_left: list[Scan] = []
    for s in left_src:
        candidates = by_uid.get(s.uid) if s.uid else None
        if candidates:
            d = candidates.pop(0)
            pairs.append((s, d))
            used_dst.add(d.id)
        else:
            still_left.append(s)
    for s in still_left:
        d = dst.get(s.id)
        if d is not None and d.id not in used_dst:
            conflicts.append((s, d))
            used_dst.add(d.id)
        else:
            src_only.append(s)
    dst_only = [dst[did] for did in sorted(dst) if did not in used_dst]
    return pairs, conflicts, src_only, dst_only


def _descend_scan(at: Address, s: Scan | None, d: Scan | None, visitor: Visitor) -> None:
    walk_resources(
        s.resources if s is not None else {},
        d.resources if d is not None else {},
        at,
        visitor,
    )
    _leave(visitor, at, s, d)


def walk_scans(exp: Address, src: dict[str, Scan], dst: dict[str, Scan], visitor: Visitor) -> None:
    """The scans of the experiment at ``exp``."""
    pairs, conflicts, src_only, dst_only = pair_scans(src, dst)
    events: list[tuple[str, int, Scan | None, Scan | None]] = []
    events += [(s.id, 0, s, d) for s, d in pairs]
    events += [(s.id, 1, s, d) for s, d in conflicts]
    events += [(s.id, 2, s, None) for s in src_only]
    events += [(d.id, 3, None, d) for d in dst_only]
    events.sort(key=lambda e: (e[0], e[1]))
    for sid, kind, s, d in events:
        at = exp.with_scan(sid)
        if kind == 0:
            assert s is not None and d is not None
            if s.xsi_type and d.xsi_type and s.xsi_type != d.xsi_type:
                visitor.conflict(at, s, d, XSI, f"xsiType {s.xsi_type} != {d.xsi_type}")
                continue
            visitor.match(at, s, d)
            _descend_scan(at, s, d, visitor)
        elif kind == 1:
            assert s is not None and d is not None
            visitor.conflict(
                at,
                s,
                d,
                ChangeReason.SCAN_ID_TAKEN,
                f"scan {d.id} on the destination holds another series (UID {d.uid})",
            )
        elif kind == 2:
            if visitor.src_only(at, s):
                _descend_scan(at, s, None, visitor)
        elif visitor.dst_only(at, d):
            _descend_scan(at, None, d, visitor)


# -- experiments -----------------------------------------------------------------------------


def experiment_conflict(src: Experiment, dst: Experiment) -> tuple[ChangeReason, str] | None:
    """Why a paired experiment cannot be the same one (the reason and its text), or None."""
    if src.xsi_type and dst.xsi_type and src.xsi_type != dst.xsi_type:
        return XSI, f"xsiType {src.xsi_type} != {dst.xsi_type}"
    if src.uid and dst.uid and src.uid != dst.uid:
        text = "study UID differs (another study holds this label on the destination)"
        return ChangeReason.STUDY_UID_DIFFERS, text
    return None


def walk_experiment(
    subj: str, src: Experiment | None, dst: Experiment | None, visitor: Visitor
) -> None:
    """Walk one experiment and everything under it (also used to verify one experiment)."""
    label = (src or dst).label  # type: ignore[union-attr]
    at = subject_address(subj).with_experiment(label)
    if src is not None and dst is not None:
        why = experiment_conflict(src, dst)
        if why is not None:
            visitor.conflict(at, src, dst, *why)
            return
        visitor.match(at, src, dst)
    elif src is not None:
        if not visitor.src_only(at, src):
            return
    elif not visitor.dst_only(at, dst):
        return
    s_scans = src.scans if src is not None else {}
    d_scans = dst.scans if dst is not None else {}
    walk_resources(
        src.resources if src is not None else {},
        dst.resources if dst is not None else {},
        at,
        visitor,
    )
    walk_scans(at, s_scans, d_scans, visitor)
    _walk_assessors(
        at,
        src.assessors if src is not None else {},
        dst.assessors if dst is not None else {},
        visitor,
    )
    _leave(visitor, at, src, dst)


def _walk_assessors(
    exp: Address, src: dict[str, Assessor], dst: dict[str, Assessor], visitor: Visitor
) -> None:
    for label, s, d in _pair_by_label(src, dst):
        at = exp.with_assessor(label)
        if s is not None and d is not None:
            if s.xsi_type and d.xsi_type and s.xsi_type != d.xsi_type:
                visitor.conflict(at, s, d, XSI, f"xsiType {s.xsi_type} != {d.xsi_type}")
                continue
            visitor.match(at, s, d)
        elif s is not None:
            if not visitor.src_only(at, s):
                continue
        elif not visitor.dst_only(at, d):
            continue
        walk_resources(
            s.resources if s is not None else {},
            d.resources if d is not None else {},
            at,
            visitor,
        )
        _leave(visitor, at, s, d)


# -- subjects and the project ----------------------------------------------------------------


class ExperimentHomes:
    """Which destination subject holds an experiment label. XNAT finds an experiment by its
    label in the whole project; a stored inventory answers from its index, one held in
    memory from a map built once."""

    def __init__(self, inv: Inventory) -> None:
        self.inv = inv
        self.store = getattr(inv.subjects, "store", None)
        self.map: dict[str, str] = {}
        if self.store is None:
            for s_label, subj in inv.subjects.items():
                for e_label in subj.experiments:
                    self.map[label_key(e_label)] = s_label

    def get(self, e_label: str) -> str | None:
        if self.store is None:
            return self.map.get(label_key(e_label))
        found = self.store.homes(e_label)
        return found[0] if found else None

    def experiment(self, s_label: str, e_label: str) -> Experiment:
        other = self.inv.subjects[s_label].experiments
        return next(other[k] for k in other if label_key(k) == label_key(e_label))


def walk(src: Inventory, dst: Inventory, visitor: Visitor, homes: Inventory | None = None) -> None:
    """Walk two inventories of the same project on two servers, in sorted address order.

    ``homes`` is the whole destination when ``dst`` leaves subjects out (completed ones under
    ``sync_new_only``): XNAT finds an experiment by its label in the whole project, so a
    label held by a subject left out of the walk is a conflict all the same. Subjects and
    experiments are paired by label and read one pair at a time.
    """
    walk_resources(src.resources, dst.resources, PROJECT_ADDRESS, visitor)
    dst_homes = ExperimentHomes(homes if homes is not None else dst)
    # Destination experiments claimed by a source experiment of another subject: reported once,
    # as a conflict from the source side, never also as destination-only.
    elsewhere: set[tuple[str, str]] = set()
    for s_label in src.subjects:
        for e_label in src.subjects[s_label].experiments:
            home = dst_homes.get(e_label)
            if home is not None and label_key(home) != label_key(s_label):
                elsewhere.add((home, label_key(e_label)))
    for s_label, ss, ds in _pair_by_label(src.subjects, dst.subjects):
        _walk_subject(s_label, ss, ds, dst_homes, elsewhere, visitor)


def _walk_subject(
    s_label: str,
    ss: Subject | None,
    ds: Subject | None,
    dst_homes: ExperimentHomes,
    elsewhere: set[tuple[str, str]],
    visitor: Visitor,
) -> None:
    at = subject_address(s_label)
    if ss is not None and ds is not None:
        visitor.match(at, ss, ds)
    elif ss is not None:
        if not visitor.src_only(at, ss):
            return
    elif not visitor.dst_only(at, ds):
        return
    walk_resources(
        ss.resources if ss is not None else {},
        ds.resources if ds is not None else {},
        at,
        visitor,
    )
    s_exps = ss.experiments if ss is not None else {}
    d_exps = ds.experiments if ds is not None else {}
    for e_label, se, de in _pair_by_label(s_exps, d_exps):
        if se is None and (s_label, label_key(e_label)) in elsewhere:
            continue  # reported as a conflict from the source side
        if se is not None and de is None:
            home = dst_homes.get(e_label)
            if home is not None and label_key(home) != label_key(s_label):
                visitor.conflict(
                    at.with_experiment(e_label),
                    se,
                    dst_homes.experiment(home, e_label),
                    ChangeReason.EXPERIMENT_ELSEWHERE,
                    f"the destination has experiment {e_label} under subject {home}",
                )
                continue
        walk_experiment(s_label, se, de, visitor)
    _leave(visitor, at, ss, ds)
