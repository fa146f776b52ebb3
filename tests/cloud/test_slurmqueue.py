"""The Slurm queue adapter: squeue/scontrol text to Jobs, then a real slurmctld."""

from __future__ import annotations

import subprocess

import pytest

from hepstream.cloud.drivers.fake import FakeDriver
from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import Policy, ShimConfig
from hepstream.cloud.queues.slurm import (
    SlurmQueue,
    job_from_squeue,
    parse_comment,
    workers_from_scontrol,
)
from hepstream.cloud.shim import Shim
from hepstream.cloud.state import StateStore


def test_comment_names_the_image_and_clouds():
    assert parse_comment("hepstream:image=babar;clouds=nrc+ec2") == {
        "image": "babar",
        "clouds": "nrc+ec2",
    }
    assert parse_comment("some other comment") == {}


def test_squeue_lines_become_jobs():
    idle = job_from_squeue(
        "12|PENDING|alice|2026-12-01T08:00:00|(null)|hepstream:image=img;clouds=nrc|2|4G"
    )
    assert idle.id == "12"
    assert idle.status == "idle"
    assert (idle.spec.image, idle.spec.cpus, idle.spec.memory_mb, idle.spec.owner) == (
        "img",
        2,
        4096,
        "alice",
    )
    assert idle.target_clouds == ("nrc",)
    assert idle.submitted_at > 0
    running = job_from_squeue(
        "13_1|RUNNING|bob|2026-12-01T08:00:00|t-abc123|hepstream:image=img|1|1000M"
    )
    assert (running.status, running.vm_id, running.spec.memory_mb) == ("running", "t-abc123", 1000)
    assert job_from_squeue("14|PENDING|bob|2026-12-01T08:00:00|(null)|(null)|1|1000M") is None
    assert job_from_squeue("15|COMPLETED|bob|x|n|hepstream:image=img|1|1000M") is None
    assert job_from_squeue("garbage") is None


def test_scontrol_nodes_are_workers():
    text = (
        "NodeName=t-abc State=IDLE SlurmdStartTime=2026-12-01T08:00:00 BootTime=None\n"
        "NodeName=t-old State=DOWN+DRAIN SlurmdStartTime=2026-12-01T07:00:00\n"
    )
    workers = workers_from_scontrol(text)
    assert list(workers) == ["t-abc"]
    assert workers["t-abc"] > 0


@pytest.mark.slurm
@pytest.mark.slow
def test_pending_slurm_jobs_make_the_real_shim_boot(slurm_cluster, tmp_path):
    env = slurm_cluster.env

    def tool(*argv):
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, check=True, timeout=30
        ).stdout

    # No node may start them: they stay pending, as jobs waiting for a VM do
    tool("scontrol", "update", "PartitionName=debug", "State=DOWN")
    ids = []
    try:
        for comment in (
            "hepstream:image=img;clouds=nrc",
            "hepstream:image=img;clouds=nrc",
            "plain job",
        ):
            ids.append(
                tool(
                    "sbatch",
                    "--parsable",
                    f"--comment={comment}",
                    "-c",
                    "1",
                    "--mem=1000",
                    "--wrap",
                    "true",
                ).strip()
            )
        queue = SlurmQueue(env)
        jobs = queue.pending()
        assert sorted(j.id for j in jobs) == sorted(ids[:2])
        assert all(
            j.status == "idle" and j.spec.image == "img" and j.spec.memory_mb == 1000 for j in jobs
        )
        assert all(j.spec.owner == "root" and j.target_clouds == ("nrc",) for j in jobs)
        assert slurm_cluster.host in queue.workers()

        clouds = (Cloud("nrc", quota=5, priority=1), Cloud("ec2", quota=5, priority=2))
        cfg = ShimConfig(
            policy=Policy(max_starting=5),
            clouds=clouds,
            shim_id="t",
            state_path=tmp_path / "s.sqlite",
            queue="slurm",
        )
        drivers = {c.name: FakeDriver(c.name) for c in clouds}
        shim = Shim(cfg, drivers, queue, StateStore(cfg.state_path))
        shim.step()
        assert drivers["nrc"].boots == 2  # one VM per waiting job, on the cloud they allow
        assert drivers["ec2"].boots == 0
    finally:
        subprocess.run(["scancel", *ids], env=env, capture_output=True, timeout=30, check=False)
        tool("scontrol", "update", "PartitionName=debug", "State=UP")
