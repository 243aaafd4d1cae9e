"""Seeding a project over real HTTP into an xnatsim server, and the pure planning behind it."""

from __future__ import annotations

import gzip
import struct
import zlib

import pytest
import requests
from typer.testing import CliRunner

from xnatsim.seed import (
    SUBJECT_ASSESSOR_TYPE,
    SeedError,
    SeedSpec,
    nifti_gz_bytes,
    plan_sessions,
    plan_subjects,
    png_bytes,
    seed_project,
    series_for,
)

TINY = SeedSpec(
    "SEEDP",
    subjects=2,
    sessions_per_subject=2,
    scans_per_session=2,
    instances_per_scan=2,
    rows=8,
    cols=8,
)


def rows(session: requests.Session, url: str) -> list[dict]:
    resp = session.get(url, params={"format": "json"})
    resp.raise_for_status()
    return resp.json()["ResultSet"]["Result"]


def server_files(srv, project: str) -> dict[str, tuple[str, int, str]]:
    """Every file of the project: '<owner>/<resource>/<name>' -> (digest, size, owner kind)."""
    s = requests.Session()
    s.auth = ("admin", "admin")
    base = f"{srv.url}/data/projects/{project}"
    out: dict[str, tuple[str, int, str]] = {}

    def add(owner: str, kind: str, listing: list[dict]) -> None:
        for f in listing:
            out[f"{owner}/{f['collection']}/{f['Name']}"] = (f["digest"], int(f["Size"]), kind)

    for res in rows(s, f"{base}/resources"):
        add(project, "project", rows(s, f"{base}/resources/{res['label']}/files"))
    for subj in rows(s, f"{base}/subjects"):
        sbase = f"{base}/subjects/{subj['label']}"
        for res in rows(s, f"{sbase}/resources"):
            add(subj["label"], "subject", rows(s, f"{sbase}/resources/{res['label']}/files"))
    for exp in rows(s, f"{base}/experiments"):
        ebase = f"{srv.url}/data/experiments/{exp['ID']}"
        if exp["xsiType"] == SUBJECT_ASSESSOR_TYPE:
            add(exp["label"], "subject_assessor", rows(s, f"{ebase}/files"))
            continue
        session_files = [f for f in rows(s, f"{ebase}/files") if "/assessors/" not in f["URI"]]
        add(exp["label"], "session", session_files)
        add(exp["label"], "scan", rows(s, f"{ebase}/scans/ALL/files"))
        for a in rows(s, f"{ebase}/assessors"):
            add(a["label"], "assessor", rows(s, f"{ebase}/assessors/{a['ID']}/files"))
    return out


def test_seed_tiny_project_listing_counts(xnatsim_factory):
    # The report counts the bytes the seeder sends; the site anonymization script (on by
    # default) would add its record to every stored DICOM file, so it is off here.
    srv = xnatsim_factory(settings={"anonymize": False})
    messages: list[str] = []
    report = seed_project(srv.url, TINY, progress=messages.append)
    assert (report.project, report.subjects, report.sessions, report.scans) == ("SEEDP", 2, 4, 8)
    assert sum(m.startswith("imported ") for m in messages) == 4

    s = requests.Session()
    s.auth = ("admin", "admin")
    base = f"{srv.url}/data/projects/SEEDP"
    assert [r["label"] for r in rows(s, f"{base}/subjects")] == ["SUBJ001", "SUBJ002"]
    exps = {r["label"]: r["xsiType"] for r in rows(s, f"{base}/experiments")}
    assert exps == {
        "SUBJ001_MR1": "xnat:mrSessionData",
        "SUBJ001_CT1": "xnat:ctSessionData",
        "SUBJ002_MR1": "xnat:mrSessionData",
        "SUBJ002_CT1": "xnat:ctSessionData",
        "SUBJ001_CLIN1": SUBJECT_ASSESSOR_TYPE,
        "SUBJ002_CLIN1": SUBJECT_ASSESSOR_TYPE,
    }
    scans = rows(s, f"{base}/subjects/SUBJ001/experiments/SUBJ001_MR1/scans")
    assert [(r["ID"], r["type"]) for r in scans] == [("1", "Localizer"), ("2", "T1w_MPRAGE")]
    ct = rows(s, f"{base}/subjects/SUBJ002/experiments/SUBJ002_CT1/scans")
    assert [r["type"] for r in ct] == ["Scout", "CT_HEAD"]
    resources = rows(s, f"{base}/subjects/SUBJ001/experiments/SUBJ001_MR1/scans/1/resources")
    assert {r["label"]: r["file_count"] for r in resources} == {
        "DICOM": "2",
        "NIFTI": "1",
        "SNAPSHOTS": "2",
    }

    files = server_files(srv, "SEEDP")
    kinds = [kind for _, _, kind in files.values()]
    # 8 scans x (2 DICOM + 1 NIFTI + 2 SNAPSHOTS), 4 QC reports, 2 consent forms, 2 protocol
    # files, 4 session assessor reports, 2 clinical forms
    assert (
        kinds.count("scan"),
        kinds.count("session"),
        kinds.count("subject"),
        kinds.count("project"),
        kinds.count("assessor"),
        kinds.count("subject_assessor"),
    ) == (40, 4, 2, 2, 4, 2)
    assert report.files == len(files) == 54
    assert report.bytes == sum(size for _, size, _ in files.values())


