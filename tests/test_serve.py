"""The embedded xrootd daemon: real reads, listings, read-only /data, writable /out, clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from hepstream.errors import ConfigError
from hepstream.tools.serve import XRootDServer

pytestmark = pytest.mark.xrootd


def _read_all(url: str) -> bytes:
    from XRootD import client

    f = client.File()
    status, _ = f.open(url)
    assert status.ok, status.message
    try:
        status, data = f.read()
        assert status.ok, status.message
    finally:
        f.close()
    return data


def test_url_layout(xrootd_server: XRootDServer) -> None:
    assert xrootd_server.url == f"root://127.0.0.1:{xrootd_server.port}"
    assert xrootd_server.port > 0
    assert xrootd_server.data_url("a.root") == f"{xrootd_server.url}//data/a.root"
    user = xrootd_server.user
    assert user == "hepstream-test"  # the session's sss key (tests/conftest.py)
    assert xrootd_server.out_url("b/c.root") == f"{xrootd_server.url}//out/{user}/b/c.root"


def test_read_gives_disk_bytes(xrootd_server: XRootDServer, sample_dir: Path) -> None:
    name = "tau11_mc_000.root"
    assert _read_all(xrootd_server.data_url(name)) == (sample_dir / name).read_bytes()


def test_uproot_reads_over_root(xrootd_server: XRootDServer) -> None:
    import uproot

    with uproot.open(xrootd_server.data_url("tau11_mc_000.root")) as f:
        assert f["events"].num_entries == 5_000
        assert len(f["events"]["trk_px"].array(entry_stop=100)) == 100


def test_dirlist(xrootd_server: XRootDServer, sample_dir: Path) -> None:
    from XRootD import client
    from XRootD.client.flags import DirListFlags

    status, listing = client.FileSystem(xrootd_server.url).dirlist("/data", DirListFlags.STAT)
    assert status.ok, status.message
    got = {entry.name: entry.statinfo.size for entry in listing}
    assert got == {p.name: p.stat().st_size for p in sample_dir.iterdir()}


def test_data_is_read_only(xrootd_server: XRootDServer, sample_dir: Path) -> None:
    from XRootD import client
    from XRootD.client.flags import OpenFlags

    f = client.File()
    status, _ = f.open(xrootd_server.data_url("intruder.txt"), OpenFlags.NEW)
    assert not status.ok
    # the authorization rules refuse it first; the r/o export would refuse it next
    assert any(why in status.message for why in ("permission denied", "read/only", "read-only"))
    assert not (sample_dir / "intruder.txt").exists()


def test_out_is_writable(xrootd_server: XRootDServer) -> None:
    from XRootD import client
    from XRootD.client.flags import OpenFlags

    payload = os.urandom(300_000)
    f = client.File()
    status, _ = f.open(xrootd_server.out_url("job1/part.bin"), OpenFlags.NEW | OpenFlags.MAKEPATH)
    assert status.ok, status.message
    assert f.write(payload)[0].ok
    assert f.close()[0].ok
    assert xrootd_server.out_path("job1/part.bin").read_bytes() == payload
    assert _read_all(xrootd_server.out_url("job1/part.bin")) == payload


def test_copy_process_to_out(xrootd_server: XRootDServer, sample_dir: Path) -> None:
    from XRootD import client

    process = client.CopyProcess()
    process.add_job(
        str(sample_dir / "tau11_mc_000.root"),
        xrootd_server.out_url("copies/tau11.root"),
        force=True,
        mkdir=True,
    )
    assert process.prepare().ok
    status, results = process.run()
    assert status.ok, status.message
    assert results[0]["status"].ok, results[0]["status"].message
    copied = xrootd_server.out_path("copies/tau11.root")
    assert copied.read_bytes() == (sample_dir / "tau11_mc_000.root").read_bytes()


def test_stop_leaves_no_process_and_no_admin_dir(sample_dir: Path) -> None:
    with XRootDServer(sample_dir) as server:
        pid = server.pid
        admin = server.admin_dir
        assert pid is not None
        assert psutil.pid_exists(pid)
        assert admin is not None
        assert admin.is_dir()
    assert not psutil.pid_exists(pid)
    assert not admin.exists()
    assert not server.running


def _crash_inside(sample_dir: Path, seen: list[int | None]) -> None:
    with XRootDServer(sample_dir) as server:
        seen.append(server.pid)
        raise RuntimeError("boom")


def test_context_manager_stops_on_error(sample_dir: Path) -> None:
    seen: list[int | None] = []
    with pytest.raises(RuntimeError, match="boom"):
        _crash_inside(sample_dir, seen)
    assert seen
    assert seen[0] is not None
    assert not psutil.pid_exists(seen[0])


def test_given_out_dir_admin_dir_and_fixed_port(sample_dir: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="hepstream-out-"))
    try:
        base.chmod(0o777)
        # a port no client of this process has talked to yet (the XRootD client remembers
        # failed endpoints, so a port is not reused across servers within one test process)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with XRootDServer(sample_dir, base, port=port, admin_dir=base / "admin") as server:
            assert server.admin_dir is not None
            assert server.admin_dir.parent == base / "admin"
            assert server.log_path is not None
            assert "initialization completed" in server.log_path.read_text()
            assert server.port == port
            assert server.out_dir == base
            assert _read_all(server.data_url("tau11_mc_000.root"))[:4] == b"root"
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        XRootDServer(tmp_path / "missing").start()


def test_unreadable_data_dir() -> None:
    base = Path(tempfile.mkdtemp(prefix="hepstream-locked-"))
    try:
        base.chmod(0o000)
        with pytest.raises(ConfigError, match="not readable by the 'xrootd' user"):
            XRootDServer(base).start()
    finally:
        base.chmod(0o700)
        base.rmdir()


def test_missing_binary(sample_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="xrootd not found: apt-get install -y xrootd-server"):
        XRootDServer(sample_dir).start()


def test_cli_serve_until_sigterm(sample_dir: Path) -> None:
    from XRootD import client

    script = (
        "import typer\n"
        "from hepstream.cli.data import serve\n"
        "app = typer.Typer()\n"
        "app.command()(serve)\n"
        "app()\n"
    )
    base = Path(tempfile.mkdtemp(prefix="hepstream-cliout-"))
    base.chmod(0o777)
    try:
        with subprocess.Popen(
            [sys.executable, "-c", script, str(sample_dir), "--out", str(base), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as proc:
            try:
                assert proc.stdout is not None
                info = json.loads(proc.stdout.readline())
                assert info["data"] == f"{info['url']}//data/"
                status, listing = client.FileSystem(info["url"]).dirlist("/data")
                assert status.ok, status.message
                assert {e.name for e in listing} == {p.name for p in sample_dir.iterdir()}
                assert psutil.pid_exists(info["pid"])
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
                assert not psutil.pid_exists(info["pid"])
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        base.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)
