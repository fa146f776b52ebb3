"""The embedded job queue: SQLite, one machine, no batch system needed.

Jobs carry the VM they need (:class:`VMSpec`) and the job spec the VM agent runs (plugin,
inputs, output, report, ...). Workers claim only jobs of their own image and owner.
"""

from __future__ import annotations

import builtins  # the queue has a method named list: annotations below mean the type
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hepstream.cloud.model import Job, VMSpec
from hepstream.cloud.queues.base import QueuedJob, finish_status, requeue_status
from hepstream.errors import InputError
from hepstream.jobspec import ShippedJob

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    image TEXT NOT NULL,
    cpus INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    target_clouds TEXT NOT NULL DEFAULT '[]',
    spec TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'idle',
    vm_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    report TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, submitted_at);
CREATE TABLE IF NOT EXISTS workers (
    vm_id TEXT PRIMARY KEY,
    registered_at REAL NOT NULL,
    last_seen REAL NOT NULL
);
"""


def connect(path: str | Path) -> sqlite3.Connection:
    """Open the shared SQLite file in WAL mode so the shim and the CLI can both use it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


@contextmanager
def _txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


class LocalQueue:
    """Jobs and workers in one SQLite file (shared with the shim's state)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self._clock = clock
        self._conn = connect(self.path)
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    # -- submit side -------------------------------------------------------------
    def add(
        self,
        spec: VMSpec,
        job: ShippedJob | dict[str, Any] | None = None,
        target_clouds: Sequence[str] = (),
        job_id: str | None = None,
    ) -> str:
        """Queue one job needing a VM like ``spec``; returns its id.

        The row holds ``job``'s mapping (:meth:`ShippedJob.to_mapping`); a plain mapping
        is stored as given (placeholder jobs of the shim's tests) and validated by
        :meth:`QueuedJob.shipped` or the VM agent when it is read back.
        """
        job_id = job_id or f"job-{uuid.uuid4().hex[:10]}"
        if isinstance(job, ShippedJob):
            job = job.to_mapping()
        try:
            self._conn.execute(
                "INSERT INTO jobs (id, owner, image, cpus, memory_mb, target_clouds, spec,"
                " submitted_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    spec.owner,
                    spec.image,
                    spec.cpus,
                    spec.memory_mb,
                    json.dumps(list(target_clouds)),
                    json.dumps(job or {}),
                    self._clock(),
                ),
            )
        except sqlite3.IntegrityError:
            raise InputError(f"job id {job_id!r} is already queued; pick another id") from None
        return job_id

    # -- read side ---------------------------------------------------------------
    def _row(self, row: sqlite3.Row) -> QueuedJob:
        job = Job(
            id=row["id"],
            spec=VMSpec(row["image"], row["cpus"], row["memory_mb"], row["owner"]),
            status=row["status"],
            target_clouds=tuple(json.loads(row["target_clouds"])),
            vm_id=row["vm_id"],
            submitted_at=row["submitted_at"],
        )
        return QueuedJob(
            job=job,
            spec=json.loads(row["spec"]),
            attempts=row["attempts"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            report=json.loads(row["report"]) if row["report"] else None,
            error=row["error"],
        )

    def list(self, status: str | None = None) -> list[QueuedJob]:
        """All jobs, or those with ``status``, oldest first."""
        if status:
            rows = self._conn.execute(
                "SELECT * FROM jobs WHERE status=? ORDER BY submitted_at, id", (status,)
            )
        else:
            rows = self._conn.execute("SELECT * FROM jobs ORDER BY submitted_at, id")
        return [self._row(r) for r in rows]

    def get(self, job_id: str) -> QueuedJob | None:
        row = self._conn.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return self._row(row) if row else None

    def pending(self) -> builtins.list[Job]:
        """Idle and running jobs, as the planner wants them."""
        rows = self._conn.execute(
            "SELECT * FROM jobs WHERE status IN ('idle','running') ORDER BY submitted_at, id"
        )
        return [self._row(r).job for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {r[0]: r[1] for r in rows}

    def reports(self) -> builtins.list[tuple[str, float, dict[str, Any]]]:
        """(image, finished_at, report) of finished jobs that left a report, newest first."""
        rows = self._conn.execute(
            "SELECT image, finished_at, report FROM jobs WHERE report IS NOT NULL"
            " ORDER BY finished_at DESC"
        )
        return [(r[0], r[1] or 0.0, json.loads(r[2])) for r in rows]

    def recent_reports(self, per_site: int) -> builtins.list[tuple[str, dict[str, Any]]]:
        """(image, report) of the newest ``per_site`` ok reports per (image, site), newest
        first: all that :func:`~hepstream.cloud.sitestats.site_stats` ranks by."""
        rows = self._conn.execute(
            "SELECT image, report FROM (SELECT image, report, finished_at, ROW_NUMBER() OVER"
            " (PARTITION BY image, json_extract(report, '$.site') ORDER BY finished_at DESC)"
            " AS n FROM jobs WHERE report IS NOT NULL AND json_extract(report, '$.status')='ok')"
            " WHERE n <= ? ORDER BY finished_at DESC",
            (per_site,),
        )
        return [(r[0], json.loads(r[1])) for r in rows]

    # -- worker side -------------------------------------------------------------
    def register_worker(self, vm_id: str) -> None:
        """A VM's agent says it is up; the shim counts the VM as registered."""
        now = self._clock()
        self._conn.execute(
            "INSERT INTO workers (vm_id, registered_at, last_seen) VALUES (?,?,?)"
            " ON CONFLICT(vm_id) DO UPDATE SET last_seen=excluded.last_seen",
            (vm_id, now, now),
        )

    def workers(self) -> dict[str, float]:
        """Registered VM ids and when they registered."""
        return {r[0]: r[1] for r in self._conn.execute("SELECT vm_id, registered_at FROM workers")}

    def forget_worker(self, vm_id: str) -> None:
        self._conn.execute("DELETE FROM workers WHERE vm_id=?", (vm_id,))

    def claim(self, vm_id: str, spec: VMSpec) -> QueuedJob | None:
        """Give worker ``vm_id`` the oldest idle job for its image, size and owner."""
        with _txn(self._conn) as c:
            row = c.execute(
                "SELECT * FROM jobs WHERE status='idle' AND image=? AND cpus=? AND memory_mb=?"
                " AND owner=? ORDER BY submitted_at, id LIMIT 1",
                (spec.image, spec.cpus, spec.memory_mb, spec.owner),
            ).fetchone()
            if row is None:
                return None
            c.execute(
                "UPDATE jobs SET status='running', vm_id=?, started_at=? WHERE id=?",
                (vm_id, self._clock(), row["id"]),
            )
        return self.get(row["id"])

    def assign(self, job_id: str, vm_id: str) -> bool:
        """Bind an idle job to a VM booted for it (drivers that pass the job at boot)."""
        cur = self._conn.execute(
            "UPDATE jobs SET status='running', vm_id=?, started_at=? WHERE id=? AND status='idle'",
            (vm_id, self._clock(), job_id),
        )
        return cur.rowcount == 1

    def finish(self, job_id: str, report: dict[str, Any] | None, error: str | None = None) -> str:
        """Record a job's end; ``done`` only when its report says ``ok``."""
        status, error = finish_status(report, error)
        self._conn.execute(
            "UPDATE jobs SET status=?, finished_at=?, report=?, error=? WHERE id=?",
            (status, self._clock(), json.dumps(report) if report else None, error, job_id),
        )
        return status

    def requeue(self, job_id: str, reason: str, max_retries: int, count: bool = True) -> str:
        """Put a job whose VM broke back to idle, or fail it after ``max_retries``.

        ``count=False`` for a VM that never got the job (boot refused by the API).
        """
        with _txn(self._conn) as c:
            row = c.execute("SELECT attempts FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return "missing"
            status, attempts, error = requeue_status(row[0], reason, max_retries, count)
            if status == "failed":
                c.execute(
                    "UPDATE jobs SET status='failed', vm_id=NULL, attempts=?, finished_at=?,"
                    " error=? WHERE id=?",
                    (attempts, self._clock(), error, job_id),
                )
                return "failed"
            c.execute(
                "UPDATE jobs SET status='idle', vm_id=NULL, attempts=?, error=? WHERE id=?",
                (attempts, error, job_id),
            )
        return "idle"
