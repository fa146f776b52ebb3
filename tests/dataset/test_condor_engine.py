"""The condor engine: the same split as a submit file, checked by htcondor2.Submit.

HTCondor's daemons are not packaged here, so the file is parsed, not run (docs/cloud.md).
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import htcondor2
from dshelp import parse_run_argv

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
    assert sub["retry_until"] == "ExitCode == 2 || ExitCode == 4"
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


def test_condor_needs_an_image(split_dataset, capsys):
    ds = split_dataset("noimage")
    assert main(["dataset", "submit", str(ds), "--engine", "condor"]) == 2
    assert "--image" in capsys.readouterr().err
