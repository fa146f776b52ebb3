"""Pure splitting of a dataset into jobs: by files, or by events on cluster boundaries.

Nothing here opens a file: :mod:`hepstream.dataset.layout` reads each input's entry count
and cluster offsets, and these functions turn :class:`FileLayout` lists into job groups
and :class:`~hepstream.jobspec.JobSpec` records with stable names and paths under one
dataset directory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from hepstream.errors import ConfigError
from hepstream.jobspec import JobSpec

#: One input of a job: the file and the entries ``[start, stop)`` it reads of it.
Piece = tuple[str, int, int]


@dataclass(frozen=True)
class FileLayout:
    """What splitting needs of one input: its entries and its cluster boundaries."""

    path: str
    entries: int
    #: Entry offsets of the TTree's clusters, ``0`` first and ``entries`` last.
    clusters: tuple[int, ...]


@dataclass(frozen=True)
class DatasetJob:
    """One job of a dataset: a stable name, its spec, the entries it must read."""

    name: str
    spec: JobSpec
    events: int


def by_files(layouts: Sequence[FileLayout], files_per_job: int) -> list[list[Piece]]:
    """Consecutive groups of ``files_per_job`` whole files."""
    if files_per_job < 1:
        raise ConfigError("--files-per-job must be >= 1")
    return [
        [(f.path, 0, f.entries) for f in layouts[i : i + files_per_job]]
        for i in range(0, len(layouts), files_per_job)
    ]


def by_events(layouts: Sequence[FileLayout], events_per_job: int) -> list[list[Piece]]:
    """Jobs of about ``events_per_job`` entries, cut only on cluster boundaries.

    Files are taken in order; a job may end inside a file (the next job starts there) and
    may span several small files. A job is closed at the first cluster edge at or past the
    target, so every cluster is read by exactly one job and once only; a cluster larger
    than the target is one job by itself.
    """
    if events_per_job < 1:
        raise ConfigError("--events-per-job must be >= 1")
    jobs: list[list[Piece]] = []
    current: list[Piece] = []
    size = 0
    for layout in layouts:
        edges = _edges(layout)
        start = 0
        for edge in edges[1:]:
            if size + (edge - start) >= events_per_job:
                current.append((layout.path, start, edge))
                jobs.append(current)
                current, size, start = [], 0, edge
        if start < layout.entries:
            current.append((layout.path, start, layout.entries))
            size += layout.entries - start
    if current:
        jobs.append(current)
    return jobs


def _edges(layout: FileLayout) -> list[int]:
    return sorted({0, layout.entries, *(c for c in layout.clusters if 0 <= c <= layout.entries)})


def job_name(index: int) -> str:
    """``job-00042``: sorts in submission order, names a job across resubmissions."""
    return f"job-{index:05d}"


def make_jobs(
    groups: Sequence[Sequence[Piece]],
    layouts: Sequence[FileLayout],
    template: JobSpec,
    dataset_dir: str,
    suffix: str = ".parquet",
) -> list[DatasetJob]:
    """One :class:`DatasetJob` per group, settings from ``template``.

    Output and report of job ``NAME`` are ``DIR/outputs/NAME.SUFFIX`` and
    ``DIR/reports/NAME.json``. Entry ranges are set only on a job that reads part of a
    file, so whole-file jobs run on any hepstream.
    """
    entries = {f.path: f.entries for f in layouts}
    base = dataset_dir.rstrip("/")
    jobs = []
    for index, pieces in enumerate(groups):
        name = job_name(index)
        whole = all(a == 0 and b == entries.get(p, b) for p, a, b in pieces)
        spec = dataclasses.replace(
            template,
            inputs=tuple(p for p, _, _ in pieces),
            output=f"{base}/outputs/{name}{suffix}",
            report=f"{base}/reports/{name}.json",
            entry_ranges=() if whole else tuple((a, b) for _, a, b in pieces),
        )
        jobs.append(DatasetJob(name, spec, sum(b - a for _, a, b in pieces)))
    return jobs
