"""``slurm``: one job array through ``sbatch``; state from ``scontrol``; retries by requeue.

The batch script maps each array index to one job's ``hepstream run`` command, so a
resubmission of some jobs is the same script with ``--array`` naming just those indices.
State comes from ``scontrol show job`` (``sacct`` needs ``slurmdbd``, which a cluster may
not run; ``scontrol`` keeps finished jobs for ``MinJobAge``). A task that failed for a
transient reason (killed by a signal, node failure, I/O) is put back with Slurm's own
``scontrol requeue``, so Slurm counts it (``Restarts``) and schedules it again.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hepstream.dataset.engines.base import Outcome, Progress, is_transient, job_argv
from hepstream.dataset.record import Dataset
from hepstream.dataset.split import DatasetJob
from hepstream.errors import ConfigError, HepstreamError
from hepstream.report import write_json_atomic

#: Slurm job states after which a task will not run again by itself.
FINISHED = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "PREEMPTED",
    }
)
#: Finished states that say nothing about the job itself: always worth one more try.
LOST = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED"})


class SlurmError(HepstreamError):
    exit_code = 1


@dataclass(frozen=True)
class TaskState:
    """One array task as ``scontrol show job`` reports it."""

    index: int
    state: str
    exit_code: int
    signal: int
    restarts: int
    job_id: str


def batch_script(dataset: Dataset, jobs: Sequence[DatasetJob], python: str | None = None) -> str:
    """The ``sbatch`` script: array index = the job's position in the dataset."""
    index = {j.name: i for i, j in enumerate(dataset.jobs)}
    lines = [
        "#!/bin/bash",
        f"# written by hepstream dataset submit --engine slurm for {dataset.path}",
        'case "$SLURM_ARRAY_TASK_ID" in',
    ]
    for job in jobs:
        lines.append(f"  {index[job.name]}) exec {shlex.join(job_argv(job.spec, python))} ;;")
    lines += [
        '  *) echo "hepstream: error: no job for array index $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
    ]
    return "\n".join(lines) + "\n"


def array_spec(indices: Sequence[int], max_running: int | None = None) -> str:
    """``--array`` value: ranges of consecutive indices, e.g. ``0-3,7,9-10%4``."""
    parts: list[str] = []
    ordered = sorted(indices)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts) + (f"%{max_running}" if max_running else "")


def parse_scontrol(text: str) -> list[TaskState]:
    """Array tasks from ``scontrol show job -o ARRAY_ID`` (one line per record).

    A pending record may stand for several tasks (``ArrayTaskId=3-5,7``): it is expanded.
    """
    out = []
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        if "ArrayTaskId" not in fields:
            continue
        code, _, sig = fields.get("ExitCode", "0:0").partition(":")
        for index in _expand(fields["ArrayTaskId"].split("%")[0]):
            out.append(
                TaskState(
                    index,
                    fields.get("JobState", "UNKNOWN"),
                    int(code or 0),
                    int(sig or 0),
                    int(fields.get("Restarts", 0)),
                    fields.get("JobId", ""),
                )
            )
    return out


def _expand(ids: str) -> list[int]:
    out: list[int] = []
    for part in ids.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def should_requeue(task: TaskState, retries: int) -> bool:
    """Pure retry rule: a finished, failed task with a transient cause and tries left."""
    if task.state not in FINISHED or task.state == "COMPLETED" or task.restarts >= retries:
        return False
    if task.state in LOST or task.signal:
        return True
    if task.state == "CANCELLED":
        return False  # someone meant it
    return is_transient(task.exit_code)


