"""project drift: exit codes, classes, filters, and proof that it never writes."""

from __future__ import annotations

import json

import requests

from .conftest import ADMIN, PROJECT

WRITES = {"PUT", "POST", "DELETE", "PATCH"}


def _drift_json(cli, pair, *extra: str) -> tuple[int, dict]:
    result = cli("project", "drift", *pair.pair_args(), "-o", "json", *extra)
    assert result.code in (0, 2), result.err
    return result.code, json.loads(result.out)


def _sessions(srv) -> list[dict]:
    reply = requests.get(
        f"{srv.url}/data/projects/{PROJECT}/experiments",
        params={"format": "json", "columns": "ID,label,xsiType,subject_label"},
        auth=ADMIN,
        timeout=30,
    )
    reply.raise_for_status()
    return reply.json()["ResultSet"]["Result"]


def test_in_sync_after_transfer_exits_0_and_sends_no_writes(transferred, cli):
    for srv in (transferred.src, transferred.dst):
        srv.request_log.clear()
    code, report = _drift_json(cli, transferred)
    assert code == 0
    assert report["schema"] == "xnatctl.drift/1"
    assert report["in_sync"] is True
    assert report["checksums"] is True
    assert report["counts"]["in_sync"] > 0
    assert report["entries"] == []
    for srv in (transferred.src, transferred.dst):
        methods = {e["method"] for e in srv.request_log.entries()}
        assert methods, "drift made no requests at all"
        assert not methods & WRITES, f"drift wrote to {srv.url}: {methods}"


def test_deleted_scan_changed_file_and_extra_session_are_drift(transferred, cli):
    dst = transferred.dst
    session = next(s for s in _sessions(dst) if s["xsiType"] == "xnat:mrSessionData")
    base = f"{dst.url}/data/experiments/{session['ID']}"
    # 1. a scan deleted on the destination
    requests.delete(f"{base}/scans/1", params={"removeFiles": "true"}, auth=ADMIN, timeout=30)
    # 2. a file changed on the destination: same size, other bytes (only a digest sees it)
    files = requests.get(
        f"{base}/scans/2/resources/NIFTI/files", params={"format": "json"}, auth=ADMIN, timeout=30
    ).json()["ResultSet"]["Result"]
    victim = files[0]
    original = requests.get(f"{dst.url}{victim['URI']}", auth=ADMIN, timeout=30).content
    changed = bytes(b ^ 0xFF for b in original)
    assert len(changed) == len(original)
    put = requests.put(
        f"{base}/scans/2/resources/NIFTI/files/{victim['Name']}",
        params={"overwrite": "true", "inbody": "true"},
        data=changed,
        auth=ADMIN,
        timeout=30,
    )
    assert put.status_code == 200, put.text
    # 3. an extra session only on the destination
    extra = requests.put(
        f"{dst.url}/data/projects/{PROJECT}/subjects/{session['subject_label']}"
        "/experiments/EXTRA_MR9",
        params={"xsiType": "xnat:mrSessionData"},
        auth=ADMIN,
        timeout=30,
    )
    assert extra.status_code in (200, 201), extra.text

    code, report = _drift_json(cli, transferred)
    assert code == 2
    assert report["in_sync"] is False
    by_class: dict[str, list[dict]] = {}
    for entry in report["entries"]:
        by_class.setdefault(entry["class"], []).append(entry)
    subject, label = session["subject_label"], session["label"]
    missing = {e["address"] for e in by_class.get("missing", [])}
    assert f"{subject}/{label}/scans/1" in missing
    dest_only = {e["address"] for e in by_class.get("dest_only", [])}
    assert f"{subject}/EXTRA_MR9" in dest_only
    differs = {e["address"]: e for e in by_class.get("differs", [])}
    nifti = differs[f"{subject}/{label}/scans/2/NIFTI"]
    assert any("digest" in d for d in nifti["differences"]), nifti
    assert report["counts"]["missing"] >= 1
    assert report["counts"]["dest_only"] >= 1

    # Sizes alone cannot see the same-size change.
    code, report = _drift_json(cli, transferred, "--no-checksums")
    assert report["checksums"] is False
    assert f"{subject}/{label}/scans/2/NIFTI" not in {
        e["address"] for e in report["entries"] if e["class"] == "differs"
    }


def test_filtered_out_session_does_not_count(transferred, cli, tmp_path):
    dst = transferred.dst
    ct = next(s for s in _sessions(dst) if s["xsiType"] == "xnat:ctSessionData")
    reply = requests.delete(
        f"{dst.url}/data/experiments/{ct['ID']}", params={"removeFiles": "true"}, auth=ADMIN
    )
    assert reply.status_code == 200, reply.text
    code, _ = _drift_json(cli, transferred)
    assert code == 2  # without a filter the deleted CT session is drift

    config = tmp_path / "mr-only.yaml"
    config.write_text(
        "filtering:\n"
        "  imaging_sessions:\n"
        "    sync_type: exclude\n"
        "    xsi_types:\n"
        "      - xsi_type: xnat:ctSessionData\n"
    )
    code, report = _drift_json(cli, transferred, "--config", str(config))
    assert code == 0, report["entries"]
    assert report["in_sync"] is True


def test_server_down_exits_1_with_one_line(seeded, cli):
    seeded.dst.stop()
    result = cli("project", "drift", *seeded.pair_args())
    assert result.code == 1
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1
    assert "drift check could not run" in lines[0]
    assert "Traceback" not in result.err


def test_usage_error_is_not_mistaken_for_drift(seeded, cli):
    result = cli("project", "drift", "-p", "src", "-P", PROJECT)  # no destination project
    assert result.code == 64
