"""An in-memory cloud: a first-class test adapter with boot delays and injected faults."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hepstream.cloud.drivers.base import (
    TAG_VM,
    BootRequest,
    CloudAPIError,
    CloudState,
    Driver,
    ObservedVM,
    spec_from_tags,
)
from hepstream.cloud.model import Job
from hepstream.cloud.queues.base import AgentQueue


@dataclass
class _FakeVM:
    cloud_id: str
    request: BootRequest
    booted_at: float
    ready_at: float
    fate: str  # ok | error | silent (never registers)
    state: CloudState = "pending"
    seen: ObservedVM | None = None  # what list() returns while the state holds


class FakeDriver:
    """A cloud living in a dict; faults are set per call or as rates.

    ``boot_delay_s``: pending time before running, a number or a function of the
    driver's random generator and the number of VMs still pending here (a shared image
    link). ``error_rate``: share of VMs that go into error instead; ``silent_rate``: share
    whose agent never registers; ``refuse_rate``: share of boot calls the API refuses.
    ``api_failures``: the next this-many calls raise :class:`CloudAPIError`.
    """

    binds_job = False

    def __init__(
        self,
        name: str = "fake",
        boot_delay_s: float | Callable[[random.Random, int], float] = 0.0,
        error_rate: float = 0.0,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        silent_rate: float = 0.0,
        refuse_rate: float = 0.0,
    ) -> None:
        self.name = name
        self.boot_delay_s = boot_delay_s if callable(boot_delay_s) else float(boot_delay_s)
        self.error_rate = float(error_rate)
        self.silent_rate = float(silent_rate)
        self.refuse_rate = float(refuse_rate)
        self.api_failures = 0
        self.fail_next_boots = 0
        self.error_next_boots = 0
        self.silent_next_boots = 0
        self.clock = clock
        self._rng = random.Random(seed)
        self._ids = itertools.count(1)
        self.vms: dict[str, _FakeVM] = {}
        self.boots = 0
        self.destroyed: list[str] = []

    def _maybe_fail(self, call: str) -> None:
        if self.api_failures > 0:
            self.api_failures -= 1
            raise CloudAPIError(f"fake cloud {self.name}: {call} failed (injected)")

    def boot(self, request: BootRequest) -> str:
        self._maybe_fail("boot")
        if self.fail_next_boots > 0:
            self.fail_next_boots -= 1
            raise CloudAPIError(f"fake cloud {self.name}: boot refused (injected)")
        if self.refuse_rate and self._rng.random() < self.refuse_rate:
            raise CloudAPIError(f"fake cloud {self.name}: boot refused (refuse_rate)")
        fate = "ok"
        if self.error_next_boots > 0:
            self.error_next_boots -= 1
            fate = "error"
        elif self.silent_next_boots > 0:
            self.silent_next_boots -= 1
            fate = "silent"
        else:
            r = self._rng.random()
            if r < self.error_rate:
                fate = "error"
            elif r < self.error_rate + self.silent_rate:
                fate = "silent"
        cloud_id = f"{self.name}-{next(self._ids):05d}"
        now = self.clock()
        delay = self.boot_delay_s
        if callable(delay):
            pending = sum(1 for vm in self.vms.values() if vm.state == "pending")
            delay = delay(self._rng, pending)
        self.vms[cloud_id] = _FakeVM(cloud_id, request, now, now + delay, fate)
        self.boots += 1
        return cloud_id

    def list(self) -> list[ObservedVM]:
        self._maybe_fail("list")
        now = self.clock()
        out = []
        for vm in self.vms.values():
            if vm.state == "pending" and now >= vm.ready_at:
                vm.state = "error" if vm.fate == "error" else "running"
                vm.seen = None
            if vm.seen is None:  # one record per state: thousands of VMs list fast
                vm.seen = ObservedVM(vm.cloud_id, vm.state, dict(vm.request.tags))
            out.append(vm.seen)
        return out

    def destroy(self, cloud_id: str) -> None:
        self._maybe_fail("destroy")
        if self.vms.pop(cloud_id, None) is not None:
            self.destroyed.append(cloud_id)

    def next_change(self) -> float | None:
        """When the next pending VM comes up (or goes into error); None: none pending."""
        times = [vm.ready_at for vm in self.vms.values() if vm.state == "pending"]
        return min(times) if times else None

    def silent(self, cloud_id: str) -> bool:
        """True when this VM's agent never registers (a fault under test)."""
        vm = self.vms.get(cloud_id)
        return vm is not None and vm.fate == "silent"


