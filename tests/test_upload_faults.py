"""A broken upload leaves nothing on the server: persist-on-successful-close, real kills.

The upload runs in its own process through a bandwidth-capped loopback proxy, so it is still
sending when the test kills the server (or the uploader) with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hepstream.io.partfiles import is_part
from hepstream.tools.serve import XRootDServer
from tests.support.wanproxy import WanProxy

pytestmark = [pytest.mark.xrootd, pytest.mark.slow]

UPLOADER = "import sys\nfrom hepstream.io.xrootd import upload\nupload(sys.argv[1], sys.argv[2])\n"
#: 8 MB at 16 Mbit/s: about 4 s of sending, time enough to kill something mid-way.
PAYLOAD_BYTES = 8 * 1024 * 1024
BANDWIDTH_MBPS = 16.0
WAIT_S = 60.0
#: The client gives up quickly once its server is gone (defaults retry for minutes).
CLIENT_ENV = {"XRD_CONNECTIONRETRY": "1", "XRD_REQUESTTIMEOUT": "10", "XRD_STREAMTIMEOUT": "10"}


def _payload(tmp_path: Path) -> Path:
    local = tmp_path / "big.root"
    local.write_bytes(os.urandom(PAYLOAD_BYTES))
    return local


def _start_upload(local: Path, url: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", UPLOADER, str(local), url],
        env={**os.environ, **CLIENT_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(what, deadline_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not what():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what.__doc__ or what}")
        time.sleep(0.05)


def _parts(area: Path) -> list[Path]:
    return [p for p in area.iterdir() if is_part(p.name)] if area.exists() else []


def _sending(area: Path):
    def check() -> bool:
        """the upload's temp file to grow on the server"""
        return any(p.stat().st_size > 0 for p in _parts(area))

    return check


def test_server_killed_during_upload_leaves_no_file(tmp_path, sample_dir, base):
    local = _payload(tmp_path)
    server = XRootDServer(sample_dir, base / "out", admin_dir=base / "admin").start()
    area = server.out_path()
    try:
        with WanProxy((server.host, server.port), bandwidth_mbps=BANDWIDTH_MBPS) as proxy:
            url = server.out_url("killed.root").replace(str(server.port), str(proxy.port), 1)
            uploader = _start_upload(local, url)
            try:
                _wait_for(_sending(area))
                os.killpg(server.pid, signal.SIGKILL)  # the daemon dies mid-transfer
                assert uploader.wait(timeout=WAIT_S) != 0
            finally:
                if uploader.poll() is None:
                    uploader.kill()
                uploader.communicate()
        assert _parts(area)  # a dead daemon deletes nothing: the half file is still there
    finally:
        server.stop()
    # back up on the same storage and admin dir: its POSC log names the unfinished file
    with XRootDServer(sample_dir, base / "out", admin_dir=base / "admin") as again:
        assert again.out_path() == area
        assert list(area.iterdir()) == []


def test_uploader_killed_during_upload_leaves_no_file(tmp_path, xrootd_server):
    local = _payload(tmp_path)
    area = xrootd_server.out_path("uploader-killed")
    with WanProxy((xrootd_server.host, xrootd_server.port), bandwidth_mbps=BANDWIDTH_MBPS) as proxy:
        url = xrootd_server.out_url("uploader-killed/o.root")
        url = url.replace(str(xrootd_server.port), str(proxy.port), 1)
        uploader = _start_upload(local, url)
        try:
            _wait_for(lambda: area.exists() and _sending(area)())
            uploader.send_signal(signal.SIGKILL)  # no cleanup code of ours runs
            uploader.wait(timeout=WAIT_S)
        finally:
            with contextlib.suppress(ProcessLookupError):
                uploader.kill()
            uploader.communicate()

        def gone() -> bool:
            """the server to drop the unfinished upload"""
            return list(area.iterdir()) == []

        _wait_for(gone, 20.0)
