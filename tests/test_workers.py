"""Jobs over worker processes (``--workers``): who reads what, output in input order, one
report; real jobs with 2 workers give what one process gives, locally and over a real
xrootd; a signal to the job or a killed worker leaves nothing behind."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
from prochelpers import finish, wait_for_marker

from hepstream.job.runner import JobSpec, run_job
from hepstream.job.workers import HELD_BYTES, InputOrder, combine, deal, worker_count
from hepstream.report import FileReport, JobReport

PLUGIN = """\
import os, time, numpy as np, hepstream
class Thrust(hepstream.Selection):
    branches = ["thrust", "event", "ntrk"]
    def select(self, events):
        marker = os.environ.get("HEPSTREAM_TEST_MARKER")
        if marker:  # the signal tests: a job under way that takes long
            open(marker, "a").close()
            time.sleep(0.5)
        return np.asarray(events.thrust) > 0.8
    def output(self, events):
        return {"thrust": events.thrust, "event": events.event, "ntrk": events.ntrk}
"""
SAMPLES = ("tau1n_mc_000.root", "tau1n_data_000.root", "tau11_mc_000.root")
#: Bound on every wait for a child process.
WAIT_S = 60.0


# -- the pure parts --------------------------------------------------------------------
def test_inputs_are_dealt_in_turn_and_workers_never_outnumber_inputs():
    assert deal(5, 2) == [[0, 2, 4], [1, 3]]
    assert deal(2, 3) == [[0], [1], []]
    assert worker_count(4, 3) == 3
    assert worker_count(2, 10) == 2
    assert worker_count(0, 100) == len(os.sched_getaffinity(0))
    assert worker_count(0, 1) == 1


def test_output_is_released_in_input_order_whatever_order_it_arrives_in():
    order = InputOrder(deal(4, 2))  # worker 0: inputs 0, 2; worker 1: inputs 1, 3
    assert order.add(1, 1, "b1") == []  # input 1 waits for input 0
    assert order.add(1, 1, "b2") == []
    assert order.add(0, 0, "a1") == ["a1"]  # the head goes out at once
    assert order.add(1, 3, "d1") == []  # worker 1 moved on: input 1 complete, 0 is not
    assert order.add(0, 2, "c1") == ["b1", "b2", "c1"]  # 0 complete: 1, then 2's
    assert order.finish(0) == ["d1"]  # 2 complete; 3 is the head
    assert order.add(1, 3, "d2") == ["d2"]
    assert order.finish(1) == []
    assert order.head == 4


def test_inputs_without_output_do_not_hold_up_the_ones_after():
    order = InputOrder(deal(3, 3))
    assert order.add(2, 2, "c") == []
    assert order.finish(1) == []  # input 1 had no output at all
    assert order.finish(0) == ["c"]
    assert order.finish(2) == []


def test_a_worker_far_ahead_waits_but_the_writers_own_worker_never_does():
    order = InputOrder(deal(2, 2))
    order.add(1, 1, "big", HELD_BYTES)
    assert order.waits(1)  # holds HELD_BYTES of input 1 while input 0 is written
    assert not order.waits(0)
    assert order.finish(0) == ["big"]
    assert order.held_bytes == [0, 0]
    assert not order.waits(1)


def test_workers_reports_add_up_with_files_back_in_input_order():
    files = [FileReport(path=f"f{i}") for i in range(3)]
    job = JobReport(files=list(files))
    a = JobReport(events_read=10, bytes_read=100, bytes_needed=90, cpu_s=1.5, peak_rss_mb=200,
                  files=[FileReport("f0", "ok", events_read=6), FileReport("f2", "ok", events_read=4)])  # fmt: skip
    b = JobReport(events_read=5, bytes_read=50, bytes_needed=50, cpu_s=1.0, peak_rss_mb=150,
                  files=[FileReport("f1", "skipped", error="truncated")])  # fmt: skip
    combine(job, [(a, [0, 2]), (b, [1])])
    assert (job.events_read, job.bytes_read, job.bytes_needed) == (15, 150, 140)
    assert (job.cpu_s, job.peak_rss_mb) == (2.5, 350)
    assert [(f.path, f.status) for f in job.files] == [
        ("f0", "ok"),
        ("f1", "skipped"),
        ("f2", "ok"),
    ]
    assert job.status == "partial"


# -- real jobs ---------------------------------------------------------------------------
def _columns(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as file:
        return file["events"].arrays(library="np")


@pytest.mark.parametrize("kind", ["local", pytest.param("remote", marks=pytest.mark.xrootd)])
def test_two_workers_give_the_output_and_counts_of_one_process(tmp_path, sample_dir, kind, request):
    if kind == "local":
        inputs = [str(sample_dir / name) for name in SAMPLES] * 2
    else:
        server = request.getfixturevalue("xrootd_server")
        inputs = [server.data_url(name) for name in SAMPLES] * 2
    plugin = tmp_path / "thrust.py"
    plugin.write_text(PLUGIN)
    one = JobSpec(str(plugin), inputs, str(tmp_path / "one.root"), chunk_bytes=64 * 1024)
    two = dataclasses.replace(one, output=str(tmp_path / "two.root"), workers=2,
                              report=str(tmp_path / "two.json"))  # fmt: skip
    solo, split = run_job(one), run_job(two)
    assert split.status == solo.status == "ok"
    for name in ("events_read", "events_selected", "bytes_unplanned"):
        assert getattr(split, name) == getattr(solo, name), name
    # the same baskets; the metadata windows differ by which files a process opened before
    assert abs(split.bytes_needed - solo.bytes_needed) <= 0.01 * solo.bytes_needed
    assert split.bytes_read <= 1.05 * split.bytes_needed
    assert [f.path for f in split.files] == inputs
    assert [f.events_read for f in split.files] == [f.events_read for f in solo.files]
    want, got = _columns(tmp_path / "one.root"), _columns(tmp_path / "two.root")
    assert len(got["event"]) == solo.events_selected > 0
    for name in want:  # the same events in the same order: input order kept
        np.testing.assert_array_equal(got[name], want[name])
    assert json.loads((tmp_path / "two.json").read_text())["events_read"] == solo.events_read
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "one.root",
        "thrust.py",
        "two.json",
        "two.root",
    ]


def _start(tmp_path: Path, sample_dir: Path, out_dir: Path):
    plugin = tmp_path / "slow.py"
    plugin.write_text(PLUGIN)
    marker, scratch = tmp_path / "started", tmp_path / "scratch"
    scratch.mkdir()
    inputs = [str(sample_dir / SAMPLES[0])] * 8  # ~40 s of 0.5 s chunks: stopped long before
    cmd = [sys.executable, "-m", "hepstream", "run", str(plugin), *inputs, "-o",
           str(out_dir / "o.root"), "--report", str(out_dir / "r.json"), "--chunk", "64k",
           "--workers", "2", "--no-progress"]  # fmt: skip
    env = {**os.environ, "TMPDIR": str(scratch), "HEPSTREAM_TEST_MARKER": str(marker)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_marker(proc, marker, WAIT_S)
    return proc, scratch


def _workers_of(pid: int) -> list[int]:
    """The worker processes of job ``pid``: forks of its forkserver, named by multiprocessing."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True)
    rows = [line.split(None, 2) for line in out.stdout.splitlines()]
    server = [int(p) for p, parent, _ in rows if int(parent) == pid]
    return [int(p) for p, parent, _ in rows if int(parent) in server]


