"""The shim edge with in-memory clouds: happy path, faults, polls that fail."""

from __future__ import annotations

import pytest

from hepstream.cloud.drivers.base import BootRequest, make_tags
from hepstream.cloud.drivers.fake import FakeAgents, FakeDriver
from hepstream.cloud.model import Cloud, VMSpec
from hepstream.cloud.policy import Policy, ShimConfig
from hepstream.cloud.queues.local import LocalQueue
from hepstream.cloud.shim import Shim
from hepstream.cloud.state import StateStore

SPEC = VMSpec("img", 1, 2048, "alice")


def make(tmp_path, clock, clouds, policy=None, delays=None):
    cfg = ShimConfig(
        policy=policy or Policy(idle_keepalive_s=60, boot_timeout_s=300, max_starting=2),
        clouds=tuple(clouds),
        shim_id="t",
        state_path=tmp_path / "s.sqlite",
    )
    drivers = {
        c.name: FakeDriver(c.name, boot_delay_s=(delays or {}).get(c.name, 20), clock=clock)
        for c in clouds
    }
    queue = LocalQueue(cfg.state_path, clock=clock)
    shim = Shim(cfg, drivers, queue, StateStore(cfg.state_path), clock=clock)
    return shim, drivers, queue


def drive(shim, drivers, queue, clock, agents, rounds=400, dt=10.0):
    quotas = {c.name: c.quota for c in shim.config.clouds}
    for _ in range(rounds):
        shim.step()
        for name, d in drivers.items():
            assert len(d.vms) <= quotas[name], f"quota of {name} exceeded"
        agents.step()
        clock.advance(dt)
        if shim.idle():
            return
    raise AssertionError(f"not idle after {rounds} rounds: {queue.counts()}")


def test_all_jobs_run_and_no_vm_is_left(tmp_path, clock):
    clouds = [Cloud("a", 2, priority=1), Cloud("b", 3)]
    shim, drivers, queue = make(tmp_path, clock, clouds)
    for _ in range(12):
        queue.add(SPEC, {"plugin": "p.py"})
    agents = FakeAgents(queue, drivers, {"a": 100, "b": 300})
    drive(shim, drivers, queue, clock, agents)
    assert queue.counts() == {"done": 12}
    assert all(not d.vms for d in drivers.values())
    assert sum(agents.ran.values()) == 12
    # VMs were reused for later jobs: fewer boots than jobs
    assert sum(d.boots for d in drivers.values()) < 12


def test_faults_api_errors_error_state_and_silent_vms(tmp_path, clock):
    clouds = [Cloud("a", 3), Cloud("b", 3)]
    shim, drivers, queue = make(tmp_path, clock, clouds)
    drivers["a"].fail_next_boots = 2  # API refuses boots
    drivers["a"].error_next_boots = 2  # VMs go into error state
    drivers["b"].silent_next_boots = 2  # VMs never register
    drivers["b"].api_failures = 3  # list/boot/destroy fail for a while
    for _ in range(10):
        queue.add(SPEC, {})
    agents = FakeAgents(queue, drivers)
    drive(shim, drivers, queue, clock, agents, rounds=600)
    assert queue.counts() == {"done": 10}
    assert all(not d.vms for d in drivers.values())
    outcomes = shim.state.all_outcomes()
    assert outcomes["failed"] >= 6  # 2 API refusals + 2 error + 2 silent


def test_failed_poll_never_forgets_or_destroys(tmp_path, clock):
    clouds = [Cloud("a", 3)]
    shim, drivers, queue = make(tmp_path, clock, clouds)
    for _ in range(2):
        queue.add(SPEC, {})
    shim.step()
    booted = set(drivers["a"].vms)
    assert len(booted) == 2
    drivers["a"].api_failures = 10**6
    clock.advance(10_000)  # far past boot timeout and missing grace
    actions = shim.step()
    assert any("last poll failed" in getattr(a, "reason", "") for a in actions)
    assert len(shim.state.live()) == 2
    assert set(drivers["a"].vms) == booted
    drivers["a"].api_failures = 0
    agents = FakeAgents(queue, drivers)
    drive(shim, drivers, queue, clock, agents)
    assert queue.counts() == {"done": 2}


def test_vm_vanishing_requeues_its_job(tmp_path, clock):
    clouds = [Cloud("a", 1)]
    shim, drivers, queue = make(tmp_path, clock, clouds)
    job = queue.add(SPEC, {})
    shim.step()
    clock.advance(30)
    (cloud_id,) = drivers["a"].vms
    name = drivers["a"].vms[cloud_id].request.name
    queue.register_worker(name)
    assert queue.claim(name, SPEC).job.id == job
    drivers["a"].vms.clear()  # the cloud lost it
    clock.advance(shim.policy.missing_grace_s + 1)
    shim.step()
    queued = queue.get(job)
    assert queued.job.status == "idle"
    assert queued.attempts == 1


