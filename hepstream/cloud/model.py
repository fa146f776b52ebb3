"""Frozen records the planner reasons about: jobs, clouds, VMs, site numbers, actions."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

JobStatus = Literal["idle", "running", "done", "failed"]
# starting: booted, not yet registered as a worker; running: registered worker;
# error: the cloud says so; stopped: powered off by itself (job over); unknown: the
# cloud's last poll failed, so we know nothing new and must not act on absence.
VMState = Literal["starting", "running", "error", "stopped", "missing", "unknown"]
#: :attr:`VMSpec.key`: image, cpus, memory (MB), owner.
SpecKey = tuple[str, int, int, str]


@dataclass(frozen=True)
class VMSpec:
    """What a job needs from its VM: image, size and whose jobs it may run."""

    image: str
    cpus: int = 1
    memory_mb: int = 2048
    owner: str = "nobody"

    @cached_property  # read per job and VM every round: built once
    def key(self) -> SpecKey:
        """Jobs and VMs with equal keys are interchangeable."""
        return (self.image, self.cpus, self.memory_mb, self.owner)


@dataclass(frozen=True)
class Job:
    """One queued job as the planner sees it."""

    id: str
    spec: VMSpec
    status: JobStatus = "idle"
    target_clouds: tuple[str, ...] = ()  # empty: any cloud
    vm_id: str | None = None  # the VM running it, when running
    submitted_at: float = 0.0


@dataclass(frozen=True)
class Cloud:
    """A cloud the shim may boot on: its quota, priority and driver settings."""

    name: str
    quota: int  # VM slots (the paper's 30/20/40/20)
    priority: int = 0  # higher fills first
    driver: str = "fake"
    max_starting: int | None = None  # None: Policy.max_starting
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: The site's XCache, ``root://host:port``: jobs booted here read their remote inputs
    #: through it (``stream.site_cache``) unless the job names one itself; None: no cache.
    site_cache: str | None = None

    def __repr__(self) -> str:  # options may hold credentials
        return (
            f"Cloud(name={self.name!r}, quota={self.quota}, priority={self.priority}, "
            f"driver={self.driver!r}, max_starting={self.max_starting}, "
            f"site_cache={self.site_cache!r}, options=<redacted>)"
        )

    def job_here(self, job: dict[str, Any]) -> dict[str, Any]:
        """``job`` (a job mapping, :meth:`~hepstream.jobspec.JobSpec.to_mapping`'s form) as
        it runs on this cloud: its ``site`` is the cloud, and its remote inputs go through
        the cloud's site cache unless the job names a cache (or none) itself."""
        out = {**job, "site": self.name}
        stream = dict(out.get("stream") or {})
        if self.site_cache and "site_cache" not in stream and "stream.site_cache" not in out:
            stream["site_cache"] = self.site_cache
            out["stream"] = stream
        return out


@dataclass(frozen=True)
class VM:
    """A VM the shim owns: its record merged with the latest observation."""

    id: str
    cloud: str
    spec: VMSpec
    job_id: str  # the job it was booted for (tag)
    state: VMState
    booted_at: float
    registered_at: float | None = None
    busy: bool = False  # running a job now
    idle_since: float | None = None  # when it last became idle (None: busy or never ran)


@dataclass(frozen=True)
class SiteStats:
    """Measured numbers for one (image, cloud): job throughput and boot outcomes."""

    image: str
    cloud: str
    reports: int = 0
    events_per_s: float = 0.0  # mean per job over recent reports
    kb_per_s: float = 0.0
    boots: int = 0  # recent boot attempts that reached an outcome
    boot_failures: int = 0  # of those, error state / never registered / API error
    last_failure_at: float | None = None


@dataclass(frozen=True)
class Boot:
    """Boot one VM for ``job_id`` on ``cloud``; ``reason`` says why this cloud."""

    job_id: str
    cloud: str
    spec: VMSpec
    reason: str


@dataclass(frozen=True)
class Retire:
    """Destroy a VM that is no longer needed (idle, too old, stopped, vanished)."""

    vm_id: str
    cloud: str
    reason: str


@dataclass(frozen=True)
class Replace:
    """Destroy a broken VM (error, never registered); count it as a boot failure.

    The replacement, if any capacity is left, is a separate :class:`Boot` in the same plan.
    """

    vm_id: str
    cloud: str
    reason: str


@dataclass(frozen=True)
class Wait:
    """Nothing can be done for some jobs now; ``reason`` says why."""

    reason: str
    jobs: int = 0


Action = Boot | Retire | Replace | Wait
