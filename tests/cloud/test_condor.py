"""ClassAd translation (pure) and submit files checked by htcondor2.Submit."""

import htcondor2
import pytest
import typer
from typer.testing import CliRunner

from hepstream.cli import main
from hepstream.cli.cloud import submit
from hepstream.cloud.model import VMSpec
from hepstream.cloud.queues.condor import job_from_ad, workers_from_ads
from hepstream.cloud.submit import submit_text
from hepstream.errors import ConfigError


def test_idle_job_ad_becomes_a_job():
    ad = {
        "ClusterId": 12,
        "ProcId": 3,
        "JobStatus": 1,
        "Owner": "alice",
        "QDate": 1700,
        "VMType": "babar-sl55",
        "VMCPUCores": 2,
        "VMMem": 4096,
        "TargetClouds": "nrc, uvic-a",
    }
    job = job_from_ad(ad)
    assert job.id == "12.3"
    assert job.status == "idle"
    assert job.spec == VMSpec("babar-sl55", 2, 4096, "alice")
    assert job.target_clouds == ("nrc", "uvic-a")
    assert job.submitted_at == 1700.0


def test_running_job_names_its_vm_and_sizes_fall_back_to_requests():
    ad = {
        "ClusterId": 1,
        "ProcId": 0,
        "JobStatus": 2,
        "Owner": '"bob"',
        "VMType": '"img"',
        "RequestCpus": 4,
        "RequestMemory": 1000,
        "RemoteHost": "slot1@hs-ab12cd.cloud.local",
    }
    job = job_from_ad(ad)
    assert job.status == "running"
    assert job.vm_id == "hs-ab12cd"
    assert (job.spec.cpus, job.spec.memory_mb, job.spec.owner) == (4, 1000, "bob")


@pytest.mark.parametrize(
    "ad",
    [
        {"ClusterId": 1, "ProcId": 0, "JobStatus": 1, "Owner": "a"},  # no VMType
        {"ClusterId": 1, "ProcId": 0, "JobStatus": 5, "Owner": "a", "VMType": "i"},  # held
        {"ClusterId": 1, "ProcId": 0, "JobStatus": 4, "Owner": "a", "VMType": "i"},  # done
    ],
)
def test_jobs_needing_no_vm_are_skipped(ad):
    assert job_from_ad(ad) is None


def test_workers_from_startd_ads():
    ads = [{"HepstreamVM": '"hs-1"', "DaemonStartTime": 50}, {"Name": "other"}]
    assert workers_from_ads(ads) == {"hs-1": 50.0}


def test_submit_text_parses_and_carries_vm_attributes():
    text = submit_text(
        "sel.py",
        ["root://h//a.root", "root://h//b.root"],
        "img",
        "out",
        cpus=2,
        memory_mb=4096,
        target_clouds=["nrc", "amazon-ec2"],
        owner="alice",
    )
    sub = htcondor2.Submit(text)
    assert sub["MY.VMType"] == '"img"'
    assert sub["MY.VMCPUCores"] == "2"
    assert sub["MY.VMMem"] == "4096"
    assert sub["MY.TargetClouds"] == '"nrc,amazon-ec2"'
    assert sub["request_memory"] == "4096"
    assert [d["input"] for d in sub.itemdata()] == ["root://h//a.root", "root://h//b.root"]
    assert "hepstream run sel.py $(input)" in sub["arguments"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"inputs": []}, "at least one input"),
        ({"image": 'a"b'}, "quotes"),
        ({"plugin": "my plugin.py"}, "one word"),
        ({"cpus": 0}, "--cpus"),
    ],
)
def test_submit_text_refuses_bad_values(kwargs, match):
    args = {"plugin": "p.py", "inputs": ["x.root"], "image": "img", "output_dir": "out"}
    with pytest.raises(ConfigError, match=match):
        submit_text(**{**args, **kwargs})


def test_submit_command_writes_file_atomically(tmp_path):
    app = typer.Typer()
    app.command()(submit)
    app.command("noop")(lambda: None)
    target = tmp_path / "jobs.sub"
    result = CliRunner().invoke(
        app,
        [
            "submit",
            "p.py",
            "root://h//a.root",
            "--image",
            "img",
            "--target-cloud",
            "nrc",
            "-f",
            str(target),
        ],
    )
    assert result.exit_code == 0, result.output
    assert htcondor2.Submit(target.read_text())["MY.TargetClouds"] == '"nrc"'
    assert [p.name for p in tmp_path.iterdir()] == ["jobs.sub"]
    assert main is not None