#: (cloud, job id) -> (seconds, report)
JobRun = Callable[[str, str], tuple[float, dict[str, Any]]]


class FakeAgents:
    """Stands in for the agent inside each VM: registers, claims a job, reports.

    A driver's ``silent(cloud_id)`` marks VMs whose agent never starts. Without
    ``run_job`` a claimed job ends with an ok report at the next :meth:`step`; with it,
    a job ends ``seconds`` of ``clock`` after its claim with the report ``run_job`` gave,
    and the agent claims its next job in the same step (as the VM agent loops).
    """

    def __init__(
        self,
        queue: AgentQueue,
        drivers: Mapping[str, Driver],
        events_per_s: Mapping[str, float] | None = None,
        run_job: JobRun | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.drivers = drivers
        self.events_per_s = events_per_s or {}
        self.run_job = run_job
        self.clock = clock
        self.ran: dict[str, int] = {}
        self._ends: dict[str, tuple[float, str, dict[str, Any]]] = {}  # vm -> (end, job, report)

    def next_change(self) -> float | None:
        """When the next timed job ends; None: none running."""
        return min((end for end, _, _ in self._ends.values()), default=None)

    def step(self) -> None:
        """Each running VM's agent, once: register, then finish its job or claim one."""
        now = self.clock()
        running = {j.vm_id: j for j in self.queue.pending() if j.status == "running"}
        for name, (_, job_id, _) in list(self._ends.items()):  # VM destroyed under its job
            if name not in running or running[name].id != job_id:
                del self._ends[name]
        for cloud, driver in self.drivers.items():
            try:
                listed = driver.list()
            except Exception:
                continue
            for vm in listed:
                if vm.state != "running":
                    continue
                held = self._ends.get(vm.tags.get(TAG_VM, ""))
                if held is not None and held[0] > now:
                    continue  # registered, and its job runs on
                silent = getattr(driver, "silent", lambda _id: False)(vm.cloud_id)
                if silent or not vm.name:
                    continue
                self.queue.register_worker(vm.name)
                if self.run_job is not None:
                    self._step_timed(cloud, vm, running.get(vm.name))
                elif vm.name in running:  # finish the job it holds
                    job = running[vm.name]
                    eps = self.events_per_s.get(cloud, 100.0)
                    self.queue.finish(job.id, _report(cloud, eps))
                    self.ran[vm.name] = self.ran.get(vm.name, 0) + 1
                else:
                    spec = spec_from_tags(vm.tags)
                    self.queue.claim(vm.name, spec)

    def _step_timed(self, cloud: str, vm: ObservedVM, job: Job | None) -> None:
        assert self.run_job is not None
        assert vm.name is not None
        now = self.clock()
        held = self._ends.get(vm.name)
        if job is not None and held is not None and held[1] == job.id:
            if held[0] > now:
                return
            self.queue.finish(job.id, held[2])
            self.ran[vm.name] = self.ran.get(vm.name, 0) + 1
            del self._ends[vm.name]
            job = None
        if job is None:
            claimed = self.queue.claim(vm.name, spec_from_tags(vm.tags))
            if claimed is None:
                return
            job = claimed.job
        seconds, report = self.run_job(cloud, job.id)
        self._ends[vm.name] = (now + seconds, job.id, report)


def _report(site: str, eps: float) -> dict[str, Any]:
    return {
        "status": "ok",
        "site": site,
        "events_per_s": eps,
        "kb_per_s": eps * 4,
        "wall_s": 10.0,
        "events_read": int(eps * 10),
        "bytes_read": int(eps * 40960),
        "hepstream_version": "test",
    }
