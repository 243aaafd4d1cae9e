"""project transfer-check --probe: a scratch import into the destination, reported and removed.

Each configuration runs the probe against a destination that already holds a seeded subject
and an unrelated prearchive session, and compares the destination's subjects, experiments and
prearchive listings before and after: they must be identical, and every write request the
probe sent must name its scratch subject, its prearchive session or the import service.
"""

from __future__ import annotations

import json
import re

import pytest
import requests

from planner import probe as probe_module
from planner.probedata import make_study
from xnatsim.seed import SeedSpec, seed_project
from xnatsim.testing import add_user

from .conftest import ADMIN, PROJECT, Pair

SMALL = SeedSpec(
    project=PROJECT,
    subjects=1,
    sessions_per_subject=1,
    scans_per_session=1,
    instances_per_scan=1,
    rows=8,
    cols=8,
    extras=False,
)
REWRITTEN = ("(0008,1030)", "(0010,0010)", "(0010,0020)")
FIXED_LABEL = "xnatctl_probe_fixed_label"


@pytest.fixture
def probe_pair(xnatsim_factory, cli, monkeypatch, tmp_path):
    """Build a source and a destination (with ``dst_settings``), both holding a little data."""

    def make(**dst_settings) -> Pair:
        src = xnatsim_factory(site_id="SRC")
        dst = xnatsim_factory(site_id="DST", settings=dst_settings)
        for srv in (src, dst):
            seed_project(srv.url, SMALL, auth=ADMIN)
        # Someone else's upload waiting in the destination's prearchive: never the probe's.
        other = make_study()
        zip_path = other.series[0].write_zip(tmp_path / "other.zip")
        reply = requests.post(
            f"{dst.url}/data/services/import",
            params={
                "import-handler": "DICOM-zip",
                "PROJECT_ID": PROJECT,
                "dest": f"/prearchive/projects/{PROJECT}",
            },
            data=zip_path.read_bytes(),
            headers={"Content-Type": "application/zip"},
            auth=ADMIN,
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        waiting = _rows(dst.url, "/data/prearchive/projects")
        assert other.study_uid in {row["tag"] for row in waiting}
        monkeypatch.setenv("XNATCTL_USER", "admin")
        monkeypatch.setenv("XNATCTL_PASSWORD", "admin")
        assert cli("config", "add-profile", "src", "--url", src.url).code == 0
        assert cli("config", "add-profile", "dst", "--url", dst.url).code == 0
        return Pair(src, dst)

    return make


def _rows(url: str, path: str) -> list[dict]:
    reply = requests.get(f"{url}{path}", params={"format": "json"}, auth=ADMIN, timeout=30)
    reply.raise_for_status()
    return reply.json()["ResultSet"]["Result"]


def _destination_state(pair: Pair) -> dict[str, list[dict]]:
    url = pair.dst.url
    return {
        "subjects": _rows(url, f"/data/projects/{PROJECT}/subjects"),
        "experiments": _rows(url, f"/data/projects/{PROJECT}/experiments"),
        "prearchive": _rows(url, "/data/prearchive/projects"),
    }


def _probe(cli, pair: Pair) -> tuple[int, dict[str, dict]]:
    result = cli("project", "transfer-check", *pair.pair_args(), "--probe", "-o", "json")
    data = json.loads(result.out)
    checks = {c["name"]: c for c in data["checks"]}
    assert data["ok"] == (result.code == 0)
    return result.code, checks


def _writes(pair: Pair) -> list[dict]:
    return [e for e in pair.dst.request_log.entries() if e["method"] not in ("GET", "HEAD")]


def _assert_writes_stay_in_scratch(pair: Pair, label: str) -> None:
    for entry in _writes(pair):
        if entry["method"] == "POST" and entry["path"] == "/data/services/import":
            continue
        assert entry["method"] == "DELETE", entry
        path = entry["path"]
        if path.startswith("/data/prearchive/"):
            continue  # only the probe's own sessions are deleted: the listings are compared
        assert path == f"/data/projects/{PROJECT}/subjects/{label}", entry
        assert "removeFiles=true" in entry["query"], entry


def _scratch_label(checks: dict[str, dict]) -> str:
    detail = checks["probe: scratch subject"]["detail"]
    return detail.split(" ", 1)[0]


def _assert_probe_passed(pair: Pair, cli) -> dict[str, dict]:
    before = _destination_state(pair)
    pair.dst.request_log.clear()
    code, checks = _probe(cli, pair)
    assert code == 0, checks
    statuses = {name: c["status"] for name, c in checks.items()}
    assert all(s in ("pass", "info") for s in statuses.values()), statuses
    for name in (
        "probe: what it writes",
        "probe: server version",
        "probe: site anonymization",
        "probe: scratch subject",
        "probe: import series 1",
        "probe: import series 2 into the same session",
        "probe: listings carry what the snapshot reads",
        "probe: MD5 digests in file listings",
        "probe: both series arrived whole",
        "probe: DICOM header rewrite",
        "probe: clean-up",
    ):
        assert name in checks, sorted(checks)
    assert checks["probe: clean-up"]["status"] == "pass"
    assert _destination_state(pair) == before
    label = _scratch_label(checks)
    assert label.startswith("xnatctl_probe_")
    _assert_writes_stay_in_scratch(pair, label)
    # the probe really imported: two import requests beside the pre-flight's empty one
    imports = [e for e in _writes(pair) if e["path"] == "/data/services/import"]
    assert len(imports) == 3, imports
    return checks


def _rewritten_tags(checks: dict[str, dict]) -> list[str]:
    detail = checks["probe: DICOM header rewrite"]["detail"]
    return [tag for tag in REWRITTEN if tag in detail]


def test_probe_with_defaults_reports_the_anonymization_rewrite(probe_pair, cli):
    pair = probe_pair()
    checks = _assert_probe_passed(pair, cli)
    assert "XNAT 1.8.11" in checks["probe: server version"]["detail"]
    assert "DICOM-zip" in checks["probe: server version"]["detail"]
    assert checks["probe: site anonymization"]["detail"].startswith("enabled")
    # XNAT's default site script (id.das) sets (0008,1030) := project, (0010,0010) :=
    # subject, (0010,0020) := session
    rewrite = checks["probe: DICOM header rewrite"]["detail"]
    assert _rewritten_tags(checks) == list(REWRITTEN), rewrite
    label = _scratch_label(checks)
    assert f"-> '{PROJECT}'" in rewrite
    assert f"PatientName 'XNATCTL^PROBE^PATIENT' -> '{label}'" in rewrite
    assert f"PatientID 'XNATCTL-PROBE-PID' -> '{label}_MR'" in rewrite


def test_probe_without_anonymization_reports_no_rewrite(probe_pair, cli):
    pair = probe_pair(anonymize=False)
    checks = _assert_probe_passed(pair, cli)
    assert checks["probe: site anonymization"]["detail"].startswith("disabled")
    assert _rewritten_tags(checks) == []
    assert checks["probe: DICOM header rewrite"]["detail"].startswith("none")


def test_probe_on_a_manual_prearchive_project(probe_pair, cli):
    pair = probe_pair()
    reply = requests.put(
        f"{pair.dst.url}/data/projects/{PROJECT}/prearchive_code/0", auth=ADMIN, timeout=30
    )
    assert reply.status_code == 200, reply.text
    checks = _assert_probe_passed(pair, cli)
    # an archive dest archives at once even on a manual project (DicomZipImporter)
    assert "/data/archive/projects/" in checks["probe: import series 1"]["detail"]


def test_probe_on_xnat_1_8_9_uses_the_session_importer(probe_pair, cli):
    pair = probe_pair(version="1.8.9")
    checks = _assert_probe_passed(pair, cli)
    assert "XNAT 1.8.9" in checks["probe: server version"]["detail"]
    assert "SI handler" in checks["probe: server version"]["detail"]
    imports = [e for e in _writes(pair) if e["path"] == "/data/services/import"]
    assert "import-handler=SI" in imports[-1]["query"]
    assert _rewritten_tags(checks) == list(REWRITTEN)


def test_probe_text_output_names_what_it_writes(probe_pair, cli):
    pair = probe_pair()
    result = cli("project", "transfer-check", *pair.pair_args(), "--probe")
    assert result.code == 0, result.out + result.err
    assert "info probe: what it writes: creates subject xnatctl_probe_" in result.out
    assert "nothing else is written" in result.out
    assert "ok probe: clean-up" in result.out
    assert "    note: transfers compare DICOM by file names and count" in result.out
    assert "All checks passed." in result.out


def test_probe_refuses_a_scratch_label_that_exists(probe_pair, cli, monkeypatch):
    pair = probe_pair()
    monkeypatch.setattr(probe_module, "scratch_label", lambda: FIXED_LABEL)
    subject = f"{pair.dst.url}/data/projects/{PROJECT}/subjects/{FIXED_LABEL}"
    requests.put(subject, auth=ADMIN, timeout=30).raise_for_status()
    before = _destination_state(pair)
    pair.dst.request_log.clear()
    code, checks = _probe(cli, pair)
    assert code == 1
    refusal = checks["probe: scratch subject"]
    assert refusal["status"] == "fail"
    assert "already exists" in refusal["detail"] and "wrote nothing" in refusal["detail"]
    assert checks["probe: clean-up"]["status"] == "not_run"
    assert "probe: import series 1" not in checks
    # nothing was written: only the pre-flight's empty import was sent, and no DELETE
    assert [e["path"] for e in _writes(pair)] == ["/data/services/import"]
    assert _destination_state(pair) == before
    assert requests.get(subject, params={"format": "json"}, auth=ADMIN, timeout=30).ok


def test_probe_failing_mid_way_still_cleans_up(probe_pair, cli):
    pair = probe_pair()
    before = _destination_state(pair)
    # The third import request fails: the pre-flight's empty import is the first, the probe's
    # first series the second, so the merge of its second series is refused.
    pair.dst.faults.set_rules(
        [{"method": "POST", "path": "/data/services/import", "status": 500, "every": 3}]
    )
    pair.dst.request_log.clear()
    code, checks = _probe(cli, pair)
    assert code == 1
    assert checks["probe: import series 1"]["status"] == "pass"
    failed = checks["probe: import series 2 into the same session"]
    assert failed["status"] == "fail"
    assert "500" in failed["detail"]
    assert "merge" in failed["hint"]
    assert checks["probe: remaining steps"]["status"] == "not_run"
    assert checks["probe: clean-up"]["status"] == "pass"
    label = _scratch_label(checks)
    assert f"subject {label}" in checks["probe: clean-up"]["detail"]
    assert _destination_state(pair) == before
    _assert_writes_stay_in_scratch(pair, label)


def test_probe_says_what_is_left_when_clean_up_fails(probe_pair, cli, monkeypatch):
    pair = probe_pair()
    monkeypatch.setattr(probe_module, "scratch_label", lambda: FIXED_LABEL)
    subject_path = f"/data/projects/{PROJECT}/subjects/{FIXED_LABEL}"
    pair.dst.faults.set_rules([{"method": "DELETE", "path": subject_path, "status": 403}])
    code, checks = _probe(cli, pair)
    assert code == 1
    clean = checks["probe: clean-up"]
    assert clean["status"] == "fail"
    request = f"curl -u USER -X DELETE '{pair.dst.url}{subject_path}?removeFiles=true'"
    assert f"subject {subject_path} is still there; remove it with: {request}" in clean["detail"]
    assert "403" in clean["detail"]
    # the request it names does remove what is left
    pair.dst.faults.set_rules([])
    url = f"{pair.dst.url}{subject_path}"
    requests.delete(url, params={"removeFiles": "true"}, auth=ADMIN, timeout=30).raise_for_status()
    assert requests.get(url, params={"format": "json"}, auth=ADMIN, timeout=30).status_code == 404


def test_probe_is_not_run_on_a_destination_that_is_not_writable(probe_pair, cli):
    pair = probe_pair()
    code, checks = _probe_missing(cli, pair)
    assert code == 1
    assert checks["probe"]["status"] == "not_run"
    assert _writes(pair) == []


def _probe_missing(cli, pair: Pair) -> tuple[int, dict[str, dict]]:
    args = pair.pair_args(dest_project="NOPE")
    pair.dst.request_log.clear()
    result = cli("project", "transfer-check", *args, "--probe", "-o", "json")
    return result.code, {c["name"]: c for c in json.loads(result.out)["checks"]}


def test_scratch_labels_do_not_repeat():
    labels = {probe_module.scratch_label() for _ in range(50)}
    assert len(labels) == 50
    # XNAT keeps labels of [A-Za-z0-9_-] as they are (anything else would be sanitised)
    assert all(re.fullmatch(r"xnatctl_probe_\d{8}T\d{6}Z_[0-9a-f]{8}", x) for x in labels)


def test_probe_refuses_a_member_who_could_not_delete_its_scratch_subject(
    probe_pair, cli, monkeypatch
):
    # NRG TestSharing: project members add data but may not delete it, so the probe's
    # clean-up would fail; it refuses before writing anything.
    pair = probe_pair()
    for srv in (pair.src, pair.dst):
        add_user(srv, "mia", "pw-mia", project=PROJECT, group="Members")
    monkeypatch.setenv("XNATCTL_USER", "mia")
    monkeypatch.setenv("XNATCTL_PASSWORD", "pw-mia")
    before = _destination_state(pair)
    pair.dst.request_log.clear()
    code, checks = _probe(cli, pair)
    assert code == 1
    assert checks[f"destination project {PROJECT}"]["status"] == "pass"
    refusal = checks["probe: scratch subject"]
    assert refusal["status"] == "fail"
    assert "not delete" in refusal["detail"] and "owner" in refusal["hint"]
    assert checks["probe: clean-up"]["status"] == "not_run"
    assert [e["path"] for e in _writes(pair)] == ["/data/services/import"]
    assert _destination_state(pair) == before
