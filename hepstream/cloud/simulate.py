"""A simulation of clouds, VMs and jobs that runs the real :class:`Shim`.

The shim is the object ``hepstream cloud run`` runs (observe, :func:`plan`, the
Boot/Retire/Replace actions and the retry rules); here its clouds are fake drivers with
boot delays and failures, its queue is in memory, the VM agents are fake agents whose
jobs take simulated time, and its clock is virtual. The shim polls every
``policy.poll_interval_s``; a round that changed nothing is followed by the first poll
after the next thing that can happen (a VM comes up, a job ends, a timer runs out), so
thousands of jobs over days of simulated time take seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hepstream.cloud.decide import next_decision_at
from hepstream.cloud.drivers.fake import FakeAgents, FakeDriver, JobRun
from hepstream.cloud.model import Replace, VMSpec, Wait
from hepstream.cloud.policy import Policy, ShimConfig
from hepstream.cloud.queues.memory import MemoryQueue
from hepstream.cloud.shim import Round, Shim
from hepstream.cloud.simconfig import PRESETS, Dist, SimCloud, SimConfig, paper_preset
from hepstream.cloud.state import StateStore
from hepstream.errors import ConfigError
from hepstream.io.partfiles import atomic_path

__all__ = ["PRESETS", "SimCloud", "SimResult", "paper_preset", "plot", "run_config", "simulate"]


class VirtualClock:
    """Simulated seconds; the simulator moves it, the shim, drivers and queue read it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class SimResult:
    """Summary numbers plus the time series behind the figure."""

    summary: dict[str, Any]
    times_h: list[float] = field(default_factory=list)
    starting: list[int] = field(default_factory=list)
    running: list[int] = field(default_factory=list)
    error: list[int] = field(default_factory=list)


class _Tally:
    """What the rounds did, and the most VMs each cloud ever held (the quota check)."""

    def __init__(self, drivers: dict[str, FakeDriver], series: SimResult) -> None:
        self.drivers = drivers
        self.series = series
        self.max_vms: Counter[str] = Counter()
        self.rounds = 0
        self.replaced = 0
        self._last: Round | None = None

    def record(self, rnd: Round | None, now: float) -> None:
        if rnd is None or rnd is self._last:
            return
        self._last = rnd
        self.rounds += 1
        self.replaced += sum(isinstance(a, Replace) for a in rnd.actions)
        for name, driver in self.drivers.items():
            self.max_vms[name] = max(self.max_vms[name], len(driver.vms))
        states = Counter(vm.state for vm in rnd.observation.vms)
        self.series.times_h.append(now / 3600)
        self.series.starting.append(states["starting"])
        self.series.running.append(states["running"])
        self.series.error.append(states["error"])


def simulate(
    clouds: list[SimCloud],
    jobs: int,
    policy: Policy | None = None,
    job_events: float | Dist = 4.75e6,
    image: str = "babar-sl55",
    seed: int = 1,
    max_hours: float = 24 * 60,
) -> SimResult:
    """Run ``jobs`` jobs of one image through the simulated clouds with the real shim.

    ``job_events``: events per job (the paper's ~12 h at 110 events/s), a number or a
    :class:`Dist`; a job takes its events over its cloud's ``events_per_s`` (+-10 %).
    The same ``seed`` gives the same run.
    """
    if jobs < 0:
        raise ConfigError("--jobs must be >= 0")
    policy = policy or Policy()
    events = job_events if isinstance(job_events, Dist) else Dist("fixed", float(job_events))
    rng = random.Random(seed)
    clock = VirtualClock()
    drivers = _fake_drivers(clouds, rng, clock)
    run_job = _job_model(clouds, events, random.Random(rng.randrange(2**32)))
    queue = MemoryQueue(clock)
    state = StateStore(":memory:", cache_live=True)
    names = itertools.count(1)
    config = ShimConfig(policy=policy, clouds=tuple(c.cloud for c in clouds), shim_id="sim")
    shim = Shim(
        config, drivers, queue, state, clock=clock, vm_name=lambda sid: f"{sid}-{next(names):06d}"
    )
    agents = FakeAgents(queue, drivers, run_job=run_job, clock=clock)
    spec = VMSpec(image=image, cpus=1, memory_mb=2048, owner="analyst")
    for i in range(jobs):
        queue.add(spec, job_id=f"job-{i:05d}")
    series = SimResult(summary={})
    tally = _Tally(drivers, series)
    tick = policy.poll_interval_s
    end = max_hours * 3600
    skip = _SkipAhead(shim, drivers, agents, clock, tally, end)
    with _quiet_logs(), contextlib.closing(state):
        shim.run(interval=tick, until_idle=True, max_rounds=int(end / tick) + 2, sleep=skip)
        tally.record(shim.last_round, clock.now)
        counts = queue.counts()
        recent = queue.reports()[: policy.report_window * 8]
    series.summary = _summary(jobs, clouds, drivers, tally, clock.now, counts, recent)
    return series


