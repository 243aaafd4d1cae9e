"""A transfer converges on a destination that behaves like a real XNAT, in every configuration.

Each case copies a seeded source project NEURO into a destination project with another ID,
NEURO_DEV, through the CLI with ``--workers 4``, then checks what a data manager would: the
run exits 0 with verification passed, ``project drift`` finds nothing, a second transfer has
nothing to do, every source DICOM instance (SOPInstanceUID) is on the destination in the scan
of the same series, every non-DICOM file is byte-identical, and the destination's DICOM says
which project it is in (0008,1030) when its site anonymization script runs.

The destination configurations are those a default XNAT 1.8.x can be in:

- ``defaults``: XNAT 1.8.11's defaults. Site anonymization on
  (``SiteConfigPreferences.getEnableSitewideAnonymizationScript``; the default ``id.das``
  writes the routed project into StudyDescription), new projects auto-archive (code 4,
  ``defaultProjectAutoArchiveSetting``).
- ``no-anonymization``: the site script switched off: the source's StudyDescription stays.
- ``manual-prearchive``: the destination project's prearchive code set to 0
  (``PUT /data/projects/P/prearchive_code/0``): DICOM-zip then archives a merge only when the
  import allows it (``DicomZipImporter.archiveSession``).
- ``xnat-1.8.9``: before 1.8.10 DICOM-zip ignores ``dest``; apply uses the session importer.
- ``renumbered-scan``: a source scan whose ID (7) is not its SeriesNumber (3), with a NIFTI
  resource: the destination's import numbers it 3 (``Restructurer.determineScanSubdir``,
  TestImport.testModifiedSeriesUIDs relies on that numbering), so the NIFTI must follow it.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import pydicom
import pytest
import requests

from xnatsim.seed import SeedSpec, seed_project

from .conftest import ADMIN
from .renumbered import add_renumbered_scan

SOURCE = "NEURO"
DEST = "NEURO_DEV"
TIMEOUT = 30


@dataclass(frozen=True)
class Case:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)
    manual_prearchive: bool = False
    renumbered_scan: bool = False
    handler: str = "DICOM-zip"  # the import handler apply must choose for this server

    @property
    def anonymizes(self) -> bool:
        return bool(self.settings.get("anonymize", True))


CASES = [
    Case("defaults"),
    Case("no-anonymization", settings={"anonymize": False}),
    Case("manual-prearchive", manual_prearchive=True),
    Case("xnat-1.8.9", settings={"version": "1.8.9"}, handler="SI"),
    Case("renumbered-scan", renumbered_scan=True),
]


# -- reading a project back over REST ---------------------------------------------------------


def _rows(url: str, path: str) -> list[dict[str, str]]:
    reply = requests.get(f"{url}{path}", params={"format": "json"}, auth=ADMIN, timeout=TIMEOUT)
    reply.raise_for_status()
    return reply.json()["ResultSet"]["Result"]


def _files(url: str, owner: str) -> dict[str, dict[str, bytes]]:
    """Resource label -> {path inside the resource: bytes} of one entity's resources."""
    out: dict[str, dict[str, bytes]] = {}
    for res in _rows(url, f"{owner}/resources"):
        label = res["label"]
        files: dict[str, bytes] = {}
        for row in _rows(url, f"{owner}/resources/{label}/files"):
            body = requests.get(f"{url}{row['URI']}", auth=ADMIN, timeout=TIMEOUT)
            body.raise_for_status()
            files[row["URI"].split("/files/", 1)[1]] = body.content
        out[label] = files
    return out


@dataclass
class Picture:
    """What a project holds, keyed so that two servers' pictures compare directly: a scan by
    its DICOM's SeriesInstanceUID (its ID where it has no DICOM)."""

    # (subject, session, series UID) -> {SOPInstanceUID: StudyDescription}
    dicom: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    # "subject/session/scan-key/resource/path" (and shorter for other levels) -> bytes
    other: dict[str, bytes] = field(default_factory=dict)
    # scan key -> scan ID, per session
    scan_ids: dict[tuple[str, str, str], str] = field(default_factory=dict)


def _series_of(dicom: dict[str, bytes]) -> tuple[str, dict[str, str]]:
    """The one series of a scan's DICOM files (read with pydicom from the bytes served) and
    its instances with their StudyDescription."""
    series: set[str] = set()
    instances: dict[str, str] = {}
    for body in dicom.values():
        ds = pydicom.dcmread(io.BytesIO(body))
        series.add(str(ds.SeriesInstanceUID))
        instances[str(ds.SOPInstanceUID)] = str(ds.get("StudyDescription", ""))
    assert len(series) == 1, f"one scan holds several series: {series}"
    return series.pop(), instances


def _scan_zip(url: str, session: str, scan: str) -> dict[str, bytes]:
    """A scan's DICOM as its zip download (the way XNAT users fetch it)."""
    reply = requests.get(
        f"{url}{session}/scans/{scan}/resources/DICOM/files",
        params={"format": "zip"},
        auth=ADMIN,
        timeout=TIMEOUT,
    )
    reply.raise_for_status()
    with zipfile.ZipFile(io.BytesIO(reply.content)) as zf:
        return {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}


