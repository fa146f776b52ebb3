"""The condor engine: the same split as a submit file, checked by htcondor2.Submit.

HTCondor's daemons are not packaged here, so the file is parsed, not run (docs/cloud.md).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import subprocess
import sys
from pathlib import Path

import htcondor2
from dshelp import child_env, parse_run_argv, same_events, same_histograms

from hepstream.cli import main
from hepstream.dataset.record import Dataset


def test_condor_submit_file_carries_every_job_and_parses_back(split_dataset, capsys):
    ds = split_dataset()
    capsys.readouterr()
    assert (
        main(
            [
                "dataset",
                "submit",
                str(ds),
                "--engine",
                "condor",
                "--image",
                "hepstream-test",
                "--retries",
                "3",
                "--jobs",
                "job-00001,job-00003",
            ]
        )
        == 0
    )
    (line,) = capsys.readouterr().out.splitlines()
    command, path = line.split()
    assert command == "condor_submit"
    sub = htcondor2.Submit(Path(path).read_text())
    assert sub["MY.VMType"] == '"hepstream-test"'
    assert sub["max_retries"] == "3"
    assert sub["retry_until"] == "ExitCode == 2 || ExitCode == 3 || ExitCode == 4"
    items = list(sub.itemdata())
    assert [i["name"] for i in items] == ["job-00001", "job-00003"]
    dataset = Dataset.load(ds)
    for item in items:
        argv = shlex.split(item["args"])
        assert argv[0] == "hepstream"
        expected = dataclasses.replace(
            dataset.job(item["name"]).spec, site="$$(HepstreamCloud:local)"
        )
        assert parse_run_argv(argv[1:]) == expected
    assert Dataset.load(ds).engine_of() == {"job-00001": "condor", "job-00003": "condor"}


def test_condor_jobs_run_as_their_submit_file_says_collect_as_one_job(
    split_dataset, reference, capsys, tmp_path
):
    """No HTCondor daemons here: each job's command line is taken from the submit file and
    run as an execute node would (``$$(HepstreamCloud:local)`` is the machine ad's value,
    ``local`` without one); collect then merges events and histograms as one job's."""
    ds = split_dataset("condor")
    capsys.readouterr()
    assert main(["dataset", "submit", str(ds), "--engine", "condor", "--image", "img"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    sub = htcondor2.Submit(Path(line.split()[1]).read_text())
    for item in sub.itemdata():
        argv = shlex.split(item["args"].replace("$$(HepstreamCloud:local)", "local"))
        assert argv[:2] == ["hepstream", "run"]
        subprocess.run(
            [sys.executable, "-m", "hepstream", *argv[1:]],
            env=child_env(), check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    merged = tmp_path / "merged.parquet"
    assert main(["collect", str(ds), "--json", "--merge", str(merged)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(g["engine"], g["ok"]) for g in report["groups"]] == [("condor", 4)]
    assert report["events_add_up"]
    assert report["histograms"]["complete"]
    assert same_events(merged, reference)
    assert same_histograms(ds, reference)


def test_condor_needs_an_image(split_dataset, capsys):
    ds = split_dataset("noimage")
    assert main(["dataset", "submit", str(ds), "--engine", "condor"]) == 2
    assert "--image" in capsys.readouterr().err
