"""``dask``: each job a task on a ``distributed`` cluster at a user-given address.

The task runs the job in the worker process (:func:`run_task`), as coffea's executors do,
and returns its report. Retries are Dask's own: a task whose worker dies is rescheduled
by the scheduler on another worker (up to its ``allowed-failures``), and a task that
raises a transient error is re-run ``retries`` times (``Client.submit(retries=...)``).
Config, input and plugin errors are returned as failed reports instead, so they are not
retried (:func:`~hepstream.dataset.engines.base.is_transient`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from types import ModuleType
from typing import Any, ClassVar

from hepstream.dataset.engines.base import Outcome, Progress, is_transient
from hepstream.dataset.record import Dataset
from hepstream.dataset.split import DatasetJob
from hepstream.errors import ConfigError, HepstreamError
from hepstream.job.runner import run_job
from hepstream.jobspec import JobSpec


def _distributed() -> ModuleType:
    """The ``distributed`` package; a ConfigError saying how to install it."""
    # lazy: the optional `dask` extra, ~220 ms to import (python -X importtime)
    try:
        import distributed
    except ImportError:
        raise ConfigError(
            "--engine dask needs the distributed package: pip install distributed"
        ) from None
    return distributed


def run_task(mapping: dict[str, Any]) -> dict[str, Any]:
    """One job in a Dask worker; its report as a dict (also written to the spec's report)."""
    spec = JobSpec.from_mapping(mapping)
    try:
        return run_job(spec).asdict()
    except HepstreamError as err:
        if is_transient(err.exit_code):  # raised: Dask runs it again (retries=)
            raise
        # a config, input or plugin error is the same on any worker: returned, not retried
        return {"status": "failed", "error": str(err), "site": spec.site}


class DaskEngine:
    """Jobs as tasks of a ``distributed`` scheduler at ``address`` (``tcp://host:port``)."""

    name: ClassVar[str] = "dask"

    def __init__(self, address: str, *, retries: int = 2, connect_timeout_s: float = 10.0) -> None:
        if not address:
            raise ConfigError("--address is required for --engine dask (tcp://host:8786)")
        if retries < 0:
            raise ConfigError("--retries must be >= 0")
        self.address = address
        self.retries = retries
        self.connect_timeout_s = connect_timeout_s

    def client(self) -> Any:
        """A client of the scheduler at ``address`` (a ConfigError if it does not answer)."""
        distributed = _distributed()
        try:
            return distributed.Client(
                self.address, timeout=self.connect_timeout_s, set_as_default=False
            )
        except OSError as err:
            raise ConfigError(f"cannot reach the Dask scheduler at {self.address}: {err}") from None

    def submit(
        self, dataset: Dataset, jobs: Sequence[DatasetJob], progress: Progress
    ) -> list[Outcome]:
        as_completed = _distributed().as_completed
        token = uuid.uuid4().hex[:8]
        keys = {j.name: f"hepstream-{dataset.name}-{j.name}-{token}" for j in jobs}
        dataset.record_submission(
            self.name, [j.name for j in jobs], address=self.address, keys=keys
        )
        outcomes: dict[str, Outcome] = {}
        with self.client() as client:
            futures = {
                client.submit(
                    run_task,
                    job.spec.to_mapping(),
                    key=keys[job.name],
                    retries=self.retries,
                    pure=False,
                ): job
                for job in jobs
            }
            for future in as_completed(futures, loop=client.loop):
                job = futures[future]
                try:
                    report = future.result()
                    ok = report.get("status") == "ok"
                    error = report.get("error")
                except Exception as err:  # KilledWorker, or a transient error out of retries
                    report, ok = dataset.report_of(job), False
                    error = (report or {}).get("error") or f"{type(err).__name__}: {err}"
                outcomes[job.name] = Outcome(
                    job.name, "ok" if ok else "failed", 0, error, keys[job.name], report
                )
                progress.job_done(job.name, report, ok, error)
        return [outcomes[j.name] for j in jobs]
