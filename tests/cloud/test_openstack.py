"""The OpenStack driver against the loopback Nova look-alike, alone and under the shim."""

from __future__ import annotations

import uuid

import pytest

from hepstream.cloud.drivers.base import BootRequest, CloudAPIError, make_tags
from hepstream.cloud.drivers.fake import FakeAgents
from hepstream.cloud.drivers.openstack import OpenStackDriver
from hepstream.cloud.model import VMSpec
from hepstream.cloud.policy import Policy, ShimConfig
from hepstream.cloud.queues.local import LocalQueue
from hepstream.cloud.shim import Shim
from hepstream.cloud.state import StateStore

pytestmark = pytest.mark.cloud
SPEC = VMSpec("img", 1, 2048, "alice")


def test_boot_list_destroy_and_password_auth(fake_nova, nova_cloud):
    shim_id = f"o-{uuid.uuid4().hex[:6]}"
    driver = OpenStackDriver(nova_cloud, shim_id)
    tags = make_tags(shim_id, f"{shim_id}-1", SPEC, "job-1", 5.0)
    cloud_id = driver.boot(BootRequest(f"{shim_id}-1", SPEC, tags))
    (vm,) = driver.list()
    assert (vm.cloud_id, vm.state, vm.name) == (cloud_id, "running", f"{shim_id}-1")
    assert fake_nova.servers[cloud_id]["image"]["id"] == "glance-img-1"
    auth = fake_nova.auth_bodies[-1]["auth"]["identity"]["password"]["user"]
    assert auth["password"] == "os-secret-value"
    assert "os-secret" not in repr(driver) + repr(nova_cloud)
    driver.destroy(cloud_id)
    assert driver.list() == []
    driver.destroy(cloud_id)  # idempotent


def test_api_fault_is_cloud_api_error(fake_nova, nova_cloud):
    driver = OpenStackDriver(nova_cloud, "x")
    driver.list()  # authenticate first
    fake_nova.fail_next = 1
    with pytest.raises(CloudAPIError, match="Nova list failed"):
        driver.list()


def test_shim_replaces_error_servers_and_survives_api_faults(
    tmp_path, clock, fake_nova, nova_cloud
):
    shim_id = f"s-{uuid.uuid4().hex[:6]}"
    cfg = ShimConfig(
        policy=Policy(idle_keepalive_s=30, max_starting=3),
        clouds=(nova_cloud,),
        shim_id=shim_id,
        state_path=tmp_path / "state.sqlite",
    )
    driver = OpenStackDriver(nova_cloud, shim_id)
    queue = LocalQueue(cfg.state_path, clock=clock)
    shim = Shim(cfg, {"os": driver}, queue, StateStore(cfg.state_path), clock=clock)
    for _ in range(5):
        queue.add(SPEC, {})
    agents = FakeAgents(queue, {"os": driver})
    shim.step()
    # the first boots land in ERROR (a broken hypervisor), then the API flakes
    for server in list(fake_nova.servers.values()):
        if server["metadata"].get("hepstream-shim") == shim_id:
            server["status"] = "ERROR"
    fake_nova.fail_next = 2
    for _ in range(100):
        shim.step()
        ours = [
            v for v in fake_nova.servers.values() if v["metadata"].get("hepstream-shim") == shim_id
        ]
        assert len(ours) <= nova_cloud.quota
        agents.step()
        clock.advance(20)
        if shim.idle():
            break
    assert queue.counts() == {"done": 5}
    assert driver.list() == []
    assert shim.state.all_outcomes()["failed"] == 3
