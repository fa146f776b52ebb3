"""What every engine shares: the interface, the job command, the retry rule, progress."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from hepstream.dataset.record import Dataset
from hepstream.dataset.split import DatasetJob
from hepstream.errors import PERMANENT_EXIT_CODES
from hepstream.jobspec import JobSpec


def is_transient(exit_code: int) -> bool:
    """A failure worth retrying: killed by a signal (negative, or 128 + N), a server that did
    not answer (75), an output or internal error; never a config, input or plugin error
    (:data:`~hepstream.errors.PERMANENT_EXIT_CODES`): those fail the same way every time."""
    return exit_code != 0 and exit_code not in PERMANENT_EXIT_CODES


def job_argv(spec: JobSpec, python: str | None = None) -> list[str]:
    """The process a batch slot runs for one job: ``python -m hepstream run ...``."""
    return [python or sys.executable, "-m", "hepstream", *spec.to_argv()]


@dataclass
class Outcome:
    """What an engine knows of one job after ``submit``."""

    name: str
    status: str  # ok | failed | submitted (a batch system holds it) | written (condor)
    attempts: int = 0
    error: str | None = None
    engine_id: str | None = None
    report: dict[str, Any] | None = None


class Progress(Protocol):
    """Told about each job as it ends (the CLI shows jobs and events); a failed job's
    ``error`` is its report's line, or what the engine knows when there is no report."""

    def job_done(
        self, name: str, report: dict[str, Any] | None, ok: bool, error: str | None = None
    ) -> None: ...

    def job_retry(self, name: str, reason: str) -> None: ...


class QuietProgress:
    """Progress that shows nothing (library use, tests)."""

    def job_done(
        self, name: str, report: dict[str, Any] | None, ok: bool, error: str | None = None
    ) -> None:
        pass

    def job_retry(self, name: str, reason: str) -> None:
        pass


class Engine(Protocol):
    """Runs a dataset's jobs; ``submit`` records a submission in the dataset directory."""

    name: ClassVar[str]

    def submit(
        self, dataset: Dataset, jobs: Sequence[DatasetJob], progress: Progress
    ) -> list[Outcome]: ...