@pytest.mark.slow
def test_sigterm_to_a_job_with_workers_stops_them_all_and_leaves_no_output(
    tmp_path, sample_dir, out_dir
):
    proc, scratch = _start(tmp_path, sample_dir, out_dir)
    workers = _workers_of(proc.pid)
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM)
    code, err = finish(proc, WAIT_S)
    assert code == 128 + signal.SIGTERM, err
    errors = [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    assert errors == ["hepstream: error: interrupted (SIGTERM)"]
    data = json.loads((out_dir / "r.json").read_text())
    assert (data["status"], data["error"]) == ("failed", "interrupted (SIGTERM)")
    assert [p.name for p in out_dir.iterdir()] == ["r.json"]
    assert list(scratch.iterdir()) == []
    for pid in workers:  # stopped, not orphaned
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        )


@pytest.mark.slow
def test_a_killed_worker_fails_the_job_in_one_line(tmp_path, sample_dir, out_dir):
    proc, scratch = _start(tmp_path, sample_dir, out_dir)
    workers = _workers_of(proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    code, err = finish(proc, WAIT_S)
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    assert len(errors) == 1
    assert "died (signal SIGKILL) before finishing" in errors[0]
    assert "Traceback" not in err
    assert json.loads((out_dir / "r.json").read_text())["status"] == "failed"
    assert [p.name for p in out_dir.iterdir()] == ["r.json"]
    assert list(scratch.iterdir()) == []