class SlurmEngine:
    """Submit with ``sbatch``; with ``wait`` (default) follow the array to its end."""

    name: ClassVar[str] = "slurm"

    def __init__(
        self,
        *,
        partition: str | None = None,
        max_running: int | None = None,
        retries: int = 2,
        extra_args: Sequence[str] = (),
        wait: bool = True,
        poll_s: float = 1.0,
        timeout_s: float = 24 * 3600.0,
        env: dict[str, str] | None = None,
    ) -> None:
        if retries < 0 or (max_running is not None and max_running < 1):
            raise ConfigError("--retries must be >= 0 and --max-running >= 1")
        self.partition = partition
        self.max_running = max_running
        self.retries = retries
        self.extra_args = list(extra_args)
        self.wait = wait
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.env = env

    def _tool(self, *argv: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60)
        except FileNotFoundError:
            raise ConfigError(f"{argv[0]} not found: run on a Slurm submit host") from None
        if done.returncode != 0:
            raise SlurmError(f"{' '.join(argv[:2])} failed: {done.stderr.strip() or done.stdout}")
        return done.stdout

    def submit(
        self, dataset: Dataset, jobs: Sequence[DatasetJob], progress: Progress
    ) -> list[Outcome]:
        index = {j.name: i for i, j in enumerate(dataset.jobs)}
        folder = dataset.path / "slurm"
        folder.mkdir(exist_ok=True)
        number = len(list(folder.glob("*.sbatch")))
        script = folder / f"{number:03d}.sbatch"
        write_json_atomic(script, batch_script(dataset, jobs))  # temp + rename: any text
        argv = [
            "sbatch",
            "--parsable",
            f"--array={array_spec([index[j.name] for j in jobs], self.max_running)}",
            f"--job-name=hepstream-{dataset.name}",
            "--requeue",
            "--open-mode=append",
            f"--output={dataset.path / 'logs'}/slurm-%A_%a.out",
            "--cpus-per-task=1",
            f"--chdir={Path.cwd()}",
        ]
        if self.partition:
            argv.append(f"--partition={self.partition}")
        argv += [*self.extra_args, str(script)]
        array_id = self._tool(*argv).strip().split(";")[0]
        ids = {j.name: f"{array_id}_{index[j.name]}" for j in jobs}
        dataset.record_submission(self.name, list(ids), array_id=array_id, ids=ids)
        if not self.wait:
            return [Outcome(n, "submitted", engine_id=i) for n, i in ids.items()]
        return self.follow(dataset, jobs, array_id, progress)

    def tasks(self, array_id: str) -> dict[int, TaskState]:
        return {
            t.index: t
            for t in parse_scontrol(self._tool("scontrol", "show", "job", "-o", array_id))
        }

    def follow(
        self, dataset: Dataset, jobs: Sequence[DatasetJob], array_id: str, progress: Progress
    ) -> list[Outcome]:
        """Poll until every task finished for good, requeueing transient failures."""
        index = {j.name: i for i, j in enumerate(dataset.jobs)}
        todo = {index[j.name]: j for j in jobs}
        done: dict[int, Outcome] = {}
        end = time.monotonic() + self.timeout_s
        while len(done) < len(todo):
            if time.monotonic() > end:
                raise SlurmError(f"array {array_id} not finished after {self.timeout_s:.0f} s")
            for i, task in self.tasks(array_id).items():
                if i not in todo or i in done or task.state not in FINISHED:
                    continue
                job = todo[i]
                if should_requeue(task, self.retries):
                    progress.job_retry(
                        job.name, f"{task.state} exit {task.exit_code}:{task.signal}"
                    )
                    self._tool("scontrol", "requeue", task.job_id)
                    continue
                ok = task.state == "COMPLETED" and task.exit_code == 0
                report = dataset.report_of(job)
                error = (
                    None
                    if ok
                    else (
                        (report or {}).get("error")
                        or f"{task.state} exit {task.exit_code}:{task.signal}"
                    )
                )
                done[i] = Outcome(
                    job.name,
                    "ok" if ok else "failed",
                    task.restarts + 1,
                    error,
                    f"{array_id}_{i}",
                    report,
                )
                progress.job_done(job.name, report, ok, error)
            if len(done) < len(todo):
                time.sleep(self.poll_s)
        return [done[index[j.name]] for j in jobs]
