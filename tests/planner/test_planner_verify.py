"""Verification of one experiment: the three tiers, and what never counts as a failure."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from planner.compare import compare_experiment
from planner.inventory import Experiment, FileEntry, Resource
from planner.staleness import filter_inventory
from planner.verify import VerificationSummary, verify_experiment


def check(src: Experiment, dst: Experiment | None, *, digests: bool = True):
    return verify_experiment("S1/E1", src, dst, compare=compare_experiment, digests=digests)


def session(b: SimpleNamespace, *scans, resources=()) -> Experiment:
    return b.exp("E1", "S1", tuple(scans), resources=tuple(resources))


def test_an_identical_experiment_passes_every_tier(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1"), b.scan("2", n=5), resources=[b.res("NOTES", 2)])
    result = check(src, src)
    assert result.ok and result.tier1 and result.tier2 and result.tier3 is True
    assert result.problems == ()


def test_a_missing_scan_fails_tier_1(b: SimpleNamespace) -> None:
    result = check(session(b, b.scan("1"), b.scan("2")), session(b, b.scan("1")))
    assert not result.ok and not result.tier1
    assert any("scans missing on the destination: 2" in p for p in result.problems)


def test_a_short_file_count_fails_tier_2(b: SimpleNamespace) -> None:
    result = check(session(b, b.scan("1", n=4)), session(b, b.scan("1", n=3)))
    assert not result.ok and result.tier1 and not result.tier2
    assert any("3 files, the source has 4" in p for p in result.problems)


def test_a_changed_digest_fails_tier_3(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1"))
    bad = b.res("DICOM", 3, salt="other")
    dst = session(b, replace(b.scan("1"), resources={"DICOM": bad}))
    result = check(src, dst)
    assert not result.ok and result.tier1 and result.tier2 and result.tier3 is False


def test_without_digests_tier_3_says_so_and_does_not_fail(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1"))
    plain = Resource(
        "DICOM", "DICOM", "", tuple(FileEntry(f.path, f.size, "") for f in b.res("DICOM").files)
    )
    dst = session(b, replace(b.scan("1"), resources={"DICOM": plain}))
    result = check(src, dst)
    assert result.ok and result.tier3 is None
    assert result.digests_note == "digests unavailable"
    summary = VerificationSummary()
    summary.add(result)
    assert (summary.passed, summary.digests_unavailable) == (1, 1)


def test_what_exists_only_on_the_destination_is_no_failure(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1"))
    dst = session(b, b.scan("1"), b.scan("9"), resources=[b.res("EXTRA", 1)])
    assert check(src, dst).ok


def test_a_missing_experiment_fails(b: SimpleNamespace) -> None:
    result = check(session(b, b.scan("1")), None)
    assert not result.ok and "missing" in result.problems[0]


def test_filtered_out_data_is_never_reported_missing(b: SimpleNamespace) -> None:
    snaps = b.res("SNAPSHOTS", 2)
    src_exp = session(b, b.scan("1", extra=(snaps,)))
    dst_exp = session(b, b.scan("1"))
    assert not check(src_exp, dst_exp).ok, "unfiltered, the snapshots are missing"
    config = {"filtering": {"scan_resources": {"sync_type": "exclude", "items": ["SNAPSHOTS"]}}}
    kept = filter_inventory(b.inv(b.subj("S1", src_exp)), config)
    result = check(kept.subjects["S1"].experiments["E1"], dst_exp)
    assert result.ok, result.problems


def test_field_differences_fail_verification(b: SimpleNamespace) -> None:
    # apply carries experiment fields (by XML document), so a difference left is a failure
    src = replace(session(b, b.scan("1")), fields={"visit_id": "V1"}, date="2024-01-01")
    dst = replace(session(b, b.scan("1")), fields={}, date="2024-02-02")
    result = check(src, dst)
    assert not result.ok
    assert "visit_id 'V1' != ''" in result.problems[0]
    nodicom = session(b, b.scan("1"), b.scan("2", n=0, extra=(b.res("NIFTI", 1),)))
    missing = check(nodicom, session(b, b.scan("1")))
    assert not missing.ok and not missing.tier1, "a scan without DICOM is created: verified too"
    assert check(nodicom, nodicom).ok
