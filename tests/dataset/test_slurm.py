"""The Slurm engine: pure script/state helpers, then a real slurmctld + slurmd + munged."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from dshelp import child_env, kill_when_running, same_events, same_histograms

from hepstream.cli import main
from hepstream.dataset.engines.base import QuietProgress
from hepstream.dataset.engines.slurm import (
    SlurmEngine,
    TaskState,
    array_spec,
    batch_script,
    parse_scontrol,
    should_requeue,
)
from hepstream.dataset.record import Dataset
from hepstream.dataset.split import DatasetJob
from hepstream.jobspec import JobSpec


def test_array_spec_compresses_ranges():
    assert array_spec([0, 1, 2, 3, 7, 9, 10]) == "0-3,7,9-10"
    assert array_spec([5], max_running=2) == "5%2"


def test_batch_script_maps_indices_to_run_commands(tmp_path):
    jobs = tuple(
        DatasetJob(
            f"job-{i:05d}",
            JobSpec(
                "/p.py", (f"/d/{i}.root",), f"/o/{i}.parquet", report=f"/r/{i}.json", site="hpc"
            ),
            10,
        )
        for i in range(3)
    )
    dataset = Dataset(tmp_path, "/p.py", jobs)
    script = batch_script(dataset, [jobs[2]], python="/usr/bin/python3")
    assert "  2) exec /usr/bin/python3 -m hepstream run /p.py /d/2.root -o /o/2.parquet" in script
    assert "0)" not in script
    assert script.startswith("#!/bin/bash\n")
    done = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert done.returncode == 0, done.stderr


def test_parse_scontrol_expands_pending_records():
    text = (
        "JobId=7 ArrayJobId=7 ArrayTaskId=2-4,6%2 JobState=PENDING Restarts=0 ExitCode=0:0\n"
        "JobId=8 ArrayJobId=7 ArrayTaskId=0 JobState=COMPLETED Restarts=0 ExitCode=0:0\n"
        "JobId=9 ArrayJobId=7 ArrayTaskId=1 JobState=FAILED Restarts=1 ExitCode=0:9\n"
    )
    tasks = {t.index: t for t in parse_scontrol(text)}
    assert sorted(tasks) == [0, 1, 2, 3, 4, 6]
    assert tasks[3].state == "PENDING"
    assert (tasks[1].state, tasks[1].signal, tasks[1].restarts, tasks[1].job_id) == (
        "FAILED",
        9,
        1,
        "9",
    )


@pytest.mark.parametrize(
    ("state", "code", "sig", "restarts", "expected"),
    [
        ("FAILED", 0, 9, 0, True),  # killed: retry
        ("FAILED", 3, 0, 0, False),  # input error (missing, damaged): permanent
        ("FAILED", 75, 0, 0, True),  # a server did not answer: may succeed later
        ("FAILED", 4, 0, 0, False),  # plugin error: permanent
        ("FAILED", 2, 0, 0, False),  # config error: permanent
        ("NODE_FAIL", 0, 0, 1, True),
        ("FAILED", 0, 9, 2, False),  # out of retries
        ("CANCELLED", 0, 15, 0, True),  # killed by a signal
        ("CANCELLED", 1, 0, 0, False),
        ("COMPLETED", 0, 0, 0, False),
        ("RUNNING", 0, 0, 0, False),
    ],
)
def test_should_requeue(state, code, sig, restarts, expected):
    assert should_requeue(TaskState(0, state, code, sig, restarts, "1"), retries=2) is expected


@pytest.fixture
def slurm_env(slurm_cluster, monkeypatch):
    for key, value in {**child_env(), "SLURM_CONF": str(slurm_cluster.conf)}.items():
        monkeypatch.setenv(key, value)
    yield slurm_cluster

    end = time.monotonic() + 60  # a job's report is written a moment before it exits
    while True:
        left = subprocess.run(
            ["squeue", "-h"], capture_output=True, text=True, env=slurm_cluster.env, timeout=30
        ).stdout.strip()
        if not left or time.monotonic() > end:
            break
        time.sleep(0.5)
    assert left == "", left  # the test's jobs are all finished


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_dataset_equals_one_run(slurm_env, split_dataset, reference, capsys, tmp_path):
    ds = split_dataset()
    assert main(["dataset", "submit", str(ds), "--engine", "slurm"]) == 0
    merged = tmp_path / "merged.parquet"
    capsys.readouterr()
    assert main(["collect", str(ds), "--json", "--merge", str(merged)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events_add_up"]
    assert report["events_read"] == 24_000
    assert [(g["engine"], g["ok"]) for g in report["groups"]] == [("slurm", 4)]
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)
    (sub,) = Dataset.load(ds).submissions()
    assert sub["engine"] == "slurm"
    assert sub["array_id"]
    assert sorted(p.name for p in (ds / "logs").iterdir()) == [
        f"slurm-{sub['array_id']}_{i}.out" for i in range(4)
    ]


@pytest.mark.slurm
@pytest.mark.dask
@pytest.mark.slow
def test_one_dataset_over_local_dask_and_slurm_merges_as_one_job(
    slurm_env, dask_cluster, split_dataset, reference, capsys
):
    """Jobs of one dataset run on three engines, finishing in their own order: collect's
    histograms and cut flow are, bit for bit, one job's over all inputs."""
    ds = split_dataset("mixed")
    engines = [
        ("job-00000", ["--engine", "local"]),
        ("job-00001", ["--engine", "dask", "--address", dask_cluster.address]),
        ("job-00002,job-00003", ["--engine", "slurm"]),
    ]
    for jobs, engine in engines:
        assert main(["dataset", "submit", str(ds), *engine, "--jobs", jobs]) == 0
    capsys.readouterr()
    assert main(["collect", str(ds), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted((g["engine"], g["ok"]) for g in report["groups"]) == [
        ("dask", 1), ("local", 1), ("slurm", 2),
    ]  # fmt: skip
    assert report["events_add_up"]
    assert report["histograms"]["complete"]
    assert report["histograms"]["jobs_merged"] == 4
    assert same_histograms(ds, reference)


@pytest.mark.slurm
@pytest.mark.slow
def test_killed_slurm_job_is_requeued_with_identical_result(
    slurm_env, split_dataset, reference, capsys, tmp_path
):
    ds = split_dataset("killed")
    dataset = Dataset.load(ds)
    results: list = []
    retried: list[str] = []

    class Watch(QuietProgress):
        def job_retry(self, name, reason):
            retried.append(f"{name}: {reason}")

    engine = SlurmEngine(retries=2, poll_s=0.5, timeout_s=300)
    runner = threading.Thread(
        target=lambda: results.extend(engine.submit(dataset, dataset.jobs, Watch()))
    )
    runner.start()
    try:
        assert kill_when_running("job-00001.parquet") >= 1
    finally:
        runner.join(timeout=300)
    assert not runner.is_alive()
    outcomes = {o.name: o for o in results}
    assert [o.status for o in results] == ["ok"] * 4
    assert outcomes["job-00001"].attempts == 2  # Slurm's Restarts counted the requeue
    assert retried
    assert retried[0].startswith("job-00001: FAILED")
    merged = tmp_path / "merged.parquet"
    assert main(["collect", str(ds), "--merge", str(merged)]) == 0
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)


@pytest.mark.slurm
@pytest.mark.slow
def test_no_wait_submit_then_status_reads_slurm_until_done(slurm_env, split_dataset, capsys):
    ds = split_dataset("nowait")
    assert (
        main(
            [
                "dataset",
                "submit",
                str(ds),
                "--engine",
                "slurm",
                "--no-wait",
                "--jobs",
                "job-00000,job-00001",
            ]
        )
        == 0
    )
    seen: list[dict] = []
    end = time.monotonic() + 180
    while time.monotonic() < end:
        capsys.readouterr()
        assert main(["dataset", "status", str(ds), "--json"]) == 0
        seen.append(json.loads(capsys.readouterr().out))
        if seen[-1]["job-00000"] == seen[-1]["job-00001"] == "ok":
            break
        time.sleep(0.5)
    first = seen[0]
    assert {first["job-00000"], first["job-00001"]} <= {"slurm:pending", "slurm:running", "ok"}
    assert "slurm:" in first["job-00000"] + first["job-00001"]  # Slurm's state, before reports
    assert (first["job-00002"], first["job-00003"]) == ("missing", "missing")  # never submitted
    assert seen[-1]["job-00000"] == seen[-1]["job-00001"] == "ok"