def test_subject_demographics_are_set(xnatsim_factory):
    srv = xnatsim_factory()
    spec = SeedSpec(
        "DEMO", subjects=1, scans_per_session=1, instances_per_scan=1, rows=4, cols=4, extras=False
    )
    seed_project(srv.url, spec)
    doc = requests.get(
        f"{srv.url}/data/projects/DEMO/subjects/SUBJ001",
        params={"format": "json"},
        auth=("admin", "admin"),
    ).json()
    text = str(doc)
    expected = plan_subjects(spec)[0].demographics
    for value in expected.values():
        assert f"'{value}'" in text


def test_same_seed_gives_the_same_files_on_two_servers(sim_pair):
    spec = SeedSpec(
        "SAME",
        subjects=1,
        sessions_per_subject=2,
        scans_per_session=2,
        instances_per_scan=1,
        rows=8,
        cols=8,
    )
    seed_project(sim_pair.src.url, spec, workers=1)
    seed_project(sim_pair.dst.url, spec, workers=3)
    src = server_files(sim_pair.src, "SAME")
    assert src and src == server_files(sim_pair.dst, "SAME")


def test_no_extras_means_dicom_only(xnatsim_factory):
    srv = xnatsim_factory()
    spec = SeedSpec(
        "BARE",
        subjects=1,
        scans_per_session=3,
        instances_per_scan=2,
        rows=8,
        cols=8,
        modalities=("MR",),
        extras=False,
    )
    report = seed_project(srv.url, spec)
    files = server_files(srv, "BARE")
    assert {key.split("/")[1] for key in files} == {"DICOM"}
    assert report.files == len(files) == 6


def test_seeding_twice_is_harmless(xnatsim_factory):
    srv = xnatsim_factory()
    spec = SeedSpec("TWICE", subjects=1, scans_per_session=1, instances_per_scan=1, rows=4, cols=4)
    seed_project(srv.url, spec)
    first = server_files(srv, "TWICE")
    seed_project(srv.url, spec)
    assert server_files(srv, "TWICE") == first


def test_wrong_password_is_a_clear_error_without_the_password(xnatsim_factory):
    srv = xnatsim_factory()
    with pytest.raises(SeedError) as err:
        seed_project(srv.url, TINY, auth=("admin", "not-the-password"))
    assert "401" in str(err.value) and "password" in str(err.value)
    assert "not-the-password" not in str(err.value)


