"""Test data and calls shared by the ports of NRG's archive, prearchive and import tests.

NRG's suite uploads `mr_1.zip`, `scan1.zip`, `scan2.zip` (same study) and `scan2_diffUID.zip`;
these helpers write small equivalents with pydicom instead.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.xnatsim.conftest import Series, dicom_zip

IMPORT = "/data/services/import"


def zip_of(tmp: Path, name: str, series: list[Series], **kwargs) -> Path:
    out = tmp / f"{name}.zip"
    dicom_zip(out, series, **kwargs)
    return out


def scan_zips(tmp: Path) -> tuple[Path, Path, Path]:
    """scan1 and scan2 of one study, and scan2 under another StudyInstanceUID."""
    return (
        zip_of(tmp, "scan1", [Series(1, "T1", instances=3)]),
        zip_of(tmp, "scan2", [Series(2, "T2", instances=2)]),
        zip_of(tmp, "scan2_diffUID", [Series(2, "T2", instances=2)], study="other"),
    )


def post_zip(s: requests.Session, url: str, path: Path, **params) -> requests.Response:
    params.setdefault("import-handler", "DICOM-zip")
    with open(path, "rb") as fh:
        return s.post(
            f"{url}{IMPORT}",
            params=params,
            data=fh,
            headers={"Content-Type": "application/zip"},
            allow_redirects=False,
        )


def new_project(s: requests.Session, url: str, pid: str, code: int | None = 0) -> None:
    assert s.put(f"{url}/data/projects/{pid}").status_code in (200, 201)
    if code is not None:
        assert s.put(f"{url}/data/projects/{pid}/prearchive_code/{code}").ok


def prearchive_rows(s: requests.Session, url: str, project: str = "") -> list[dict]:
    path = f"/data/prearchive/projects/{project}" if project else "/data/prearchive/projects"
    return s.get(f"{url}{path}").json()["ResultSet"]["Result"]


def files_of(s: requests.Session, url: str) -> list[str]:
    r = s.get(url)
    assert r.status_code == 200, r.text
    return sorted(row["Name"] for row in r.json()["ResultSet"]["Result"])
