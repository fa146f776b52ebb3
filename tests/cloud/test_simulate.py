"""The simulator drives the real planner; quotas hold and every job ends."""

import json

import pytest

from hepstream.cli import main
from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import Policy
from hepstream.cloud.simulate import SimCloud, paper_preset, plot, simulate


def test_paper_preset_runs_all_jobs_within_quota():
    result = simulate(paper_preset(), 1000, seed=3)
    s = result.summary
    assert s["jobs_done"] + s["jobs_failed"] == 1000
    assert s["jobs_unfinished"] == 0
    assert s["vms_left_running"] == 0
    for cloud, quota in s["quota"].items():
        assert 0 < s["max_vms"][cloud] <= quota
    assert s["vms_replaced"] > 0  # the preset has error and silent boots
    assert max(
        r + st + e for r, st, e in zip(result.running, result.starting, result.error, strict=True)
    ) <= sum(s["quota"].values())


def test_black_hole_cloud_gets_few_boots():
    clouds = [
        SimCloud(Cloud("hole", 20, priority=5), error_rate=1.0),
        SimCloud(Cloud("good", 10)),
    ]
    s = simulate(clouds, 200, policy=Policy(backoff_s=3600.0), job_events=1e5).summary
    assert s["jobs_done"] == 200
    # black-hole protection: the hole got some boots, far fewer than jobs
    assert s["vms_replaced"] < 60
    assert s["max_vms"]["hole"] <= 20


def test_cli_simulate_json_and_png(tmp_path, capsys):
    png = tmp_path / "vms.png"
    code = main(
        ["cloud", "simulate", "--preset", "paper", "--jobs", "1000", "--json", "--png", str(png)]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    for key in (
        "jobs_done",
        "jobs_failed",
        "quota",
        "max_vms",
        "vms_left_running",
        "vms_replaced",
        "simulated_hours",
    ):
        assert key in data
    assert data["quota"] == {"nrc": 30, "uvic-a": 20, "uvic-b": 40, "amazon-ec2": 20}
    assert all(data["max_vms"][c] <= q for c, q in data["quota"].items())
    assert data["jobs_done"] + data["jobs_failed"] == 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_preset_is_a_config_error(capsys):
    assert main(["cloud", "simulate", "--preset", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_plot_writes_png(tmp_path):
    result = simulate(paper_preset(), 50)
    plot(result, str(tmp_path / "f.png"))
    assert (tmp_path / "f.png").stat().st_size > 1000


@pytest.mark.parametrize("jobs", [0, 1])
def test_tiny_runs_end(jobs):
    s = simulate(paper_preset(), jobs).summary
    assert s["jobs_done"] == jobs
    assert s["vms_left_running"] == 0
