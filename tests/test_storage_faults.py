"""Transient storage faults against a real xrootd: restarted, stalled (SIGSTOP), killed.

Each job is a real ``hepstream run`` process with a test-sized retry policy; its plugin
sleeps a little per chunk, so the job is still reading when the server goes away.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import uproot
from prochelpers import finish, wait_for_marker

from hepstream.tools.serve import XRootDServer

pytestmark = [pytest.mark.xrootd, pytest.mark.slow]

SLOW_PLUGIN = """\
import os, time, numpy as np, hepstream
class Slow(hepstream.Selection):
    branches = ["thrust", "event"]
    def select(self, events):
        open(os.environ["HEPSTREAM_TEST_MARKER"], "a").close()
        time.sleep(float(os.environ.get("HEPSTREAM_TEST_SLEEP", "0")))
        return events.thrust > 0.8
    def output(self, events):
        return {"thrust": events.thrust, "event": events.event}
"""
MC = "tau1n_mc_000.root"
FILES = 3
#: A cache bound below one file's baskets (~100 KB of the plugin's branches per file, in
#: four chunks): whatever the machine's speed, most of the job's baskets are still to be
#: read when the test acts on the server. With the default bound (10 MB) a slow first
#: chunk let the prefetcher hold all three files before the server went away.
CACHE = ["--cache", "64k"]
#: A policy that rides out a restart of a few seconds: 5 tries, 0.5 + 1 + 2 + 4 s apart.
RIDE_OUT = ["--set", "stream.timeout=5", "--set", "stream.retries=4",
            "--set", "stream.retry_backoff=0.5"]  # fmt: skip
#: A policy shorter than the stall: 2 tries of 6 s, 0.5 s apart.
SHORT = ["--set", "stream.timeout=6", "--set", "stream.retries=1",
         "--set", "stream.retry_backoff=0.5"]  # fmt: skip
WAIT_S = 90.0


def _server(sample_dir: Path, base: Path, port: int = 0) -> XRootDServer:
    return XRootDServer(sample_dir, base / "out", port=port).start()


def _start(tmp_path: Path, inputs: list[str], output: Path, policy: list[str], sleep: float):
    plugin = tmp_path / "slow.py"
    plugin.write_text(SLOW_PLUGIN)
    marker = tmp_path / "started"
    marker.unlink(missing_ok=True)
    report = output.with_suffix(".json")
    cmd = [sys.executable, "-m", "hepstream", "run", str(plugin), *inputs, "-o", str(output),
           "--report", str(report), "--chunk", "64k", "--no-progress", *CACHE, *policy]  # fmt: skip
    env = {**os.environ, "HEPSTREAM_TEST_MARKER": str(marker), "HEPSTREAM_TEST_SLEEP": str(sleep),
           "TMPDIR": str(tmp_path)}  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, marker, report


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("hepstream: error:")]


def _columns(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as file:
        return {k: np.asarray(v) for k, v in file["events"].arrays(library="np").items()}


def test_restarted_server_job_completes_with_identical_output(tmp_path, sample_dir, base):
    server = _server(sample_dir, base)
    port = server.port
    try:
        inputs = [server.data_url(MC)] * FILES
        clean, _, _ = _start(tmp_path, inputs, tmp_path / "clean.root", RIDE_OUT, 0)
        code, err = finish(clean, WAIT_S)
        assert code == 0, err
        proc, marker, report = _start(tmp_path, inputs, tmp_path / "again.root", RIDE_OUT, 0.3)
        wait_for_marker(proc, marker, WAIT_S)
        server.stop()  # mid-job: reads in flight and files still to open
        time.sleep(1.0)
        server = _server(sample_dir, base, port=port)  # back on the same port
        assert server.port == port
        code, err = finish(proc, WAIT_S)
    finally:
        server.stop()
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["status"] == "ok"
    assert data["events_read"] == 20_000 * FILES
    assert data["read_retries"] > 0  # the restart really cut reads off
    want, got = _columns(tmp_path / "clean.root"), _columns(tmp_path / "again.root")
    assert want.keys() == got.keys()
    assert len(got["thrust"]) > 0
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


def test_stalled_server_fails_the_job_and_the_process_exits(tmp_path, sample_dir, base):
    server = _server(sample_dir, base)
    try:
        inputs = [server.data_url(MC)] * FILES
        proc, marker, report = _start(tmp_path, inputs, tmp_path / "o.root", SHORT, 0.3)
        wait_for_marker(proc, marker, WAIT_S)
        os.killpg(server.pid, signal.SIGSTOP)
        try:
            stalled = time.monotonic()
            code, err = finish(proc, WAIT_S)
            exited, exited_wall = time.monotonic(), time.time()
        finally:
            os.killpg(server.pid, signal.SIGCONT)
    finally:
        server.stop()
    assert code == 75, err  # EX_TEMPFAIL: the server, not the input; it may succeed later
    assert _errors(err) == [
        f"hepstream: error: storage server {server.url} stopped answering (every try of the "
        f"retry policy failed); check the server is up, then run the job again (or allow "
        f"longer: --set stream.retries=N --set stream.timeout=SECONDS); full text in the "
        f"report's detail field ({report})"
    ]
    data = json.loads(report.read_text())
    assert data["status"] == "failed"
    assert server.url in data["error"]
    assert "expired" in data["detail"].lower()
    # the process ends when it reports, not when the server resumes (~60 s later here)
    # (retries + 1) x timeout + backoff = 12.5 s, then at once; not the stall's length
    assert exited - stalled < 30, f"exited {exited - stalled:.1f} s after the stall"
    assert exited_wall - report.stat().st_mtime < 5, "the process lingered after its report"
    assert not list(tmp_path.glob("*.part"))
    assert not list(tmp_path.glob(".*.part"))


def test_killed_server_gives_one_stable_line_naming_it(tmp_path, sample_dir, base):
    server = _server(sample_dir, base)
    url = server.url
    lines = []
    try:
        inputs = [server.data_url(MC)] * FILES
        proc, marker, report = _start(tmp_path, inputs, tmp_path / "o.root", SHORT, 0.3)
        wait_for_marker(proc, marker, WAIT_S)
        os.killpg(server.pid, signal.SIGKILL)  # never back
        code, err = finish(proc, WAIT_S)
        assert code == 75, err
        lines.append(_errors(err))
        # a second job never reached it: its port refuses at once, and the line says so
        began = time.monotonic()
        proc, _, _ = _start(tmp_path, inputs, tmp_path / "o2.root", SHORT, 0)
        code, err = finish(proc, WAIT_S)
        took = time.monotonic() - began
        assert code == 75, err
        lines.append(_errors(err))
    finally:
        server.stop()
    assert len(lines[0]) == 1
    assert f"storage server {url} stopped answering" in lines[0][0]
    assert "may be corrupt" not in lines[0][0]
    assert len(lines[1]) == 1
    assert lines[1][0].startswith(
        f"hepstream: error: cannot connect to storage server {url}: connection refused"
    )
    assert took < 15, f"{took:.1f} s"  # a process start, not the retry policy (13 s)
    assert json.loads(report.read_text())["status"] == "failed"
