"""The import handler follows the destination's XNAT version."""

from __future__ import annotations

import pytest
import requests

from planner.steps import import_handler_for
from xnatsim.seed import SeedSpec, seed_project


@pytest.mark.parametrize(
    ("version", "handler"),
    [
        ("1.8.11", "DICOM-zip"),
        ("1.8.10", "DICOM-zip"),
        ("1.8.11-SNAPSHOT", "DICOM-zip"),
        ("1.9.1", "DICOM-zip"),
        ("1.8.9", "SI"),
        ("1.7.6", "SI"),
        ("", "DICOM-zip"),
        ("unknown", "DICOM-zip"),
    ],
)
def test_handler_by_version(version, handler):
    assert import_handler_for(version) == handler


def test_a_pre_1_8_10_destination_is_filled_through_the_session_importer(
    xnatsim_factory, monkeypatch, capsys
):
    from xnatctl.cli.main import main

    src = xnatsim_factory(site_id="SRC")
    dst = xnatsim_factory(site_id="OLD", settings={"version": "1.8.9"})
    seed_project(
        src.url,
        SeedSpec(project="P", subjects=1, scans_per_session=2, rows=8, cols=8, extras=False),
        auth=("admin", "admin"),
    )
    requests.put(f"{dst.url}/data/projects/P", auth=("admin", "admin"), timeout=30)
    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    assert main(["config", "add-profile", "src", "--url", src.url]) == 0
    assert main(["config", "add-profile", "dst", "--url", dst.url]) == 0
    args = ["project", "transfer", "-p", "src", "-P", "P", "--dest-profile", "dst"]
    code = main([*args, "--dest-project", "P", "--yes"])
    assert code == 0, capsys.readouterr().err
    imports = [e for e in dst.request_log.entries() if e["path"] == "/data/services/import"]
    assert imports and all("import-handler=SI" in e["query"] for e in imports)
    scans = requests.get(
        f"{dst.url}/data/projects/P/experiments",
        params={"format": "json"},
        auth=("admin", "admin"),
        timeout=30,
    ).json()["ResultSet"]["Result"]
    assert scans, "nothing was archived"
    prearchive = requests.get(
        f"{dst.url}/data/prearchive/projects/P",
        params={"format": "json"},
        auth=("admin", "admin"),
        timeout=30,
    ).json()["ResultSet"]["Result"]
    assert prearchive == []
