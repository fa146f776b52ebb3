"""``local``: N concurrent ``hepstream run`` processes on this machine."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from hepstream.dataset.engines.base import Outcome, Progress, is_transient, job_argv
from hepstream.dataset.record import Dataset
from hepstream.dataset.split import DatasetJob
from hepstream.errors import ConfigError


class LocalEngine:
    """Each job a child process; a transient failure is run again up to ``retries`` times."""

    name: ClassVar[str] = "local"

    def __init__(
        self, concurrency: int | None = None, retries: int = 2, env: dict[str, str] | None = None
    ) -> None:
        self.concurrency = concurrency or os.cpu_count() or 1
        if self.concurrency < 1 or retries < 0:
            raise ConfigError("--concurrency must be >= 1 and --retries >= 0")
        self.retries = retries
        self.env = env

    def submit(
        self, dataset: Dataset, jobs: Sequence[DatasetJob], progress: Progress
    ) -> list[Outcome]:
        dataset.record_submission(self.name, [j.name for j in jobs], concurrency=self.concurrency)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="hepstream-job") as pool:
            return list(pool.map(lambda job: self._run(dataset, job, progress), jobs))

    def _run(self, dataset: Dataset, job: DatasetJob, progress: Progress) -> Outcome:
        log = dataset.path / "logs" / f"{job.name}.local.log"
        outcome = Outcome(job.name, "failed")
        for attempt in range(1, self.retries + 2):
            outcome.attempts = attempt
            with log.open("a") as handle:
                handle.write(f"# attempt {attempt}\n")
                handle.flush()
                rc = subprocess.call(
                    job_argv(job.spec),
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                )
            report = _read(str(job.spec.report))
            outcome.report = report
            if rc == 0:
                outcome.status, outcome.error = "ok", None
                break
            outcome.error = (report or {}).get("error") or f"hepstream run exited {rc} ({log})"
            if not is_transient(rc) or attempt > self.retries:
                break
            progress.job_retry(job.name, outcome.error)
        progress.job_done(job.name, outcome.report, outcome.status == "ok", outcome.error)
        return outcome


def _read(path: str) -> dict[str, Any] | None:
    """The report a try left, as written (None when there is none or it is not JSON); an
    incomplete one still names the error."""
    try:
        with open(path) as handle:
            report: dict[str, Any] = json.load(handle)
    except (OSError, json.JSONDecodeError):
        return None
    return report
