"""What the shim's queues share when a batch system (HTCondor, Slurm) owns the jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ExternalQueue:
    """The shim's record-keeping calls as no-ops: the batch system retries and finishes its
    jobs itself and keeps no hepstream reports, so the shim has nothing to write."""

    #: Returned where the local queue returns the job's new state: who owns it.
    owner = "external"

    def requeue(self, job_id: str, reason: str, max_retries: int, count: bool = True) -> str:
        return self.owner

    def finish(self, job_id: str, report: Mapping[str, Any] | None, error: str | None = None):
        return self.owner

    def forget_worker(self, vm_id: str) -> None:
        return None

    def reports(self) -> list:
        return []

    def recent_reports(self, per_site: int) -> list:
        return []
