"""A discrete-event simulation of clouds, VMs and jobs driven by the real :func:`plan`.

The shim polls every ``policy.poll_interval_s``; the simulator calls ``plan`` only on poll
ticks where something happened (a VM came up, a job ended, a timer ran out), so thousands
of jobs over days of simulated time take seconds.
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import random
import tempfile
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepstream.cloud.model import VM, Boot, Cloud, Job, Replace, Retire, SiteStats, VMSpec
from hepstream.cloud.plan import plan
from hepstream.cloud.policy import Policy
from hepstream.cloud.sitestats import BootOutcome, site_stats
from hepstream.errors import ConfigError


@dataclass(frozen=True)
class SimCloud:
    """A simulated cloud: the config the shim sees plus how it behaves."""

    cloud: Cloud
    boot_s: float = 300.0  # boot time of one VM with a local image
    transfer_s: float = 0.0  # extra boot time per VM already starting (shared image link)
    error_rate: float = 0.0  # share of boots that end in error state
    silent_rate: float = 0.0  # share of boots that never register
    events_per_s: float = 110.0  # per job, the paper's Tau1N-data rate
    kb_per_s: float = 440.0


def paper_preset() -> list[SimCloud]:
    """The paper's four clouds (30 + 20 + 40 + 20 slots).

    NRC and EC2 hold the image locally and boot fast; the UVIC clouds pull ~16 GB images
    from NRC over a shared link (60 VMs took ~5 h), and UVIC-b serves the data and ran
    its jobs slowest; UVIC-a ran ~5 % faster than NRC and EC2.
    """
    return [
        SimCloud(Cloud("nrc", 30, priority=1), 300, 0, 0.03, 0.0, 110, 440),
        SimCloud(Cloud("uvic-a", 20, priority=1), 300, 600, 0.05, 0.01, 115.5, 462),
        SimCloud(Cloud("uvic-b", 40, priority=1), 300, 600, 0.05, 0.01, 100, 400),
        SimCloud(Cloud("amazon-ec2", 20, priority=0), 240, 0, 0.02, 0.0, 110, 440),
    ]


PRESETS = {"paper": paper_preset}


@dataclass
class _SimVM:
    id: str
    cloud: str
    spec: VMSpec
    job_id: str
    booted_at: float
    fate: str
    state: str = "starting"
    registered_at: float | None = None
    job: str | None = None
    idle_since: float | None = None


@dataclass
class SimResult:
    """Summary numbers plus the time series behind the figure."""

    summary: dict[str, Any]
    times_h: list[float] = field(default_factory=list)
    starting: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    error: list[int] = field(default_factory=list)


def simulate(
    clouds: list[SimCloud],
    jobs: int,
    policy: Policy | None = None,
    job_events: float = 4.75e6,
    image: str = "babar-sl55",
    seed: int = 1,
    max_hours: float = 24 * 60,
) -> SimResult:
    """Run ``jobs`` identical jobs through the simulated clouds with the real planner.

    ``job_events``: events per job (the paper's ~12 h at 110 events/s).
    """
    if jobs < 0:
        raise ConfigError("--jobs must be >= 0")
    policy = policy or Policy()
    rng = random.Random(seed)
    behave = {c.cloud.name: c for c in clouds}
    configs = [c.cloud for c in clouds]
    spec = VMSpec(image=image, cpus=1, memory_mb=2048, owner="analyst")
    idle: deque[str] = deque(f"job-{i:05d}" for i in range(jobs))
    running: dict[str, str] = {}  # job -> vm
    attempts: Counter[str] = Counter()
    vms: dict[str, _SimVM] = {}
    events: list[tuple[float, int, str, str]] = []  # (time, seq, kind, id)
    seq = itertools.count()
    reports: deque[tuple[str, dict[str, Any]]] = deque(maxlen=policy.report_window * 8)
    outcomes: list[BootOutcome] = []
    done = failed = replaced = boots = plan_calls = 0
    max_vms: Counter[str] = Counter()
    series = SimResult(summary={})
    vm_ids = itertools.count(1)
    tick = policy.poll_interval_s
    now = 0.0
    dirty = True  # something changed since the last plan

    def at(t: float, kind: str, ident: str) -> None:
        heapq.heappush(events, (t, next(seq), kind, ident))

    def take_job(vm: _SimVM) -> None:
        if not idle:
            if vm.idle_since is None:
                vm.idle_since = now
                at(now + policy.idle_keepalive_s + 1e-6, "timer", vm.id)
            return
        job = idle.popleft()
        running[job] = vm.id
        vm.job, vm.idle_since = job, None
        site = behave[vm.cloud]
        eps = site.events_per_s * rng.uniform(0.9, 1.1)
        at(now + job_events / eps, "job_end", vm.id)
        vm_kbps = site.kb_per_s * eps / site.events_per_s
        reports.appendleft(
            (image, {"status": "ok", "site": vm.cloud, "events_per_s": eps, "kb_per_s": vm_kbps})
        )

    def fail_job_of(vm: _SimVM) -> None:
        nonlocal failed
        if vm.job is None:
            return
        running.pop(vm.job, None)
        attempts[vm.job] += 1
        if attempts[vm.job] > policy.job_retries:
            failed += 1
        else:
            idle.appendleft(vm.job)
        vm.job = None

    while now <= max_hours * 3600:
        # apply every event up to now
        while events and events[0][0] <= now:
            _, _, kind, ident = heapq.heappop(events)
            vm = vms.get(ident)
            dirty = True
            if vm is None:
                continue
            if kind == "ready":
                if vm.fate == "error":
                    vm.state = "error"
                elif vm.fate == "ok":
                    vm.state, vm.registered_at = "running", now
                    outcomes.append(BootOutcome(image, vm.cloud, now, True))
                    take_job(vm)
            elif kind == "job_end" and vm.job is not None:
                running.pop(vm.job, None)
                done += 1
                vm.job = None
                take_job(vm)
        if dirty:
            dirty = False
            plan_calls += 1
            capacity = sum(c.quota for c in configs) + len(vms)
            queue = [Job(j, spec, "running", vm_id=v) for j, v in running.items()] + [
                Job(j, spec, "idle", submitted_at=0.0) for j in itertools.islice(idle, capacity)
            ]
            view = [
                VM(
                    v.id,
                    v.cloud,
                    v.spec,
                    v.job_id,
                    v.state,  # type: ignore[arg-type]
                    v.booted_at,
                    v.registered_at,
                    busy=v.job is not None,
                    idle_since=v.idle_since,
                )
                for v in vms.values()
            ]
            stats: list[SiteStats] = site_stats(reports, outcomes, now, policy)
            for action in plan(queue, view, configs, stats, now, policy):
                if isinstance(action, Retire | Replace):
                    vm = vms.pop(action.vm_id)
                    if isinstance(action, Replace):
                        replaced += 1
                        outcomes.append(BootOutcome(image, vm.cloud, now, False))
                        at(now + policy.backoff_s + 1e-6, "timer", "")
                    fail_job_of(vm)
                    dirty = True
                elif isinstance(action, Boot):
                    boots += 1
                    site = behave[action.cloud]
                    busy_link = sum(
                        1 for v in vms.values() if v.cloud == action.cloud and v.state == "starting"
                    )
                    delay = site.boot_s * rng.uniform(0.8, 1.2) + site.transfer_s * busy_link
                    r = rng.random()
                    fate = (
                        "error"
                        if r < site.error_rate
                        else "silent"
                        if r < site.error_rate + site.silent_rate
                        else "ok"
                    )
                    vid = f"vm-{next(vm_ids):05d}"
                    vms[vid] = _SimVM(vid, action.cloud, action.spec, action.job_id, now, fate)
                    at(now + delay, "ready", vid)
                    at(now + policy.boot_timeout_s + 1e-6, "timer", vid)
                    dirty = True
            on_cloud = Counter(v.cloud for v in vms.values())
            for c in configs:
                max_vms[c.name] = max(max_vms[c.name], on_cloud[c.name])
            states = Counter(v.state for v in vms.values())
            series.times_h.append(now / 3600)
            series.starting.append(states["starting"])
            series.running.append(states["running"])
            series.error.append(states["error"])
            # A plan that changed something is followed by another at the next poll.
        if not vms and not idle and not running:
            break
        if dirty:
            now += tick
        elif events:
            now = max(now + tick, math.ceil(events[0][0] / tick) * tick)
        else:
            break
    per_site: dict[str, list[float]] = {}
    for _, rep in reports:
        per_site.setdefault(rep["site"], []).append(rep["events_per_s"])
    series.summary = {
        "jobs": jobs,
        "jobs_done": done,
        "jobs_failed": failed,
        "jobs_unfinished": jobs - done - failed,
        "quota": {c.name: c.quota for c in configs},
        "max_vms": {c.name: max_vms[c.name] for c in configs},
        "vms_booted": boots,
        "vms_replaced": replaced,
        "vms_left_running": len(vms),
        "simulated_hours": round(now / 3600, 2),
        "plan_calls": plan_calls,
        "recent_events_per_s": {s: round(sum(v) / len(v), 1) for s, v in sorted(per_site.items())},
    }
    return series


def plot(result: SimResult, path: str) -> None:
    """VMs starting / running / in error over time, like the paper's figure 2."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    ax.step(result.times_h, result.running, where="post", color="green", label="running")
    ax.step(result.times_h, result.starting, where="post", color="blue", label="starting")
    ax.step(result.times_h, result.error, where="post", color="red", label="error")
    ax.set_xlabel("time [h]")
    ax.set_ylabel("VMs")
    ax.set_title(f"{result.summary.get('jobs', 0)} jobs, simulated")
    ax.legend()
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".png", dir=target.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, target)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
