"""The shim's edge: observe queue and clouds, call :func:`plan`, apply its actions.

All state lives in SQLite and in VM tags, so a shim killed at any moment and started
again adopts its VMs and neither leaks nor duplicates one.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from hepstream.cloud.decide import count_by_state, plan
from hepstream.cloud.drivers import make_driver
from hepstream.cloud.drivers.base import (
    TAG_BOOTED,
    TAG_JOB,
    TAG_SHIM,
    TAG_VM,
    BootRequest,
    CloudState,
    Driver,
    ObservedVM,
    make_tags,
    spec_from_tags,
)
from hepstream.cloud.model import (
    VM,
    Action,
    Boot,
    Job,
    Replace,
    Retire,
    SiteStats,
    VMState,
    Wait,
)
from hepstream.cloud.policy import ShimConfig
from hepstream.cloud.queues.base import Queue
from hepstream.cloud.queues.condor import CondorQueue
from hepstream.cloud.queues.local import LocalQueue
from hepstream.cloud.queues.slurm import SlurmQueue
from hepstream.cloud.sitestats import site_stats
from hepstream.cloud.state import StateStore, VMRow
from hepstream.errors import ConfigError

log = logging.getLogger("hepstream.cloud")

_STATE_OF: dict[CloudState, VMState] = {
    "pending": "starting",
    "running": "running",
    "error": "error",
    "stopped": "stopped",
}


@dataclass
class Observation:
    """What one round saw: jobs, VMs for ``plan``, and the clouds that did not answer."""

    jobs: list[Job]
    vms: list[VM]
    rows: dict[str, VMRow]
    unreachable: set[str] = field(default_factory=set)


@dataclass
class Round:
    """One reconcile round as the shim saw and decided it (what a simulator inspects)."""

    observation: Observation
    stats: list[SiteStats]
    actions: list[Action]


def _uuid_name(shim_id: str) -> str:
    return f"{shim_id}-{uuid.uuid4().hex[:8]}"


class Shim:
    """Reconciler for one shim id: a queue, a state file and one driver per cloud."""

    def __init__(
        self,
        config: ShimConfig,
        drivers: Mapping[str, Driver],
        queue: Queue,
        state: StateStore,
        clock: Callable[[], float] = time.time,
        vm_name: Callable[[str], str] = _uuid_name,
    ) -> None:
        """``clock`` and ``vm_name`` (shim id -> a new VM name) are injected by the simulator."""
        self.config = config
        self.policy = config.policy
        self.drivers = dict(drivers)
        self.queue = queue
        self.state = state
        self.clock = clock
        self.vm_name = vm_name
        self.last_round: Round | None = None
        self._stop = False

    @classmethod
    def from_config(cls, config: ShimConfig) -> Shim:
        """Open the state file and build each cloud's driver."""
        state = StateStore(config.state_path)
        drivers = {c.name: make_driver(c, config.shim_id, config.workdir) for c in config.clouds}
        queue: Queue
        if config.queue == "local":
            queue = LocalQueue(config.state_path)
        elif config.queue in ("condor", "slurm"):
            # the batch system hands out the jobs: no job to give a VM at boot
            if any(d.binds_job for d in drivers.values()):
                raise ConfigError(
                    f'the local QEMU driver needs queue = "local", not {config.queue}'
                )
            queue = CondorQueue() if config.queue == "condor" else SlurmQueue()
        else:
            raise ConfigError(f'[shim] queue = {config.queue!r}: use "local", "condor" or "slurm"')
        return cls(config, drivers, queue, state)

    # -- observe -----------------------------------------------------------------
    def observe(self) -> Observation:
        now = self.clock()
        rows = {r.name: r for r in self.state.live()}
        seen: dict[str, ObservedVM] = {}
        unreachable: set[str] = set()
        for name, driver in self.drivers.items():
            try:
                listed = driver.list()
            except Exception as err:  # a failed poll never forgets state
                log.warning("cloud %s: poll failed, keeping state: %s", name, err)
                unreachable.add(name)
                continue
            shim_id = self.config.shim_id
            for vm in listed:
                vm_name = vm.tags.get(TAG_VM)
                if vm.tags.get(TAG_SHIM) != shim_id or not vm_name:
                    continue
                seen[vm_name] = vm
                known = rows.get(vm_name)
                if known is None or known.cloud_id is None:
                    self._reconcile_row(name, vm, rows, now)
        jobs = self.queue.pending()
        self._requeue_orphans(jobs, rows)
        jobs = self.queue.pending()
        running_on = {j.vm_id for j in jobs if j.status == "running"}
        workers = self.queue.workers()
        vms = []
        for row in rows.values():
            vms.append(self._merge(row, seen.get(row.name), unreachable, workers, running_on, now))
        return Observation(jobs, vms, rows, unreachable)

    def _reconcile_row(
        self, cloud: str, vm: ObservedVM, rows: dict[str, VMRow], now: float
    ) -> None:
        """Give a listed VM its row: its cloud id, or a new row (adopted from its tags)."""
        name = vm.name
        assert name is not None
        if name in rows:
            if rows[name].cloud_id is None:
                self.state.update(name, cloud_id=vm.cloud_id)
                rows[name] = self._row(name)
            return
        if self.state.was_gone(name):
            log.warning(
                "cloud %s: VM %s was destroyed but is listed; destroying again", cloud, name
            )
            try:
                self.drivers[cloud].destroy(vm.cloud_id)
            except Exception as err:
                log.warning("cloud %s: destroy of %s failed: %s", cloud, name, err)
            return
        booted = float(vm.tags.get(TAG_BOOTED, now))
        self.state.add(
            name, cloud, spec_from_tags(vm.tags), vm.tags.get(TAG_JOB, ""), booted, vm.cloud_id
        )
        rows[name] = self._row(name)
        log.info("cloud %s: adopted VM %s (%s) from its tags", cloud, name, vm.cloud_id)

    def _row(self, name: str) -> VMRow:
        """The row just written for ``name``."""
        row = self.state.get(name)
        assert row is not None
        return row

    def _requeue_orphans(self, jobs: list[Job], rows: Mapping[str, VMRow]) -> None:
        """A job 'running' on a VM the shim no longer has gets queued again."""
        for job in jobs:
            if job.status == "running" and job.vm_id and job.vm_id not in rows:
                status = self.queue.requeue(
                    job.id, f"VM {job.vm_id} is gone", self.policy.job_retries
                )
                log.warning("job %s: VM %s is gone; job is %s", job.id, job.vm_id, status)

    def _merge(
        self,
        row: VMRow,
        seen: ObservedVM | None,
        unreachable: set[str],
        workers: Mapping[str, float],
        running_on: set[str | None],
        now: float,
    ) -> VM:
        """A row merged with what its cloud and the queue say now; records what changed."""
        name = row.name
        registered_at = row.registered_at
        state: VMState
        if row.cloud in unreachable:
            state = "unknown"
            registered = registered_at is not None
        elif seen is not None:
            state = _STATE_OF[seen.state]
            registered = seen.registered or name in workers
            if state == "running" and not registered:
                state = "starting"  # up at the cloud, but no worker yet
        elif now - row.booted_at > self.policy.missing_grace_s:
            state = "missing"
            registered = registered_at is not None
        else:
            state = "starting"
            registered = False
        store = self.state
        if registered and registered_at is None and state in ("running", "stopped"):
            registered_at = now
            store.update(name, registered_at=now)
            store.outcome(row.spec.image, row.cloud, now, True, name)
        busy = name in running_on
        idle_since = row.idle_since
        if state == "running" and not busy and idle_since is None:
            idle_since = now
            store.update(name, idle_since=now)
        elif busy and idle_since is not None:
            idle_since = None
            store.update(name, idle_since=None)
        if state != row.last_state and state != "unknown":
            store.update(name, last_state=state)
        return VM(
            name,
            row.cloud,
            row.spec,
            row.job_id,
            state,
            row.booted_at,
            registered_at,
            busy,
            idle_since,
        )

    # -- plan ----------------------------------------------------------------------
    def plan(self, obs: Observation | None = None) -> tuple[Observation, list[Action]]:
        """Observe (unless given) and return the actions ``plan`` wants now."""
        obs = obs or self.observe()
        now = self.clock()
        reports = self.queue.recent_reports(self.policy.report_window)
        stats = site_stats(
            reports, self.state.outcomes(now - self.policy.backoff_window_s), now, self.policy
        )
        actions = plan(obs.jobs, obs.vms, self.config.clouds, stats, now, self.policy)
        self.last_round = Round(obs, stats, actions)
        return obs, actions

    # -- apply ---------------------------------------------------------------------
    def step(self) -> list[Action]:
        """One reconcile round: observe, plan, apply; returns the actions taken."""
        obs, actions = self.plan()
        for action in actions:
            if isinstance(action, Boot):
                self._boot(action)
            elif isinstance(action, Retire | Replace):
                self._destroy(action, obs)
            elif isinstance(action, Wait):
                log.info("wait: %s", action.reason)
        self.state.snapshot(self.clock(), count_by_state(obs.vms))
        return actions

    def _boot(self, action: Boot) -> None:
        driver = self.drivers[action.cloud]
        now = self.clock()
        name = self.vm_name(self.config.shim_id)
        self.state.add(name, action.cloud, action.spec, action.job_id, now)  # before the call
        job: dict[str, Any] | None = None
        if driver.binds_job:
            queued = self.queue.get(action.job_id)
            if queued is None or not self.queue.assign(action.job_id, name):
                self.state.gone(name, now)
                return
            # the cloud is the job's site: its name and its cache, whatever the driver
            cloud = next(c for c in self.config.clouds if c.name == action.cloud)
            job = {**cloud.job_here(dict(queued.spec)), "job_id": action.job_id}
        tags = make_tags(self.config.shim_id, name, action.spec, action.job_id, now)
        try:
            cloud_id = driver.boot(BootRequest(name, action.spec, tags, job))
        except Exception as err:
            log.warning("cloud %s: boot for job %s failed: %s", action.cloud, action.job_id, err)
            self.state.gone(name, now)
            self.state.outcome(action.spec.image, action.cloud, now, False, name)
            if job is not None:
                self.queue.requeue(action.job_id, str(err), self.policy.job_retries, count=False)
            return
        self.state.update(name, cloud_id=cloud_id)
        log.info("boot %s on %s for job %s: %s", name, action.cloud, action.job_id, action.reason)

    def _destroy(self, action: Retire | Replace, obs: Observation) -> None:
        row = obs.rows.get(action.vm_id)
        if row is None:
            return
        driver = self.drivers.get(row.cloud)
        now = self.clock()
        report = None
        if row.cloud_id is not None and driver is not None:
            collect = getattr(driver, "collect", None)
            if collect is not None:
                report = collect(row.cloud_id)
            try:
                driver.destroy(row.cloud_id)
            except Exception as err:
                log.warning(
                    "cloud %s: destroy of %s failed (retry next round): %s",
                    row.cloud,
                    row.name,
                    err,
                )
                return
        self.state.gone(row.name, now)
        self.queue.forget_worker(row.name)
        if isinstance(action, Replace):
            self.state.outcome(row.spec.image, row.cloud, now, False, row.name)
        for job in obs.jobs:
            if job.status == "running" and job.vm_id == row.name:
                if report is not None:
                    status = self.queue.finish(job.id, report)
                else:
                    status = self.queue.requeue(job.id, action.reason, self.policy.job_retries)
                log.info("job %s on %s: %s", job.id, row.name, status)
        log.info(
            "%s %s on %s: %s", type(action).__name__.lower(), row.name, row.cloud, action.reason
        )

    # -- loop ----------------------------------------------------------------------
    def stop(self) -> None:
        """Make :meth:`run` return after the current round (what SIGTERM does)."""
        self._stop = True

    def idle(self) -> bool:
        """True when no job waits or runs and the shim holds no VM."""
        return not self.state.has_live() and not self.queue.pending()

    def run(
        self,
        interval: float | None = None,
        once: bool = False,
        until_idle: bool = False,
        max_rounds: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Reconcile until stopped (SIGTERM/SIGINT), ``once``, or idle; returns rounds."""
        interval = self.policy.poll_interval_s if interval is None else interval

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            self._stop = True  # VMs stay up: a restarted shim adopts them

        old: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            old[signal.SIGTERM] = signal.signal(signal.SIGTERM, _stop)
        rounds = 0
        try:
            while not self._stop:
                self.step()
                rounds += 1
                if once or (max_rounds is not None and rounds >= max_rounds):
                    break
                if until_idle and self.idle():
                    break
                sleep(interval)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        return rounds