def test_jobs_fail_after_retries(tmp_path, clock):
    clouds = [Cloud("a", 1)]
    policy = Policy(job_retries=1, boot_timeout_s=100, backoff_min_boots=100)
    shim, drivers, queue = make(tmp_path, clock, clouds, policy=policy)
    job = queue.add(SPEC, {})
    drivers["a"].error_rate = 1.0
    for _ in range(200):
        shim.step()
        # the agent grabs the job as soon as the VM exists, then the VM errors
        for vm in drivers["a"].vms.values():
            queue.claim(vm.request.name, SPEC)
        clock.advance(30)
        if shim.idle():
            break
    queued = queue.get(job)
    assert queued.job.status == "failed"
    assert "gave up after 2 VMs" in queued.error
    assert not drivers["a"].vms


def test_workers_only_get_jobs_of_their_owner(tmp_path):
    queue = LocalQueue(tmp_path / "q.sqlite")
    queue.add(VMSpec("img", 1, 2048, "bob"), {})
    assert queue.claim("vm-alice", SPEC) is None
    alice = queue.add(SPEC, {})
    assert queue.claim("vm-alice", SPEC).job.id == alice


@pytest.mark.parametrize("report", [None, {"status": "failed", "error": "boom"}])
def test_finish_without_ok_report_fails_the_job(tmp_path, report):
    queue = LocalQueue(tmp_path / "q.sqlite")
    job = queue.add(SPEC, {})
    assert queue.finish(job, report) == "failed"
    assert queue.get(job).error in ("boom", "job left no report")


def test_tagged_vm_without_a_row_is_adopted_not_leaked(tmp_path, clock):
    """A shim killed between the boot call and its state write finds the VM by tags."""

    clouds = [Cloud("a", 2)]
    shim, drivers, queue = make(tmp_path, clock, clouds)
    tags = make_tags("t", "t-lost", SPEC, "job-x", clock())
    drivers["a"].boot(BootRequest("t-lost", SPEC, tags))
    foreign = make_tags("other-shim", "o-1", SPEC, "job-y", clock())
    drivers["a"].boot(BootRequest("o-1", SPEC, foreign))
    shim.step()
    assert [r.name for r in shim.state.live()] == ["t-lost"]
    clock.advance(shim.policy.idle_keepalive_s + 100)
    for _ in range(3):
        FakeAgents(queue, drivers).step()
        shim.step()
        clock.advance(shim.policy.idle_keepalive_s + 1)
    names = {vm.request.name for vm in drivers["a"].vms.values()}
    assert names == {"o-1"}  # ours retired when idle; another shim's VM untouched


# -- a cloud's site cache reaches the jobs booted on it, whatever the driver ------------------


class _BindingDriver(FakeDriver):
    """An in-memory cloud whose VMs get their job at boot (as the local QEMU driver's do)."""

    binds_job = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.jobs: list[dict] = []

    def boot(self, request: BootRequest) -> str:
        self.jobs.append(request.job)
        return super().boot(request)


def test_a_clouds_site_cache_goes_with_the_jobs_booted_there(tmp_path, clock):
    from hepstream.cloud.policy import cloud_from_table
    from hepstream.errors import ConfigError
    from hepstream.jobspec import ShippedJob

    cached = cloud_from_table({"name": "uvic", "quota": 2, "site_cache": "root://xc.uvic:1094/"})
    assert cached.site_cache == "root://xc.uvic:1094"
    plain = cloud_from_table({"name": "nrc", "quota": 2})
    assert plain.site_cache is None
    with pytest.raises(ConfigError, match="cloud 'x' site_cache='xc:1094'"):
        cloud_from_table({"name": "x", "quota": 1, "site_cache": "xc:1094"})

    cfg = ShimConfig(
        policy=Policy(max_starting=4),
        clouds=(cached, plain),
        shim_id="t",
        state_path=tmp_path / "s.sqlite",
    )
    drivers = {c.name: _BindingDriver(c.name, clock=clock) for c in cfg.clouds}
    queue = LocalQueue(cfg.state_path, clock=clock)
    shim = Shim(cfg, drivers, queue, StateStore(cfg.state_path), clock=clock)
    job = {"plugin": "p.py", "inputs": ["root://central:1094//data/a.root"], "output": "o.parquet"}
    own = {**job, "stream": {"site_cache": "root://mine:1094"}}
    queue.add(SPEC, job, target_clouds=["uvic"])
    queue.add(SPEC, own, target_clouds=["uvic"])
    queue.add(SPEC, job, target_clouds=["nrc"])
    shim.step()

    def spec(job: dict):
        return ShippedJob.from_mapping({k: v for k, v in job.items() if k != "job_id"}).spec

    at_uvic = [spec(j) for j in drivers["uvic"].jobs]
    assert sorted(s.stream.site_cache for s in at_uvic) == [
        "root://mine:1094",  # the job named its own cache: kept
        "root://xc.uvic:1094",
    ]
    assert {s.site for s in at_uvic} == {"uvic"}
    (at_nrc,) = [spec(j) for j in drivers["nrc"].jobs]
    assert (at_nrc.site, at_nrc.stream.site_cache) == ("nrc", None)
