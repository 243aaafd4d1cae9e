"""xnatsim throughput: DICOM generation, DICOM-zip import and scan zip download, in MB/s."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.benchmarks.results import BenchResult, record, rounded
from xnatsim.dicomgen import SeriesSpec, StudySpec, write_study_zip
from xnatsim.seed import SeedSpec, seed_project

pytestmark = pytest.mark.bench

MB = 1e6
SERIES = 4
INSTANCES = 100  # 4 x 100 x 512 KiB: about 210 MB of DICOM


def _rate(nbytes: int, seconds: float) -> str:
    return f"{nbytes / MB:8.1f} MB in {seconds:6.2f} s = {nbytes / MB / seconds:7.1f} MB/s"


def _result(name: str, params: dict, nbytes: int, seconds: float) -> BenchResult:
    return BenchResult(
        name,
        params,
        seconds=rounded(seconds),
        figures={"mb": rounded(nbytes / MB, 1), "mb_per_s": rounded(nbytes / MB / seconds, 1)},
    )


def test_bench_xnatsim_import_and_download(xnatsim_factory, tmp_path: Path):
    srv = xnatsim_factory()
    s = requests.Session()
    s.auth = ("admin", "admin")
    assert s.put(f"{srv.url}/data/projects/BENCH").ok

    spec = StudySpec(
        "SUBJ001",
        "SUBJ001_MR1",
        "20240101",
        tuple(
            SeriesSpec(i + 1, f"T1w_{i + 1}", instances=INSTANCES, rows=512, cols=512)
            for i in range(SERIES)
        ),
    )
    zip_path = tmp_path / "study.zip"
    t0 = time.perf_counter()
    zip_size = write_study_zip(spec, zip_path)
    t_gen = time.perf_counter() - t0
    with zipfile.ZipFile(zip_path) as zf:
        dicom_bytes = sum(i.file_size for i in zf.infolist())
    assert dicom_bytes >= 200 * MB

    t0 = time.perf_counter()
    with zip_path.open("rb") as body:
        resp = s.post(
            f"{srv.url}/data/services/import",
            params={
                "import-handler": "DICOM-zip",
                "PROJECT_ID": "BENCH",
                "SUBJECT_ID": "SUBJ001",
                "EXPT_LABEL": "SUBJ001_MR1",
                "dest": "/archive",
            },
            data=body,
            headers={"Content-Type": "application/zip"},
        )
    t_import = time.perf_counter() - t0
    assert resp.status_code == 200, resp.text[:500]

    exp = s.get(f"{srv.url}/data/projects/BENCH/experiments", params={"format": "json"}).json()
    eid = exp["ResultSet"]["Result"][0]["ID"]
    t0 = time.perf_counter()
    downloaded = 0
    with s.get(
        f"{srv.url}/data/experiments/{eid}/scans/ALL/files", params={"format": "zip"}, stream=True
    ) as r:
        assert r.status_code == 200
        for chunk in r.iter_content(1 << 20):
            downloaded += len(chunk)
    t_down = time.perf_counter() - t0
    assert downloaded > dicom_bytes

    seed = SeedSpec(
        "SEEDBENCH",
        subjects=2,
        sessions_per_subject=1,
        scans_per_session=4,
        instances_per_scan=25,
        rows=512,
        cols=512,
        extras=False,
    )
    t0 = time.perf_counter()
    report = seed_project(srv.url, seed, workers=2)
    t_seed = time.perf_counter() - t0

    size = {"series": SERIES, "instances": INSTANCES, "matrix": 512}
    seeded = {"sessions": report.sessions, "files": report.files, "workers": 2}
    record(
        _result("xnatsim_generate", size, zip_size, t_gen),
        _result("xnatsim_import", size, zip_size, t_import),
        _result("xnatsim_download", size, downloaded, t_down),
        _result("xnatsim_seed", seeded, report.bytes, t_seed),
    )
    print()
    print(f"xnatsim throughput ({SERIES} series x {INSTANCES} files of 512x512x16 bit)")
    print(f"  generate DICOM zip      {_rate(zip_size, t_gen)}")
    print(f"  DICOM-zip import        {_rate(zip_size, t_import)}")
    print(f"  scans/ALL zip download  {_rate(downloaded, t_down)}")
    print(
        f"  seed (generate+import)  {_rate(report.bytes, t_seed)}  "
        f"({report.sessions} sessions, {report.files} files, 2 workers)"
    )