def _fake_drivers(
    clouds: list[SimCloud], rng: random.Random, clock: VirtualClock
) -> dict[str, FakeDriver]:
    """One fake driver per simulated cloud, each with its own seed drawn from ``rng``."""
    return {
        c.cloud.name: FakeDriver(
            c.cloud.name,
            boot_delay_s=c.boot_delay(),
            error_rate=c.error_rate,
            seed=rng.randrange(2**32),
            clock=clock,
            silent_rate=c.silent_rate,
            refuse_rate=c.refuse_rate,
        )
        for c in clouds
    }


def _job_model(clouds: list[SimCloud], events: Dist, rng: random.Random) -> JobRun:
    """How long a job runs on a cloud and the report it leaves: its events over the cloud's
    rate (+-10 % per job), reading at the cloud's KB/s per event/s."""
    behave = {c.cloud.name: c for c in clouds}

    def run_job(cloud: str, _job_id: str) -> tuple[float, dict[str, Any]]:
        site = behave[cloud]
        eps = site.events_per_s * rng.uniform(0.9, 1.1)
        n = events.sample(rng)
        seconds = n / eps
        kbps = site.kb_per_s * eps / site.events_per_s
        report = {
            "status": "ok",
            "site": cloud,
            "events_per_s": eps,
            "kb_per_s": kbps,
            "wall_s": seconds,
            "events_read": int(n),
            "bytes_read": int(kbps * 1e3 * seconds),
            "hepstream_version": "simulated",
        }
        return seconds, report

    return run_job


class _SkipAhead:
    """The shim's sleep between two rounds: move the clock to the next round worth running
    (the next poll after a round that acted; else the first poll after the next VM, job or
    policy-timer change); stop the shim when nothing can change any more or time is up."""

    def __init__(
        self,
        shim: Shim,
        drivers: dict[str, FakeDriver],
        agents: FakeAgents,
        clock: VirtualClock,
        tally: _Tally,
        end: float,
    ) -> None:
        self.shim = shim
        self.drivers = drivers
        self.agents = agents
        self.clock = clock
        self.tally = tally
        self.end = end

    def __call__(self, interval: float) -> None:
        rnd = self.shim.last_round
        now = self.clock.now
        self.tally.record(rnd, now)
        assert rnd is not None
        if any(not isinstance(a, Wait) for a in rnd.actions):
            target = now + interval
        else:
            wakes = [d.next_change() for d in self.drivers.values()]
            wakes += [
                self.agents.next_change(),
                next_decision_at(rnd.observation.vms, rnd.stats, now, self.shim.policy),
            ]
            later = [t for t in wakes if t is not None and t > now]
            if not later:  # nothing can change any more: jobs left are stuck
                self.shim.stop()
                return
            target = max(now + interval, (math.floor(min(later) / interval) + 1) * interval)
        if target > self.end:
            self.shim.stop()
            return
        self.clock.now = target
        self.agents.step()


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The shim's warning per injected fault, silenced unless someone asked for logs."""
    log = logging.getLogger("hepstream.cloud")
    level = log.level
    if not logging.getLogger().handlers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _summary(
    jobs: int,
    clouds: list[SimCloud],
    drivers: dict[str, FakeDriver],
    tally: _Tally,
    now: float,
    counts: dict[str, int],
    recent: list[tuple[str, float, dict[str, Any]]],
) -> dict[str, Any]:
    """The run's numbers: jobs by outcome, VMs per cloud against quota, boots, replacements,
    simulated time, shim rounds, and the recent mean events/s per job of each site."""
    per_site: dict[str, list[float]] = {}
    for _, _, rep in recent:
        per_site.setdefault(rep["site"], []).append(rep["events_per_s"])
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    return {
        "jobs": jobs,
        "jobs_done": done,
        "jobs_failed": failed,
        "jobs_unfinished": jobs - done - failed,
        "quota": {c.cloud.name: c.cloud.quota for c in clouds},
        "max_vms": {c.cloud.name: tally.max_vms[c.cloud.name] for c in clouds},
        "vms_booted": sum(d.boots for d in drivers.values()),
        "vms_replaced": tally.replaced,
        "vms_left_running": sum(len(d.vms) for d in drivers.values()),
        "simulated_hours": round(now / 3600, 2),
        "plan_calls": tally.rounds,
        "recent_events_per_s": {s: round(sum(v) / len(v), 1) for s, v in sorted(per_site.items())},
    }


def run_config(config: SimConfig, seed: int = 1, jobs: int | None = None) -> SimResult:
    """Simulate a loaded :class:`SimConfig` (``jobs`` overrides its job count)."""
    return simulate(
        config.clouds,
        config.jobs if jobs is None else jobs,
        policy=config.policy,
        job_events=config.job_events,
        image=config.image,
        seed=seed,
    )


def plot(result: SimResult, path: str) -> None:
    """VMs starting / running / in error over time, like the paper's figure 2."""
    # lazy: the optional `plot` extra; pyplot costs ~450 ms (python -X importtime); --png only
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
    try:
        with atomic_path(path) as part:
            fig.savefig(part, dpi=100, format="png")
    finally:
        plt.close(fig)
