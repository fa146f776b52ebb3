"""The EC2 driver against moto_server, and a shim killed with SIGKILL mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from hepstream.cloud.drivers.base import TAG_SHIM, TAG_VM, BootRequest, CloudAPIError, make_tags
from hepstream.cloud.drivers.ec2 import EC2Driver
from hepstream.cloud.drivers.fake import FakeAgents
from hepstream.cloud.model import Cloud, VMSpec
from hepstream.cloud.policy import load_config
from hepstream.cloud.queues.local import LocalQueue
from hepstream.cloud.state import StateStore
from hepstream.errors import ConfigError

pytestmark = pytest.mark.cloud

SPEC = VMSpec("img", 1, 2048, "alice")


def _cloud(moto_url, aws_env, quota=4):
    options = {"endpoint": moto_url, "images": {"img": "ami-12345678"}, **aws_env}
    return Cloud("aws", quota, driver="ec2", options=options)


def _all_instances(driver: EC2Driver, shim_id: str) -> list:
    """Every instance ever created for ``shim_id``, terminated ones too."""
    return driver._driver.list_nodes(ex_filters={f"tag:{TAG_SHIM}": shim_id})


def test_boot_list_destroy_with_tags(moto_url, aws_env):
    shim_id = f"t-{uuid.uuid4().hex[:6]}"
    driver = EC2Driver(_cloud(moto_url, aws_env), shim_id)
    tags = make_tags(shim_id, f"{shim_id}-vm1", SPEC, "job-1", 123.0)
    cloud_id = driver.boot(BootRequest(f"{shim_id}-vm1", SPEC, tags))
    (vm,) = driver.list()
    assert vm.cloud_id == cloud_id
    assert vm.state == "running"
    assert vm.name == f"{shim_id}-vm1"
    assert vm.tags["hepstream-job"] == "job-1"
    driver.destroy(cloud_id)
    assert driver.list() == []
    driver.destroy(cloud_id)  # already gone: not an error
    assert "secret" not in repr(driver)


def test_unknown_image_is_a_config_error(moto_url, aws_env):
    driver = EC2Driver(_cloud(moto_url, aws_env), "x")
    with pytest.raises(ConfigError, match="no AMI for image 'nope'"):
        driver.boot(BootRequest("x-1", VMSpec("nope"), {}))


def test_unreachable_endpoint_is_a_cloud_api_error(aws_env, unused_port):
    cloud = _cloud(f"http://127.0.0.1:{unused_port}", aws_env)
    with pytest.raises(CloudAPIError, match="EC2 list failed"):
        EC2Driver(cloud, "x").list()


def _write_config(tmp_path, moto_url, shim_id, quota):
    path = tmp_path / "cloud.toml"
    path.write_text(
        f"""
[shim]
id = "{shim_id}"
state = "state.sqlite"

[policy]
idle_keepalive_s = 1.0
max_starting = 3
poll_interval_s = 0.2

[[cloud]]
name = "aws"
quota = {quota}
driver = "ec2"
[cloud.options]
endpoint = "{moto_url}"
access_key_env = "HS_TEST_AWS_KEY"
secret_key_env = "HS_TEST_AWS_SECRET"
[cloud.options.images]
img = "ami-12345678"
"""
    )
    return path


def _shim(config_path, log, *extra):
    with log.open("a") as err:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hepstream",
                "cloud",
                "run",
                "-c",
                str(config_path),
                "--interval",
                "0.2",
                "-v",
                *extra,
            ],
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_adopts_and_leaks_nothing(tmp_path, moto_url, aws_env):
    shim_id = f"r-{uuid.uuid4().hex[:6]}"
    quota = 3
    config_path = _write_config(tmp_path, moto_url, shim_id, quota)
    cfg = load_config(config_path)
    queue = LocalQueue(cfg.state_path)
    for _ in range(9):
        queue.add(SPEC, {"plugin": "p.py"})
    driver = EC2Driver(cfg.clouds[0], shim_id)
    agents = FakeAgents(queue, {"aws": driver})
    peak = 0

    log = tmp_path / "shim.log"
    first = _shim(config_path, log)
    # let it boot VMs and finish a few jobs, then kill it without warning
    deadline = time.monotonic() + 60
    while queue.counts().get("done", 0) < 2 or not driver.list():
        assert time.monotonic() < deadline, "shim made no progress"
        assert first.poll() is None, log.read_text()
        peak = max(peak, len(driver.list()))
        agents.step()
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    alive_at_kill = {vm.name for vm in driver.list()}
    assert alive_at_kill, "kill should happen while VMs run"

    second = _shim(config_path, log, "--until-idle")
    deadline = time.monotonic() + 90
    while second.poll() is None:
        assert time.monotonic() < deadline, "restarted shim did not finish"
        listed = driver.list()
        peak = max(peak, len(listed))
        agents.step()
        time.sleep(0.1)
    assert second.returncode == 0, log.read_text()

    assert queue.counts() == {"done": 9}
    assert driver.list() == []  # no orphan left running
    assert peak <= quota
    instances = _all_instances(driver, shim_id)
    names = [n.extra["tags"][TAG_VM] for n in instances]
    assert len(names) == len(set(names)), "a VM name was booted twice"
    state = StateStore(cfg.state_path)
    assert state.live() == []
    # every VM alive at the kill was adopted and finished by the second shim
    for name in alive_at_kill:
        assert state.get(name) is not None
    assert sum(agents.ran.values()) == 9
