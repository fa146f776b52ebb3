"""The Dask engine on a real scheduler and worker processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from dshelp import child_env, same_events, same_histograms

from hepstream.cli import main
from hepstream.dataset.engines.base import QuietProgress
from hepstream.dataset.engines.dask import DaskEngine
from hepstream.dataset.record import Dataset

pytestmark = [pytest.mark.dask, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _job_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])


def test_dask_dataset_equals_one_run(dask_cluster, split_dataset, reference, capsys, tmp_path):
    ds = split_dataset()
    assert (
        main(["dataset", "submit", str(ds), "--engine", "dask", "--address", dask_cluster.address])
        == 0
    )
    merged = tmp_path / "merged.parquet"
    capsys.readouterr()
    assert main(["collect", str(ds), "--json", "--merge", str(merged)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events_add_up"]
    assert report["events_read"] == 24_000
    assert [(g["engine"], g["ok"]) for g in report["groups"]] == [("dask", 4)]
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)


def test_killed_dask_worker_is_retried_with_identical_result(
    dask_cluster, split_dataset, reference, tmp_path
):
    from distributed import Client

    ds = split_dataset("killed")
    dataset = Dataset.load(ds)
    results: list = []
    runner = threading.Thread(
        target=lambda: results.extend(
            DaskEngine(dask_cluster.address).submit(dataset, dataset.jobs, QuietProgress())
        )
    )
    killed = None
    with Client(dask_cluster.address, set_as_default=False) as client:
        pids = client.run(os.getpid)  # worker address -> pid
        runner.start()
        try:
            end = time.monotonic() + 120
            while killed is None and time.monotonic() < end:
                busy = [w for w, keys in client.processing().items() if keys]
                if busy:
                    time.sleep(0.5)  # the task is running in that worker now
                    killed = busy[0]
                    os.kill(pids[killed], signal.SIGKILL)
                time.sleep(0.05)
        finally:
            runner.join(timeout=300)
        assert killed is not None
        assert killed not in client.scheduler_info()["workers"]  # the scheduler saw it die
    assert not runner.is_alive()
    assert [o.status for o in results] == ["ok"] * 4
    merged = tmp_path / "merged.parquet"
    assert main(["collect", str(ds), "--merge", str(merged)]) == 0
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)


def test_unreachable_scheduler_is_a_config_error(split_dataset, capsys):
    ds = split_dataset("nowhere")
    code = main(
        ["dataset", "submit", str(ds), "--engine", "dask", "--address", "tcp://127.0.0.1:9"]
    )
    assert code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
