"""The queue interface the shim works through, and what the two hepstream-held queues share.

:class:`Queue` is everything the shim (:mod:`hepstream.cloud.shim`) asks of a job queue;
:class:`~hepstream.cloud.queues.local.LocalQueue`,
:class:`~hepstream.cloud.queues.memory.MemoryQueue`,
:class:`~hepstream.cloud.queues.condor.CondorQueue` and
:class:`~hepstream.cloud.queues.slurm.SlurmQueue` all satisfy it. :class:`AgentQueue` adds
the VM agent's side (register, claim), which only a queue hepstream holds itself has: under
HTCondor or Slurm the batch system hands out the jobs. The record of a queued job and the
status and retry rules of the two queues hepstream holds are here too, so both answer alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from hepstream.cloud.model import Job, VMSpec
from hepstream.jobspec import ShippedJob


@dataclass(frozen=True)
class QueuedJob:
    """A job row: the planner's :class:`Job` plus what the agent and status need."""

    job: Job
    spec: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    def shipped(self) -> ShippedJob:
        """The row's job as the one job record (a ConfigError if it is not a valid one)."""
        return ShippedJob.from_mapping(self.spec, where=f"queued job {self.job.id}")


class Queue(Protocol):
    """What the shim reads (demand, registered workers, job reports) and writes (a job's
    binding to the VM booted for it, its end, its retry) each round."""

    def pending(self) -> list[Job]:
        """Idle and running jobs, oldest first, as the planner wants them."""
        ...

    def workers(self) -> dict[str, float]:
        """Registered VM names and when they registered."""
        ...

    def recent_reports(self, per_site: int) -> list[tuple[str, dict[str, Any]]]:
        """(image, report) of the newest ``per_site`` ok reports per (image, site), newest
        first: all that :func:`~hepstream.cloud.sitestats.site_stats` ranks by."""
        ...

    def get(self, job_id: str) -> QueuedJob | None:
        """The job's row (None: not a job of this queue)."""
        ...

    def assign(self, job_id: str, vm_id: str) -> bool:
        """Bind an idle job to a VM booted for it (drivers that pass the job at boot)."""
        ...

    def finish(self, job_id: str, report: dict[str, Any] | None, error: str | None = None) -> str:
        """Record a job's end; returns its new status."""
        ...

    def requeue(self, job_id: str, reason: str, max_retries: int, count: bool = True) -> str:
        """Put a job whose VM broke back to idle, or fail it after ``max_retries``; returns
        its new status. ``count=False`` for a VM that never got the job."""
        ...

    def forget_worker(self, vm_id: str) -> None:
        """Drop a destroyed VM's registration."""
        ...


class AgentQueue(Queue, Protocol):
    """A queue hepstream holds itself: VM agents register and claim jobs from it."""

    def register_worker(self, vm_id: str) -> None:
        """A VM's agent says it is up; the shim counts the VM as registered."""
        ...

    def claim(self, vm_id: str, spec: VMSpec) -> QueuedJob | None:
        """Give worker ``vm_id`` the oldest idle job for its image, size and owner."""
        ...


def finish_status(report: dict[str, Any] | None, error: str | None) -> tuple[str, str | None]:
    """A finished job's status and error: ``done`` only when its report says ``ok``."""
    ok = report is not None and report.get("status") == "ok" and error is None
    if error is None and not ok:
        error = (report or {}).get("error") or "job left no report"
    return ("done" if ok else "failed"), error


def requeue_status(
    attempts: int, reason: str, max_retries: int, count: bool = True
) -> tuple[str, int, str]:
    """The retry rule: (status, attempts, error) for a job whose VM broke.

    ``count=False`` for a VM that never got the job (boot refused by the API).
    """
    attempts += int(count)
    if attempts > max_retries:
        return "failed", attempts, f"gave up after {attempts} VMs: {reason}"
    return "idle", attempts, reason
