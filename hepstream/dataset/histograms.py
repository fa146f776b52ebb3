"""A dataset's histograms and cut flow: every ok job's, merged exactly, whatever engine ran
them and in whatever order they finished.

The merge is complete only when every job of the dataset is ok: then it is written to
``DIR/histograms.root``, bit for bit what one job over all the inputs writes. Otherwise
the jobs that are there go to ``DIR/histograms-partial.root`` and ``histograms.root`` is
removed, so no stale file passes for the whole dataset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hepstream.dataset.collect import JobRow
from hepstream.dataset.record import Dataset, read_report
from hepstream.errors import InputError
from hepstream.hists.store import Results, read_results, sidecar_of
from hepstream.io.partfiles import atomic_path
from hepstream.io.urls import is_remote

COMPLETE = "histograms.root"
PARTIAL = "histograms-partial.root"


@dataclass(frozen=True)
class DatasetHistograms:
    """What collect merged: where it is, how many jobs are in it, and the cut flow."""

    path: str | None
    complete: bool
    jobs_merged: int
    jobs: int
    names: list[str] = field(default_factory=list)
    cutflow: list[tuple[str, int]] = field(default_factory=list)
    #: The merged histograms themselves (for plots; not part of the JSON).
    results: Results = field(default_factory=Results, repr=False, compare=False)

    def record(self) -> dict[str, Any]:
        """The JSON-ready summary for the dataset report."""
        return {
            "path": self.path,
            "complete": self.complete,
            "jobs_merged": self.jobs_merged,
            "jobs": self.jobs,
            "names": self.names,
            "cutflow": [[cut, n] for cut, n in self.cutflow],
        }

    def state(self) -> str:
        """``all N jobs``, or how many are missing from the merge."""
        if self.complete:
            return f"all {self.jobs} jobs"
        return f"{self.jobs_merged} of {self.jobs} jobs only: NOT the whole dataset"

    def lines(self) -> list[str]:
        """What collect prints under its table."""
        names = ", ".join(self.names) or "cut flow only"
        from hepstream.hists.text import cutflow_text

        out = [f"histograms: {self.path} ({names}; {self.state()})"]
        if self.cutflow:
            out.append(cutflow_text(self.cutflow))
        return out


def results_file(output: str) -> str:
    """Where a job's histograms are: its ROOT output, or the sidecar of a Parquet one."""
    return output if not output.lower().endswith(".parquet") else sidecar_of(output)


def merge_dataset(dataset: Dataset, rows: Sequence[JobRow]) -> DatasetHistograms | None:
    """Merge the ok jobs' histograms and cut flows (None when no ok job has any); written
    beside the dataset record as :data:`COMPLETE` or :data:`PARTIAL`."""
    ok = {r.name for r in rows if r.status == "ok"}
    total = Results()
    merged = 0
    for job in dataset.jobs:
        if job.name not in ok:
            continue
        part = _job_results(dataset, job.name, str(job.spec.output), str(job.spec.report))
        try:
            total.merge(part)
        except ValueError as err:  # jobs of another plugin version in the same dataset
            raise InputError(
                f"job {job.name}: its histograms do not merge with the others' ({err}); "
                f"resubmit the dataset's jobs with one plugin"
            ) from None
        merged += 1
    if not total:  # a plugin of events only: nothing but an empty cut flow
        return None
    complete = merged == len(dataset.jobs) and len(ok) == len(dataset.jobs)
    target = dataset.path / (COMPLETE if complete else PARTIAL)
    _write(total, target)
    (dataset.path / (PARTIAL if complete else COMPLETE)).unlink(missing_ok=True)
    return DatasetHistograms(
        str(target),
        complete,
        merged,
        len(dataset.jobs),
        list(total.histograms),
        total.cutflow,
        total,
    )


def _job_results(dataset: Dataset, name: str, output: str, report: str) -> Results:
    """One ok job's histograms (from its output) and cut flow (from its report)."""
    histograms = Results()
    where = results_file(output)
    if is_remote(where):
        raise InputError(
            f"job {name}: its output {output} is on a server; collect merges histograms of "
            f"local outputs: copy them to a local path first"
        )
    path = where if os.path.isabs(where) else str(dataset.path / where)
    if os.path.exists(path):
        try:
            found = read_results(path)
        except ValueError as err:
            raise InputError(
                f"job {name}: histograms in {path} cannot be read ({err}); resubmit the job"
            ) from None
        histograms = found or histograms
    record = read_report(Path(report)) or {}
    cutflow = [(str(cut), int(n)) for cut, n in record.get("cutflow") or []]
    return Results(histograms.histograms, cutflow)


def _write(results: Results, target: Path) -> None:
    """``results`` as a ROOT file at ``target`` (a temp name first, renamed when whole)."""
    import uproot

    from hepstream.hists.store import write_results

    with atomic_path(target) as part, uproot.recreate(part) as file:
        write_results(file, results)
