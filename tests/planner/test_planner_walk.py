"""The one walk: who pairs with whom."""

from __future__ import annotations

from typing import Any

from planner.address import Address
from planner.plan import ChangeReason, Level
from planner.walk import pair_scans, walk


class Recorder:
    """Records each visit by the address's text and level."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Level, Any, Any]] = []

    def src_only(self, at: Address, src: Any) -> bool:
        self.events.append(("src_only", str(at), at.level, src, None))
        return True

    def dst_only(self, at: Address, dst: Any) -> bool:
        self.events.append(("dst_only", str(at), at.level, None, dst))
        return False

    def match(self, at: Address, src: Any, dst: Any) -> None:
        self.events.append(("match", str(at), at.level, src, dst))

    def conflict(self, at: Address, src: Any, dst: Any, why: Any, text: str) -> None:
        self.events.append(("conflict", str(at), at.level, src, dst))
        self.why = text
        self.reason = why

    def kinds(self) -> dict[str, str]:
        return {addr: kind for kind, addr, *_ in self.events}


def test_pairs_every_level_by_label(b):
    src = b.inv(
        b.subj(
            "S1",
            b.exp("E1", "S1", (b.scan("1", extra=(b.res("NIFTI"),)),)),
            resources=(b.res("R"),),
        ),
        resources=(b.res("PR"),),
    )
    dst = b.inv(
        b.subj("S1", b.exp("E1", "S1", (b.scan("1"),)), resources=(b.res("R2"),)),
        b.subj("S0"),
        resources=(b.res("PR"),),
    )
    rec = Recorder()
    walk(src, dst, rec)
    assert rec.kinds() == {
        "@project/resources/PR": "match",
        "S0": "dst_only",
        "S1": "match",
        "S1/resources/R": "src_only",
        "S1/resources/R2": "dst_only",
        "S1/E1": "match",
        "S1/E1/scans/1": "match",
        "S1/E1/scans/1/DICOM": "match",
        "S1/E1/scans/1/NIFTI": "src_only",
    }


def test_src_only_descends_when_the_visitor_asks(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"), b.scan("2")))))
    rec = Recorder()
    walk(src, b.inv(), rec)
    assert [e[1] for e in rec.events] == [
        "S1",
        "S1/E1",
        "S1/E1/scans/1",
        "S1/E1/scans/1/DICOM",
        "S1/E1/scans/2",
        "S1/E1/scans/2/DICOM",
    ]
    assert {e[0] for e in rec.events} == {"src_only"}


def test_scan_with_other_id_pairs_by_series_uid(b):
    # DICOM import numbered the destination scan by SeriesNumber (7), not the source ID (1).
    src = {"1": b.scan("1", "1.2.840.9"), "2": b.scan("2", "1.2.840.10")}
    dst = {"7": b.scan("7", "1.2.840.9"), "2": b.scan("2", "1.2.840.10")}
    pairs, conflicts, src_only, dst_only = pair_scans(src, dst)
    assert sorted((s.id, d.id) for s, d in pairs) == [("1", "7"), ("2", "2")]
    assert conflicts == [] and src_only == [] and dst_only == []


def test_scan_id_holding_another_series_is_a_conflict(b):
    src = {"1": b.scan("1", "1.2.840.9")}
    dst = {"1": b.scan("1", "1.2.840.99")}
    pairs, conflicts, src_only, dst_only = pair_scans(src, dst)
    assert pairs == [] and src_only == [] and dst_only == []
    assert [(s.id, d.id) for s, d in conflicts] == [("1", "1")]


def test_uid_match_wins_over_an_id_collision(b):
    # Source scan 1 is on the destination as scan 5; destination scan 1 is another series.
    src = {"1": b.scan("1", "A")}
    dst = {"1": b.scan("1", "B"), "5": b.scan("5", "A")}
    pairs, conflicts, _, dst_only = pair_scans(src, dst)
    assert [(s.id, d.id) for s, d in pairs] == [("1", "5")]
    assert conflicts == [] and [d.id for d in dst_only] == ["1"]


def test_scan_with_unknown_uid_pairs_by_id(b):
    pairs, *_ = pair_scans({"1": b.scan("1", "")}, {"1": b.scan("1", "X")})
    assert len(pairs) == 1


def test_experiment_under_another_subject_is_one_conflict(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1"),))))
    dst = b.inv(b.subj("S2", b.exp("E1", "S2", (b.scan("1"),))))
    rec = Recorder()
    walk(src, dst, rec)
    kinds = rec.kinds()
    assert kinds["S1/E1"] == "conflict"
    assert "S2/E1" not in kinds  # not also reported as destination-only
    assert kinds["S2"] == "dst_only" and kinds["S1"] == "src_only"
    assert "under subject S2" in rec.why
    assert rec.reason == ChangeReason.EXPERIMENT_ELSEWHERE


def test_experiment_xsi_type_mismatch_is_a_conflict(b):
    src = b.inv(b.subj("S1", b.exp("E1", "S1", xsi="xnat:mrSessionData")))
    dst = b.inv(b.subj("S1", b.exp("E1", "S1", xsi="xnat:ctSessionData")))
    rec = Recorder()
    walk(src, dst, rec)
    assert rec.kinds()["S1/E1"] == "conflict"
    assert "xsiType" in rec.why
    assert rec.reason == ChangeReason.XSI_TYPE_DIFFERS


def test_walk_order_is_sorted_and_repeatable(b):
    src = b.inv(
        *(b.subj(f"S{i}", b.exp(f"E{i}", f"S{i}", (b.scan("2"), b.scan("1")))) for i in (3, 1, 2))
    )
    first, second = Recorder(), Recorder()
    walk(src, b.inv(), first)
    walk(src, b.inv(), second)
    addrs = [e[1] for e in first.events if e[2] == Level.SUBJECT]
    assert addrs == ["S1", "S2", "S3"]
    assert [e[1] for e in first.events] == [e[1] for e in second.events]
