"""Snapshots over an in-memory XNAT that answers with XNAT-shaped listings and documents."""

from __future__ import annotations

from dataclasses import replace

import pytest

from planner.errors import MalformedReply, NotFound
from planner.inventory import Assessor, FileEntry, Resource
from planner.snapshot import server_version, snapshot_experiment, take_snapshot


def _project(b, scans_per_session: int = 2):
    scans = tuple(b.scan(str(i + 1), extra=(b.res("NIFTI", 1),)) for i in range(scans_per_session))
    qc = Assessor("QC1", "A1", "xnat:qcAssessmentData", "2024-01-03", {"PDF": b.res("PDF", 1)})
    s1 = b.subj(
        "S1",
        b.exp("E1", "S1", scans, resources=(b.res("SNAPSHOTS", 2),), assessors=(qc,)),
        b.exp("F1", "S1", xsi="xnat:clinicalAssessmentData", resources=(b.res("FORM", 1),)),
        resources=(b.res("CONSENT", 1),),
        fields={"gender": "female", "yob": "1970"},
    )
    s2 = b.subj("S2", b.exp("E2", "S2", scans))
    return b.inv(s1, s2, resources=(b.res("PROTOCOL", 2),))


def test_snapshot_reads_back_what_the_server_holds(b, fake_xnat):
    want = _project(b)
    got = take_snapshot(fake_xnat(want), "P", workers=3)
    assert got.content_dict() == want.content_dict()
    assert got.fingerprint() == want.fingerprint()
    assert got.server_version == "1.8.11"
    assert got.digests is True
    e1 = got.subjects["S1"].experiments["E1"]
    assert e1.is_imaging and e1.scans["1"].uid == "1.2.3.1"
    assert not got.subjects["S1"].experiments["F1"].is_imaging
    assert e1.assessors["QC1"].resources["PDF"].file_count == 1


def test_request_count_does_not_grow_with_scans_or_files(b, fake_xnat):
    small = take_snapshot(fake_xnat(_project(b, 2)), "P")
    big = take_snapshot(fake_xnat(_project(b, 20)), "P")
    assert small.requests == big.requests
    assert sum(len(e.scans) for s in big.subjects.values() for e in s.experiments.values()) == 40


def test_request_count_is_a_fixed_function_of_subjects_and_experiments(b, fake_xnat):
    # buildInfo, project resources+files, subjects, experiments; 2 per subject with resources
    # (1 without); per session: document + scan files (+ session files, + one per assessor);
    # per subject assessor: document (+ files when it has session-level resources).
    backend = fake_xnat(_project(b))
    inventory = take_snapshot(backend, "P")
    expected = 5 + (2 + 1) + (2 + 1 + 1) + 2 + 2
    assert inventory.requests == expected == sum(backend.calls.values())


def test_progress_counts_subjects_and_experiments(b, fake_xnat):
    seen: list[tuple[int, int]] = []
    take_snapshot(fake_xnat(_project(b)), "P", on_progress=lambda d, t: seen.append((d, t)))
    assert sorted(seen) == [(i, 5) for i in range(1, 6)]


def test_missing_digest_turns_digests_off(b, fake_xnat):
    want = _project(b)
    e2 = want.subjects["S2"].experiments["E2"]
    dicom = e2.scans["1"].resources["DICOM"]
    no_md5 = replace(dicom, files=(FileEntry("0.dcm", 100, ""), *dicom.files[1:]))
    scan1 = replace(e2.scans["1"], resources={**e2.scans["1"].resources, "DICOM": no_md5})
    e2 = replace(e2, scans={**e2.scans, "1": scan1})
    s2 = replace(want.subjects["S2"], experiments={"E2": e2})
    want = replace(want, subjects={**want.subjects, "S2": s2})
    got = take_snapshot(fake_xnat(want), "P")
    assert got.digests is False


def test_shared_experiment_and_subject_name_their_owner(b, fake_xnat):
    shared = b.exp("E9", "S9", (b.scan("1"),), project="OTHER")
    s9 = replace(b.subj("S9", shared), shared_from="OTHER")
    got = take_snapshot(fake_xnat(b.inv(s9)), "P")
    assert got.subjects["S9"].shared_from == "OTHER"
    assert got.subjects["S9"].experiments["E9"].shared_from == "OTHER"


def test_file_paths_are_url_decoded_and_keep_folders(b, fake_xnat):
    r = Resource("NIFTI", "NIFTI", "", (FileEntry("sub dir/a b+c.nii.gz", 5, b.md5("x")),))
    want = b.inv(b.subj("S1", b.exp("E1", "S1", (b.scan("1", extra=(r,)),))))
    got = take_snapshot(fake_xnat(want), "P")
    files = got.subjects["S1"].experiments["E1"].scans["1"].resources["NIFTI"].files
    assert files == (FileEntry("sub dir/a b+c.nii.gz", 5, b.md5("x")),)


def test_snapshot_experiment_by_id(b, fake_xnat):
    want = _project(b)
    e = snapshot_experiment(fake_xnat(want), "P", "S1", "X_E1")
    assert e == want.subjects["S1"].experiments["E1"]


def test_snapshot_experiment_missing_is_not_found(b, fake_xnat):
    with pytest.raises(NotFound):
        snapshot_experiment(fake_xnat(_project(b)), "P", "S1", "NOPE")


@pytest.mark.parametrize(
    ("path", "reply", "needle"),
    [
        ("/data/projects/P/subjects", {"oops": 1}, "/data/projects/P/subjects"),
        ("/data/projects/P/subjects", [{"ID": "S_X"}], "'label'"),
        ("/data/experiments/X_E2", {"items": []}, "/data/experiments/X_E2"),
        ("/data/experiments/X_E2", {"no": "items"}, "not an XNAT object document"),
        ("/data/experiments/X_E2/scans/ALL/files", [{"Size": "1"}], "'URI'"),
        ("/data/experiments/X_E2/scans/ALL/files", [{"URI": "/data/nothing"}], "does not name"),
        (
            "/data/experiments/X_E2/scans/ALL/files",
            [{"URI": "/data/experiments/X/scans/1/resources/1/files/a", "Size": "big"}],
            "not a number",
        ),
    ],
)
def test_malformed_replies_name_the_path(b, fake_xnat, path, reply, needle):
    backend = fake_xnat(_project(b))
    backend.overrides[path] = reply
    with pytest.raises(MalformedReply) as info:
        take_snapshot(backend, "P")
    assert needle in str(info.value)
    assert path.split("/")[-1] in str(info.value) or path in str(info.value)


def test_server_version_absent_is_empty(b, fake_xnat):
    backend = fake_xnat(_project(b))
    backend.overrides["/xapi/siteConfig/buildInfo"] = NotFound("no", status=404)
    assert server_version(backend) == ""
    assert take_snapshot(backend, "P").server_version == ""