def test_cli_seed_command(xnatsim_factory, monkeypatch):
    from xnatsim.cli import app

    srv = xnatsim_factory()
    monkeypatch.setenv("XNATSIM_PASSWORD", "admin")
    result = CliRunner().invoke(
        app,
        [
            "seed",
            "--url",
            srv.url,
            "--project",
            "CLIP",
            "--subjects",
            "1",
            "--scans",
            "1",
            "--instances",
            "1",
            "--matrix",
            "8",
            "--no-extras",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Seeded project CLIP: 1 subjects, 1 sessions, 1 scans, 1 files" in result.output
    monkeypatch.setenv("XNATSIM_PASSWORD", "wrong")
    result = CliRunner().invoke(app, ["seed", "--url", srv.url, "--project", "CLIP"])
    assert result.exit_code == 1 and "401" in result.output


def test_plan_is_deterministic_and_alternates_modalities():
    spec = SeedSpec("P", subjects=2, sessions_per_subject=3)
    labels = [(p.subject, p.label, p.modality) for p in plan_sessions(spec)]
    assert labels == [
        ("SUBJ001", "SUBJ001_MR1", "MR"),
        ("SUBJ001", "SUBJ001_CT1", "CT"),
        ("SUBJ001", "SUBJ001_MR2", "MR"),
        ("SUBJ002", "SUBJ002_CT1", "CT"),
        ("SUBJ002", "SUBJ002_MR1", "MR"),
        ("SUBJ002", "SUBJ002_CT2", "CT"),
    ]
    assert plan_sessions(spec) == plan_sessions(spec)
    assert plan_subjects(spec) == plan_subjects(spec)
    other = SeedSpec("P", subjects=2, sessions_per_subject=3, seed=1)
    assert [p.study.study_date for p in plan_sessions(other)] != [
        p.study.study_date for p in plan_sessions(spec)
    ]
    study = plan_sessions(spec)[0].study
    assert (study.project_hint, study.subject_hint, study.session_hint) == (
        "P",
        "SUBJ001",
        "SUBJ001_MR1",
    )


def test_series_pool_wraps_with_distinct_descriptions():
    series = series_for("MR", 10, SeedSpec("P"))
    names = [s.description for s in series]
    assert names[:3] == ["Localizer", "T1w_MPRAGE", "T2w_SPACE"]
    assert len(set(names)) == 10 and names[8] == "Localizer_2"
    assert [s.series_number for s in series] == list(range(1, 11))


def test_extra_files_are_well_formed():
    import numpy as np

    png = png_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (4, 3)
    idat_len = struct.unpack(">I", png[33:37])[0]
    raw = zlib.decompress(png[41 : 41 + idat_len])
    assert raw == b"".join(b"\0" + bytes(range(r * 4, r * 4 + 4)) for r in range(3))
    nii = gzip.decompress(nifti_gz_bytes(np.ones((2, 3, 4), dtype=np.int16)))
    assert struct.unpack("<i", nii[:4])[0] == 348 and nii[344:348] == b"n+1\0"
    assert struct.unpack("<4h", nii[40:48]) == (3, 2, 3, 4)
    assert len(nii) == 352 + 2 * 3 * 4 * 2


def test_metadata_and_a_shared_subject(xnatsim_factory):
    from xnatsim.seed import RENAMED_SCAN, SESSION_ASSESSOR_TYPE

    srv = xnatsim_factory()
    spec = SeedSpec(
        "META", subjects=1, scans_per_session=3, instances_per_scan=1, rows=4, cols=4, shared=True
    )
    seed_project(srv.url, spec)
    s = requests.Session()
    s.auth = ("admin", "admin")
    base = f"{srv.url}/data/projects/META"
    subjects = {r["label"]: r["project"] for r in rows(s, f"{base}/subjects")}
    assert subjects == {"SUBJ001": "META", "PARTNER001": "META_PARTNER"}
    exps = {r["label"]: r["project"] for r in rows(s, f"{base}/experiments")}
    assert exps["PARTNER001_MR1"] == "META"  # XNAT lists a shared experiment under P
    session = f"{base}/subjects/SUBJ001/experiments/SUBJ001_MR1"
    doc = s.get(session, params={"format": "json"}).json()["items"][0]
    assert doc["data_fields"]["visit_id"] == "V1"
    assert doc["data_fields"]["acquisition_site"] == "Site North"
    scans = {r["ID"]: r for r in rows(s, f"{session}/scans")}
    assert scans[str(RENAMED_SCAN)]["type"] != scans[str(RENAMED_SCAN)]["series_description"]
    assert (scans["1"]["quality"], scans["1"]["note"]) == (
        "questionable",
        "motion in the last volumes",
    )
    (qc,) = rows(s, f"{session}/assessors")
    assert qc["xsiType"] == SESSION_ASSESSOR_TYPE
    files = rows(s, f"{srv.url}/data/experiments/{qc['session_ID']}/assessors/{qc['ID']}/files")
    assert [f["Name"] for f in files] == ["qc_summary.txt"]
    xml = s.get(f"{base}/subjects/SUBJ001", params={"format": "xml"}).text
    assert 'name="study_arm"' in xml
