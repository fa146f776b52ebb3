"""SIGINT / SIGTERM sent to a real ``hepstream run`` process: a clean stop, nothing left behind.

The plugin sleeps per chunk, so the job is still reading when the signal comes; it drops a
marker on its first chunk so the test signals a job that is really under way.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prochelpers import wait_for_marker

from hepstream.io.partfiles import is_part, parse_part, part_name, remove_stale

SLOW_PLUGIN = """\
import os, time, numpy as np, hepstream
class Slow(hepstream.Selection):
    branches = ["thrust"]
    def select(self, events):
        open(os.environ["HEPSTREAM_TEST_MARKER"], "a").close()
        time.sleep(0.5)
        return np.ones(len(events), bool)
"""
#: The job would take ~20 s (40 chunks of 0.5 s); a stop must come long before.
REPEATS = 10
#: Bound on every wait for a child process.
WAIT_S = 60.0


def _start(tmp_path: Path, inputs: list[str], output: str, report: str, **env: str):
    plugin = tmp_path / "slow.py"
    plugin.write_text(SLOW_PLUGIN)
    marker = tmp_path / "started"
    marker.unlink(missing_ok=True)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "hepstream", "run", str(plugin), *inputs, "-o", output]
    # 64k: one 5000-event cluster per chunk (--chunk 1 makes main hang: reported to the lead)
    cmd += ["--report", report, "--chunk", "64k", "--no-progress"]
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "TMPDIR": str(scratch), "HEPSTREAM_TEST_MARKER": str(marker), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_marker(proc, marker, WAIT_S)
    return proc, scratch


def _stop(proc: subprocess.Popen, signum: int) -> tuple[int, str, float]:
    t0 = time.monotonic()
    proc.send_signal(signum)
    try:
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err, time.monotonic() - t0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_local_job_cleanly(tmp_path, out_dir, sample_dir, signum):
    inputs = [str(sample_dir / "tau1n_mc_000.root")] * REPEATS
    report = out_dir / "r.json"
    proc, scratch = _start(tmp_path, inputs, str(out_dir / "o.root"), str(report))
    code, err, took = _stop(proc, signum)
    name = signal.Signals(signum).name
    assert code == 128 + signum, err
    assert took < 10, f"stopped after {took:.1f} s"  # the whole job would need ~20 s
    errors = [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    assert errors == [f"hepstream: error: interrupted ({name})"]
    data = json.loads(report.read_text())
    assert data["status"] == "failed"
    assert data["error"] == f"interrupted ({name})"
    assert data["events_read"] < 20_000 * REPEATS  # stopped mid-job
    assert [p.name for p in out_dir.iterdir()] == ["r.json"]
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
@pytest.mark.xrootd
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_a_remote_job_cleanly(tmp_path, xrootd_server, signum):
    name = signal.Signals(signum).name.lower()
    inputs = [xrootd_server.data_url("tau1n_mc_000.root")] * REPEATS
    output = xrootd_server.out_url(f"signals/{name}.root")
    report = xrootd_server.out_url(f"signals/{name}.json")
    proc, scratch = _start(tmp_path, inputs, output, report)
    code, err, _ = _stop(proc, signum)
    assert code == 128 + signum, err
    served = xrootd_server.out_path("signals")
    data = json.loads((served / f"{name}.json").read_text())
    assert data["status"] == "failed"
    assert data["error"] == f"interrupted ({signal.Signals(signum).name})"
    # the report is the only file the server holds: no output, no .part
    assert sorted(p.name for p in served.iterdir() if p.stem == name) == [f"{name}.json"]
    assert not [p for p in served.iterdir() if is_part(p.name)]
    assert list(scratch.iterdir()) == []


@pytest.mark.slow
def test_a_sigkilled_jobs_temp_file_is_recognised_and_removed_by_the_next_run(
    tmp_path, out_dir, sample_dir
):
    inputs = [str(sample_dir / "tau1n_mc_000.root")] * REPEATS
    output = out_dir / "o.root"
    proc, _ = _start(tmp_path, inputs, str(output), str(out_dir / "r.json"))
    code, _, _ = _stop(proc, signal.SIGKILL)
    assert code == -signal.SIGKILL
    left = [p.name for p in out_dir.iterdir()]
    assert left == [part_name("o.root", proc.pid)]  # recognisably hepstream's, with its pid
    assert list(out_dir.glob("*.root")) == []  # never taken for output by a glob
    # a temp file of a live writer (this process) is not touched by the next run
    alive = out_dir / part_name("o.root")
    alive.write_bytes(b"in progress")
    proc, _ = _start(tmp_path, inputs[:1], str(output), str(out_dir / "r.json"))
    assert proc.wait(timeout=WAIT_S) == 0, proc.communicate()[1]
    proc.communicate()
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(["o.root", "r.json", alive.name])
    assert json.loads((out_dir / "r.json").read_text())["status"] == "ok"


def test_part_names_round_trip_and_stale_ones_go(tmp_path):
    name = part_name("out.root", 4242)
    assert name == ".out.root.hepstream-4242.part"
    assert parse_part(name) == ("out.root", 4242)
    assert parse_part("out.root") is None
    assert parse_part(".out.root.123.part") is None  # someone else's temp naming
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / part_name("out.root", dead.pid)
    mine = tmp_path / part_name("out.root")
    other = tmp_path / part_name("other.root", dead.pid)
    for path in (stale, mine, other):
        path.write_text("x")
    assert remove_stale(tmp_path, "out.root") == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])
