"""What the shim's queues share when a batch system (HTCondor, Slurm) owns the jobs."""

from __future__ import annotations

from typing import Any

from hepstream.cloud.queues.base import QueuedJob


class ExternalQueue:
    """The shim's record-keeping calls as no-ops: the batch system retries and finishes its
    jobs itself and keeps no hepstream reports, so the shim has nothing to write.

    Subclasses read ``pending`` and ``workers`` from the batch system.
    """

    #: Returned where the local queue returns the job's new state: who owns it.
    owner = "external"

    def get(self, job_id: str) -> QueuedJob | None:
        """None: the batch system holds no hepstream job rows."""
        return None

    def assign(self, job_id: str, vm_id: str) -> bool:
        """False: the batch system matches jobs to VMs; a driver that binds a job at boot
        needs the local queue (:meth:`Shim.from_config <hepstream.cloud.shim.Shim.from_config>`
        refuses the pair)."""
        return False

    def requeue(self, job_id: str, reason: str, max_retries: int, count: bool = True) -> str:
        return self.owner

    def finish(self, job_id: str, report: dict[str, Any] | None, error: str | None = None) -> str:
        return self.owner

    def forget_worker(self, vm_id: str) -> None:
        return None

    def recent_reports(self, per_site: int) -> list[tuple[str, dict[str, Any]]]:
        return []
