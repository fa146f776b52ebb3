"""The local engine end to end: split, submit, collect, merge, a removed job resubmitted."""

from __future__ import annotations

import json
import shlex
import threading

import awkward as ak
import pytest
from dshelp import PLUGIN, child_env, kill_when_running, same_events, same_histograms

from hepstream.cli import main
from hepstream.dataset.engines.base import QuietProgress
from hepstream.dataset.engines.local import LocalEngine
from hepstream.dataset.record import Dataset

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _job_path(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])


def _collect(capsys, directory, *extra):
    capsys.readouterr()
    rc = main(["collect", str(directory), *extra])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_local_dataset_equals_one_run_and_a_removed_job_is_resubmitted(
    split_dataset, reference, capsys, tmp_path
):
    ds = split_dataset()
    assert main(["dataset", "submit", str(ds), "--engine", "local", "--concurrency", "2"]) == 0
    merged = tmp_path / "merged.parquet"
    rc, out, _ = _collect(
        capsys, ds, "--json", "--merge", str(merged), "--png", str(tmp_path / "p")
    )
    assert rc == 0
    report = json.loads(out)
    assert report["events_add_up"]
    assert report["events_read"] == report["events_expected"] == 24_000
    (group,) = report["groups"]
    assert (group["engine"], group["jobs"], group["ok"]) == ("local", 4, 4)
    assert group["events_per_s_mean"] > 0
    assert group["cpu_efficiency"] > 0
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)
    assert (tmp_path / "p-sites.png").stat().st_size > 0
    assert (tmp_path / "p-throughput.png").stat().st_size > 0
    for name in ("mass", "thrust", "lead_p", "cutflow"):  # the merged histograms, drawn
        assert (tmp_path / f"p-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["histograms"]["complete"]
    assert report["histograms"]["cutflow"][-1][1] == report["events_selected"]

    assert ak.to_list(ak.from_parquet(ds / "outputs")) == ak.to_list(ak.from_parquet(reference))

    # one job removed by hand: collect names it and prints the command for exactly it
    (ds / "reports" / "job-00002.json").unlink()
    (ds / "outputs" / "job-00002.parquet").unlink()
    rc, out, err = _collect(capsys, ds)
    assert rc == 1
    assert "missing: job-00002" in out
    assert "counts do NOT add up" in out
    # the merge of the other three is kept apart and said to be partial; none passes as whole
    assert "3 of 4 jobs only: NOT the whole dataset" in out
    assert not (ds / "histograms.root").exists()
    assert (ds / "histograms-partial.root").exists()
    (command,) = [
        line.split("resubmit: ", 1)[1] for line in out.splitlines() if "resubmit:" in line
    ]
    argv = shlex.split(command)
    assert argv == [
        "hepstream",
        "dataset",
        "submit",
        str(ds),
        "--engine",
        "local",
        "--jobs",
        "job-00002",
    ]
    assert command in err  # the error line carries it too
    assert main(argv[1:]) == 0
    rc, out, _ = _collect(capsys, ds, "--merge", str(merged))
    assert rc == 0
    assert "counts add up" in out
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)
    assert not (ds / "histograms-partial.root").exists()


def test_status_and_a_permanent_failure_is_not_retried(split_dataset, capsys, tmp_path):
    ds = split_dataset("bad", "--set", "prefetch=1")
    dataset = json.loads((ds / "dataset.json").read_text())
    dataset["jobs"][1]["spec"]["plugin"] = str(tmp_path / "no-such-plugin.py")
    (ds / "dataset.json").write_text(json.dumps(dataset))
    capsys.readouterr()
    assert main(["dataset", "submit", str(ds), "--jobs", "job-00001", "--retries", "3"]) == 1
    err = capsys.readouterr().err
    assert "retried" not in err  # a plugin error fails the same way every time
    assert "1 of 1 jobs failed (job-00001)" in err
    log = (ds / "logs" / "job-00001.local.log").read_text()
    assert log.count("# attempt") == 1
    assert main(["dataset", "status", str(ds), "--json"]) == 0
    states = json.loads(capsys.readouterr().out)
    assert states == {
        "job-00000": "missing",
        "job-00001": "failed",
        "job-00002": "missing",
        "job-00003": "missing",
    }


def test_event_split_jobs_read_each_cluster_once(dataset_files, reference, capsys, tmp_path):
    """Jobs cut inside files on cluster edges: the merged output is identical to one run
    over all inputs (no event read twice, none lost)."""

    ds = tmp_path / "ranged"
    assert (
        main(
            [
                "dataset",
                "split",
                str(PLUGIN),
                *map(str, dataset_files),
                "--dir",
                str(ds),
                "--events-per-job",
                "2500",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 24_000
    assert summary["jobs"] > 4
    assert summary["jobs_with_entry_ranges"] == summary["jobs"]
    assert main(["dataset", "submit", str(ds), "--concurrency", "2"]) == 0
    merged = tmp_path / "merged.parquet"
    assert main(["collect", str(ds), "--merge", str(merged)]) == 0
    assert "counts add up" in capsys.readouterr().out
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)


def test_split_refuses_bad_requests(dataset_files, capsys, tmp_path):
    base = ["dataset", "split", str(PLUGIN), str(dataset_files[0]), "--dir", str(tmp_path / "d")]
    assert main(base) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main([*base, "--files-per-job", "1", "--format", "csv"]) == 2
    assert (
        main(
            [
                "dataset",
                "split",
                str(PLUGIN),
                str(tmp_path / "nope.root"),
                "--dir",
                str(tmp_path / "e"),
                "--files-per-job",
                "1",
            ]
        )
        == 3
    )
    assert "not found" in capsys.readouterr().err
    assert main(["collect", str(tmp_path)]) == 3
    assert "no dataset.json" in capsys.readouterr().err


def test_killed_local_job_is_run_again_with_identical_result(split_dataset, reference, tmp_path):
    dataset = Dataset.load(split_dataset("killed"))
    retried: list[str] = []

    class Watch(QuietProgress):
        def job_retry(self, name, reason):
            retried.append(name)

    results: list = []
    runner = threading.Thread(
        target=lambda: results.extend(
            LocalEngine(2, retries=1).submit(dataset, dataset.jobs, Watch())
        )
    )
    runner.start()
    try:
        assert kill_when_running("job-00002.parquet") >= 1
    finally:
        runner.join(timeout=300)
    assert [o.status for o in results] == ["ok"] * 4
    assert retried == ["job-00002"]
    assert {o.name: o.attempts for o in results}["job-00002"] == 2
    merged = tmp_path / "merged.parquet"
    assert main(["collect", str(dataset.path), "--merge", str(merged)]) == 0
    assert same_events(merged, reference)
    assert same_histograms(dataset.path, reference)