def picture(url: str, project: str) -> Picture:
    pic = Picture()
    base = f"/data/projects/{project}"

    def keep(prefix: str, resources: dict[str, dict[str, bytes]]) -> None:
        for label, files in resources.items():
            for path, body in files.items():
                pic.other[f"{prefix}{label}/{path}"] = body

    keep("project/", _files(url, base))
    for subj in _rows(url, f"{base}/subjects"):
        s_path = f"{base}/subjects/{subj['label']}"
        keep(f"{subj['label']}/", _files(url, s_path))
        for exp in _rows(url, f"{s_path}/experiments"):
            e_path = f"{s_path}/experiments/{exp['label']}"
            e_key = f"{subj['label']}/{exp['label']}/"
            keep(e_key, _files(url, e_path))
            if not exp["xsiType"].endswith("SessionData"):
                continue
            for scan in _rows(url, f"{e_path}/scans"):
                resources = _files(url, f"{e_path}/scans/{scan['ID']}")
                key = scan["ID"]
                if "DICOM" in resources:
                    key, instances = _series_of(_scan_zip(url, e_path, scan["ID"]))
                    assert set(instances) == {
                        str(pydicom.dcmread(io.BytesIO(b)).SOPInstanceUID)
                        for b in resources.pop("DICOM").values()
                    }, "the zip download and the file listing disagree"
                    pic.dicom[(subj["label"], exp["label"], key)] = instances
                pic.scan_ids[(subj["label"], exp["label"], key)] = scan["ID"]
                keep(f"{e_key}scans/{key}/", resources)
            for assessor in _rows(url, f"{e_path}/assessors"):
                a_path = f"{e_path}/assessors/{assessor['label']}"
                keep(f"{e_key}assessors/{assessor['label']}/", _files(url, a_path))
    return pic


# -- building the source ----------------------------------------------------------------------


def _put(url: str, path: str, params: dict[str, str] | None = None, **kw: Any) -> None:
    reply = requests.put(f"{url}{path}", params=params or {}, auth=ADMIN, timeout=TIMEOUT, **kw)
    assert reply.status_code in (200, 201), f"PUT {path}: {reply.status_code} {reply.text}"


@dataclass
class Setup:
    src: Any
    dst: Any
    case: Case

    def args(self) -> list[str]:
        return ["-p", "src", "-P", SOURCE, "--dest-profile", "dst", "--dest-project", DEST]


@pytest.fixture(params=CASES, ids=[c.name for c in CASES])
def setup(request, xnatsim_factory, cli, monkeypatch) -> Setup:
    case: Case = request.param
    src = xnatsim_factory(site_id="SRC")
    dst = xnatsim_factory(site_id="DST", settings=case.settings)
    seed_project(
        src.url,
        SeedSpec(
            project=SOURCE,
            subjects=2,
            sessions_per_subject=1,
            scans_per_session=2,
            instances_per_scan=2,
            rows=16,
            cols=16,
        ),
        auth=ADMIN,
    )
    if case.renumbered_scan:
        add_renumbered_scan(src.url, SOURCE, instances=3, nifti=True)
    _put(dst.url, f"/data/projects/{DEST}")
    if case.manual_prearchive:
        _put(dst.url, f"/data/projects/{DEST}/prearchive_code/0")
    monkeypatch.setenv("XNATCTL_USER", "admin")
    monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
    assert cli("config", "add-profile", "src", "--url", src.url).code == 0
    assert cli("config", "add-profile", "dst", "--url", dst.url).code == 0
    return Setup(src, dst, case)


# -- the test ---------------------------------------------------------------------------------


def test_a_transfer_converges(setup: Setup, cli) -> None:
    first = cli("project", "transfer", *setup.args(), "--yes", "--workers", "4", "-o", "json")
    assert first.code == 0, first.err + first.out
    summary = json.loads(first.out)
    assert summary["status"] == "completed", summary
    assert summary["verification"]["checked"] > 0, summary
    assert summary["verification"]["failed"] == 0, summary

    drift = cli("project", "drift", *setup.args())
    assert drift.code == 0, drift.out + drift.err
    again = cli("project", "transfer", *setup.args(), "--yes", "--workers", "4")
    assert again.code == 0, again.err + again.out
    assert "No changes" in again.out, again.out

    # Every import used the handler that archives straight into the session on this server,
    # and nothing is left waiting in the destination's prearchive.
    imports = [
        parse_qs(e["query"])
        for e in setup.dst.request_log.entries()
        if e["method"] == "POST" and e["path"] == "/data/services/import"
    ]
    assert imports and {q["import-handler"][0] for q in imports} == {setup.case.handler}
    assert _rows(setup.dst.url, f"/data/prearchive/projects/{DEST}") == []

    source, dest = picture(setup.src.url, SOURCE), picture(setup.dst.url, DEST)

    # Every source instance is on the destination, in the scan of the same series.
    assert source.dicom, "the seed made no DICOM"
    assert dest.dicom.keys() == source.dicom.keys()
    for key, instances in source.dicom.items():
        assert dest.dicom[key].keys() == instances.keys(), key

    # The destination's DICOM says where it is when its anonymization script runs.
    for key, instances in dest.dicom.items():
        expected = DEST if setup.case.anonymizes else source.dicom[key]
        for sop, description in instances.items():
            want = expected if isinstance(expected, str) else expected[sop]
            assert description == want, (key, sop, description)

    # Non-DICOM files are byte-identical, at every level, scans paired by series.
    assert source.other, "the seed made no non-DICOM files"
    assert dest.other.keys() == source.other.keys()
    assert all(dest.other[k] == v for k, v in source.other.items())

    if setup.case.renumbered_scan:
        # The destination numbered the scan by its SeriesNumber, and its NIFTI followed it.
        (key,) = [k for k in source.scan_ids if k[:2] == ("RENUM", "RENUM_MR1")]
        assert source.scan_ids[key] == "7" and dest.scan_ids[key] == "3"
        assert any(k.startswith(f"RENUM/RENUM_MR1/scans/{key[2]}/NIFTI/") for k in dest.other)
        assert sorted(dest.scan_ids[k] for k in dest.scan_ids if k[0] == "RENUM") == ["3"]
