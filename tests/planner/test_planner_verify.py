"""Verification of one experiment: the three tiers, and what never counts as a failure."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from planner.filters import filter_inventory
from planner.inventory import Experiment, FileEntry, Resource
from planner.sameness import remember
from planner.verify import VerificationSummary, verify_experiment


def check(src: Experiment, dst: Experiment | None, *, digests: bool = True):
    return verify_experiment("S1/E1", src, dst, digests=digests)


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
    # the walk's own wording, the same as the plan's and drift's
    assert any("DICOM: file count 4 != 3" in p for p in result.problems)


def test_a_changed_digest_of_other_files_fails_tier_3(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1", extra=(b.res("NIFTI", 2),)))
    bad = b.res("NIFTI", 2, salt="other")
    dst = session(b, replace(b.scan("1"), resources={**b.scan("1").resources, "NIFTI": bad}))
    result = check(src, dst)
    assert not result.ok and result.tier1 and result.tier2 and result.tier3 is False


def test_dicom_rewritten_by_the_destination_passes(b: SimpleNamespace) -> None:
    # XNAT's site anonymization (on by default) rewrites PatientName, PatientID and
    # StudyDescription on import: other sizes and MD5, the same file names.
    src = session(b, b.scan("1"))
    rewritten = Resource(
        "DICOM",
        "DICOM",
        "",
        tuple(
            FileEntry(f.path, f.size + 6, "f" * 32) for f in src.scans["1"].resources["DICOM"].files
        ),
    )
    result = check(src, session(b, replace(b.scan("1"), resources={"DICOM": rewritten})))
    assert result.ok and result.tier3 is True, result.problems
    assert [m.address for m in result.equal_scans] == ["S1/E1/scans/1"]


def test_dicom_with_other_names_fails_tier_2(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1"))
    files = list(src.scans["1"].resources["DICOM"].files)
    files[0] = FileEntry("renamed.dcm", files[0].size, files[0].digest)
    other = Resource("DICOM", "DICOM", "", tuple(sorted(files, key=lambda f: f.path)))
    result = check(src, session(b, replace(b.scan("1"), resources={"DICOM": other})))
    assert not result.ok and result.tier1 and not result.tier2
    assert any("DICOM: 0.dcm missing on the destination" in p for p in result.problems)
    assert result.equal_scans == ()


def test_a_remembered_pair_changed_on_either_side_fails_tier_3(b: SimpleNamespace) -> None:
    src = session(b, b.scan("1"))
    dicom = src.scans["1"].resources["DICOM"]
    memory = {"S1/E1/scans/1": remember("S1/E1/scans/1", "1", dicom, dicom)}
    assert verify_experiment("S1/E1", src, src, memory=memory).ok
    resent = session(b, replace(b.scan("1"), resources={"DICOM": b.res("DICOM", salt="v2")}))
    result = verify_experiment("S1/E1", resent, src, memory=memory)
    assert not result.ok and result.tier2 and result.tier3 is False
    assert any(
        "source files changed since they were last found equal" in p for p in result.problems
    )
    result = verify_experiment("S1/E1", src, resent, memory=memory)
    assert any("DICOM: destination files changed since" in p for p in result.problems)


def test_a_scan_renumbered_by_the_import_pairs_by_series_uid(b: SimpleNamespace) -> None:
    # Scan 7 holds series 1.2.3.x whose SeriesNumber is 3: DICOM import makes it scan 3.
    src = session(b, b.scan("7", uid="1.2.3.x"))
    dst = session(b, b.scan("3", uid="1.2.3.x"))
    result = check(src, dst)
    assert result.ok and result.tier1, result.problems
    assert [(m.address, m.dest_scan) for m in result.equal_scans] == [("S1/E1/scans/7", "3")]


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
