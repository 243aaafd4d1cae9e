"""Streaming download throughput and memory of ``XnatClient.download`` against xnatsim.

A 500 MB project resource file is uploaded (streamed from disk) to an ``xnatsim serve``
subprocess, then downloaded in a fresh Python process so its peak RSS measures only the
client: the body must never be held in memory.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.benchmarks.results import BenchResult, record, rounded
from xnatctl.client import XnatClient

SIZE_MB = int(os.environ.get("XNATCTL_BENCH_MB", "500"))
CHUNK = 1024 * 1024
PEAK_LIMIT_MB = 100
FILE_PATH = "/data/projects/BENCH/resources/RAW/files/big.bin"
ROOT = Path(__file__).resolve().parents[2]

DOWNLOADER = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from xnatctl.client import XnatClient

    url, path, dest = sys.argv[1:4]
    with XnatClient(url, user="admin", password="admin") as client:
        client.whoami()
        start = time.perf_counter()
        n = client.download(path, Path(dest))
        seconds = time.perf_counter() - start
    # VmHWM belongs to this address space alone: Linux carries ru_maxrss across exec, so a
    # child of a large test process would report its parent's peak.
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_kb = int(line.split()[1])
    print(json.dumps({"bytes": n, "seconds": seconds, "peak_kb": peak_kb}))
    """
)


def _start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    code = "from xnatsim.cli import run; run()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--data", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on" not in line:
        proc.kill()
        pytest.fail(f"xnatsim did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[-1].strip()


def _make_file(path: Path, size_mb: int) -> str:
    digest = hashlib.md5()
    block = os.urandom(CHUNK)
    with open(path, "wb") as fh:
        for i in range(size_mb):
            chunk = block[i % 256 :] + block[: i % 256]  # differ per chunk, cheaply
            fh.write(chunk)
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.bench
def test_bench_client_download(tmp_path):
    src = tmp_path / "big.bin"
    md5 = _make_file(src, SIZE_MB)
    proc, url = _start_server(tmp_path / "sim")
    try:
        with XnatClient(url, user="admin", password="admin", timeout=600) as client:
            client.request_text("PUT", "/data/projects/BENCH")
            start = time.perf_counter()
            client.upload("PUT", FILE_PATH, src, {"inbody": "true"})
            upload_s = time.perf_counter() - start
        dest = tmp_path / "back.bin"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", DOWNLOADER, url, FILE_PATH, str(dest)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=1800,
        ).stdout
        figures = json.loads(out.strip().splitlines()[-1])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    size = SIZE_MB * CHUNK
    peak_mb = figures["peak_kb"] / 1024
    down_mbs = figures["bytes"] / CHUNK / figures["seconds"]
    up_mbs = SIZE_MB / upload_s
    print(
        f"\nclient download: {SIZE_MB} MB in {figures['seconds']:.1f} s = {down_mbs:.0f} MB/s, "
        f"peak RSS {peak_mb:.0f} MB; upload {up_mbs:.0f} MB/s"
    )
    record(
        BenchResult(
            "client_download",
            {"mb": SIZE_MB},
            seconds=rounded(figures["seconds"]),
            peak_rss_mb=rounded(peak_mb, 1),
            figures={"mb_per_s": rounded(down_mbs, 1), "upload_mb_per_s": rounded(up_mbs, 1)},
        )
    )
    assert figures["bytes"] == size
    digest = hashlib.md5()
    with open(dest, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    assert digest.hexdigest() == md5
    assert peak_mb < PEAK_LIMIT_MB
