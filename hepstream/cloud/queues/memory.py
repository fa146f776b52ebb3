"""The job queue in memory: :class:`LocalQueue`'s interface and rules, without SQLite.

The simulator runs the real :class:`~hepstream.cloud.shim.Shim` against it, so thousands
of jobs cost no disk round trips. Status and retry rules are the local queue's own
(:func:`~hepstream.cloud.queues.base.finish_status`,
:func:`~hepstream.cloud.queues.base.requeue_status`); the contract tests run both queues.
"""

from __future__ import annotations

import bisect
import builtins  # the queue has a method named list: annotations below mean the type
import heapq
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from hepstream.cloud.model import Job, SpecKey, VMSpec
from hepstream.cloud.queues.base import QueuedJob, finish_status, requeue_status
from hepstream.errors import InputError
from hepstream.jobspec import ShippedJob


class MemoryQueue:
    """Jobs and workers in dicts; same methods and answers as :class:`LocalQueue`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._jobs: dict[str, QueuedJob] = {}
        self._order: list[tuple[float, str]] = []  # (submitted_at, id) of idle/running, sorted
        self._pending: list[Job] | None = None  # pending() until the next change
        self._idle: dict[SpecKey, list[tuple[float, str]]] = {}  # -> heap of idle jobs
        self._reports: list[tuple[str, float, dict[str, Any]]] = []  # oldest first
        self._ok: dict[tuple[str, str], list[tuple[float, int, dict[str, Any]]]] = {}
        self._workers: dict[str, float] = {}

    def close(self) -> None:
        """Nothing to release; here so the two queues are used alike."""

    # -- submit side -------------------------------------------------------------
    def add(
        self,
        spec: VMSpec,
        job: ShippedJob | dict[str, Any] | None = None,
        target_clouds: Sequence[str] = (),
        job_id: str | None = None,
    ) -> str:
        """Queue one job needing a VM like ``spec``; returns its id."""
        job_id = job_id or f"job-{uuid.uuid4().hex[:10]}"
        if job_id in self._jobs:
            raise InputError(f"job id {job_id!r} is already queued; pick another id")
        if isinstance(job, ShippedJob):
            job = job.to_mapping()
        now = self._clock()
        record = Job(job_id, spec, "idle", tuple(target_clouds), None, now)
        self._jobs[job_id] = QueuedJob(job=record, spec=dict(job or {}))
        bisect.insort(self._order, (now, job_id))
        self._pending = None
        self._push_idle(record)
        return job_id

    def _push_idle(self, job: Job) -> None:
        heapq.heappush(self._idle.setdefault(job.spec.key, []), (job.submitted_at, job.id))

    def _set(self, job_id: str, **changes: Any) -> QueuedJob:
        queued = self._jobs[job_id]
        job_changes = {k: changes.pop(k) for k in ("status", "vm_id") if k in changes}
        queued = replace(queued, job=replace(queued.job, **job_changes), **changes)
        self._jobs[job_id] = queued
        self._pending = None
        at = (queued.job.submitted_at, job_id)
        i = bisect.bisect_left(self._order, at)
        listed = i < len(self._order) and self._order[i] == at
        if queued.job.status in ("done", "failed"):
            if listed:  # ended: out of the pending order
                del self._order[i]
        elif not listed:
            self._order.insert(i, at)
        return queued

    # -- read side ---------------------------------------------------------------
    def list(self, status: str | None = None) -> list[QueuedJob]:
        """All jobs, or those with ``status``, oldest first."""
        rows = sorted(self._jobs.values(), key=lambda q: (q.job.submitted_at, q.job.id))
        return [q for q in rows if status is None or q.job.status == status]

    def get(self, job_id: str) -> QueuedJob | None:
        return self._jobs.get(job_id)

    def pending(self) -> builtins.list[Job]:
        """Idle and running jobs, oldest first, as the planner wants them."""
        if self._pending is None:
            self._pending = [self._jobs[i].job for _, i in self._order]
        return self._pending  # shared until the next change: callers only read it

    def counts(self) -> dict[str, int]:
        return dict(Counter(q.job.status for q in self._jobs.values()))

    def reports(self) -> builtins.list[tuple[str, float, dict[str, Any]]]:
        """(image, finished_at, report) of finished jobs that left a report, newest first."""
        return self._reports[::-1]

    def recent_reports(self, per_site: int) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(image, report) of the newest ``per_site`` ok reports per (image, site), newest
        first: all that :func:`~hepstream.cloud.sitestats.site_stats` ranks by."""
        newest = [
            (at, n, key[0], rep)
            for key, reps in self._ok.items()
            for at, n, rep in reps[-per_site:]
        ]
        newest.sort(key=lambda t: (t[0], t[1]), reverse=True)
        return [(image, rep) for _, _, image, rep in newest]

    # -- worker side -------------------------------------------------------------
    def register_worker(self, vm_id: str) -> None:
        self._workers.setdefault(vm_id, self._clock())

    def workers(self) -> dict[str, float]:
        return dict(self._workers)

    def forget_worker(self, vm_id: str) -> None:
        self._workers.pop(vm_id, None)

    def claim(self, vm_id: str, spec: VMSpec) -> QueuedJob | None:
        """Give worker ``vm_id`` the oldest idle job for its image, size and owner."""
        heap = self._idle.get(spec.key, [])
        while heap:
            _, job_id = heapq.heappop(heap)
            if self._jobs[job_id].job.status == "idle":
                return self._set(job_id, status="running", vm_id=vm_id, started_at=self._clock())
        return None

    def assign(self, job_id: str, vm_id: str) -> bool:
        """Bind an idle job to a VM booted for it (drivers that pass the job at boot)."""
        queued = self._jobs.get(job_id)
        if queued is None or queued.job.status != "idle":
            return False
        self._set(job_id, status="running", vm_id=vm_id, started_at=self._clock())
        return True

    def finish(self, job_id: str, report: dict[str, Any] | None, error: str | None = None) -> str:
        """Record a job's end; ``done`` only when its report says ``ok``."""
        status, error = finish_status(report, error)
        now = self._clock()
        queued = self._set(job_id, status=status, finished_at=now, report=report, error=error)
        if report:
            image = queued.job.spec.image
            self._reports.append((image, now, report))
            if report.get("status") == "ok":
                key = (image, str(report.get("site", "")))
                self._ok.setdefault(key, []).append((now, len(self._reports), report))
        return status

    def requeue(self, job_id: str, reason: str, max_retries: int, count: bool = True) -> str:
        """Put a job whose VM broke back to idle, or fail it after ``max_retries``."""
        queued = self._jobs.get(job_id)
        if queued is None:
            return "missing"
        status, attempts, error = requeue_status(queued.attempts, reason, max_retries, count)
        if status == "failed":
            self._set(
                job_id,
                status="failed",
                vm_id=None,
                attempts=attempts,
                finished_at=self._clock(),
                error=error,
            )
            return "failed"
        queued = self._set(job_id, status="idle", vm_id=None, attempts=attempts, error=error)
        self._push_idle(queued.job)
        return "idle"
