"""Streaming uploads and downloads through the client against xnatsim, with broken bodies."""

from __future__ import annotations

import hashlib
import os

import pytest

from planner.errors import NetworkError, NotFound
from xnatctl.client import XnatClient
from xnatsim.testing import admin_session

FILE_PATH = "/data/projects/P1/resources/RAW/files/blob.bin"


@pytest.fixture
def srv(xnatsim_factory):
    srv = xnatsim_factory()
    assert admin_session(srv).put(srv.url + "/data/projects/P1").ok
    return srv


@pytest.fixture
def client(srv):
    with XnatClient(srv.url, user="admin", password="admin", retry_base_delay=0.001) as c:
        yield c


@pytest.fixture
def blob(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


def test_upload_then_download_round_trip(client, blob, tmp_path):
    sent = []
    client.upload("PUT", FILE_PATH, blob, {"inbody": "true"}, on_bytes=sent.append)
    assert sum(sent) == blob.stat().st_size
    got = []
    dest = tmp_path / "back.bin"
    n = client.download(FILE_PATH, dest, on_bytes=got.append)
    assert n == sum(got) == blob.stat().st_size
    assert hashlib.md5(dest.read_bytes()).hexdigest() == hashlib.md5(blob.read_bytes()).hexdigest()
    rows = client.get_rows("/data/projects/P1/resources/RAW/files")
    assert [r["Name"] for r in rows] == ["blob.bin"]
    assert rows[0]["digest"] == hashlib.md5(blob.read_bytes()).hexdigest()


def test_a_truncated_download_is_a_network_error(client, srv, blob, tmp_path):
    client.upload("PUT", FILE_PATH, blob, {"inbody": "true"})
    srv.faults.set_rules([{"method": "GET", "path": FILE_PATH, "truncate": 1000}])
    with pytest.raises(NetworkError) as info:
        client.download(FILE_PATH, tmp_path / "short.bin")
    assert info.value.transient


def test_a_dropped_download_is_a_network_error(client, srv, blob, tmp_path):
    client.upload("PUT", FILE_PATH, blob, {"inbody": "true"})
    srv.faults.set_rules([{"method": "GET", "path": FILE_PATH, "drop_after": 200_000}])
    with pytest.raises(NetworkError):
        client.download(FILE_PATH, tmp_path / "dropped.bin")


def test_a_download_is_retried_before_any_byte_arrives(client, srv, blob, tmp_path):
    client.upload("PUT", FILE_PATH, blob, {"inbody": "true"})
    srv.faults.set_rules([{"method": "GET", "path": FILE_PATH, "status": 504, "first": 1}])
    srv.request_log.clear()
    n = client.download(FILE_PATH, tmp_path / "ok.bin")
    assert n == blob.stat().st_size
    statuses = [e["status"] for e in srv.request_log.entries() if e["path"] == FILE_PATH]
    assert statuses == [504, 200]


def test_missing_file_is_not_found_with_xnat_reason(client, tmp_path):
    with pytest.raises(NotFound) as info:
        client.download("/data/projects/P1/resources/RAW/files/none.bin", tmp_path / "x")
    assert info.value.status == 404 and info.value.reason


def test_a_post_is_not_retried_on_503(client, srv, blob):
    srv.faults.set_rules([{"method": "POST", "path": "/data/services/import", "status": 503}])
    srv.request_log.clear()
    from planner.errors import ServerError

    with pytest.raises(ServerError):
        client.upload(
            "POST",
            "/data/services/import",
            blob,
            {"import-handler": "DICOM-zip"},
            content_type="application/zip",
        )
    assert len([e for e in srv.request_log.entries() if e["path"] == "/data/services/import"]) == 1
