"""A job over several worker processes, its pure parts: who reads which input, the order
output is written in, and one report made of the workers' reports.

The processes themselves are in :mod:`hepstream.job.processes`; everything here is plain
data that tests drive directly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from hepstream.report import JobReport

#: Output columns held for inputs ahead of the one being written, per worker, before that
#: worker is left to wait (its pipe full): output is a few % of the input, so a worker one
#: input ahead stays well below this and never waits.
HELD_BYTES = 256 * 1024 * 1024


def worker_count(asked: int, inputs: int) -> int:
    """The processes a job runs: ``asked`` (0: one per core this process may use), never
    more than there are inputs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    wanted = asked or cores or 1
    return max(1, min(wanted, inputs))


def deal(inputs: int, workers: int) -> list[list[int]]:
    """The input indices of each worker: dealt out in turn (``w, w+N, ...``), so workers
    reading files of similar size finish together and reach each input about when the
    writer does."""
    return [list(range(w, inputs, workers)) for w in range(workers)]


class InputOrder:
    """Releases the workers' output columns in input order, as one process writes them.

    A worker's inputs come in order, so a message about input ``i`` means its earlier ones
    are complete; :meth:`add` holds columns of inputs ahead of the first incomplete one and
    returns what may be written now.
    """

    def __init__(self, shares: Sequence[Sequence[int]]) -> None:
        self.shares = [list(share) for share in shares]
        self.total = sum(len(share) for share in shares)
        self.owner = {index: w for w, share in enumerate(self.shares) for index in share}
        self.head = 0  # the first input not yet complete
        self.complete: set[int] = set()
        self._next = [0] * len(self.shares)  # per worker: position of its first open input
        self._held: dict[int, list[tuple[Any, int]]] = {}
        self.held_bytes = [0] * len(self.shares)

    def add(self, worker: int, index: int, columns: Any, size: int = 0) -> list[Any]:
        """Columns of input ``index`` from ``worker`` (``size`` bytes): what to write now."""
        self._reach(worker, index)
        self._held.setdefault(index, []).append((columns, size))
        self.held_bytes[worker] += size
        return self._release()

    def finish(self, worker: int) -> list[Any]:
        """``worker`` is done: all its inputs are complete."""
        self._reach(worker, self.total)
        return self._release()

    def waits(self, worker: int) -> bool:
        """Whether ``worker`` is left waiting: it holds :data:`HELD_BYTES` of inputs ahead of
        the one being written (the writer's own worker never waits)."""
        return self.owner.get(self.head) != worker and self.held_bytes[worker] >= HELD_BYTES

    def _reach(self, worker: int, index: int) -> None:
        share, at = self.shares[worker], self._next[worker]
        while at < len(share) and share[at] < index:
            self.complete.add(share[at])
            at += 1
        self._next[worker] = at

    def _release(self) -> list[Any]:
        out = []
        while self.head < self.total:
            for columns, size in self._held.pop(self.head, []):
                self.held_bytes[self.owner[self.head]] -= size
                out.append(columns)
            if self.head not in self.complete:
                break
            self.head += 1
        return out


#: Report fields that add up over workers (peaks too: the workers run at once).
_SUMMED = (
    "events_read", "events_selected", "events_preselected", "clusters_skipped",
    "bytes_read", "bytes_needed", "bytes_unplanned", "requests", "vector_reads",
    "cache_hits", "cache_misses", "cache_peak_bytes", "reads_waited", "read_retries",
    "cache_bytes", "origin_bytes", "short_reads", "select_s", "io_wait_s", "cache", "peak_rss_mb", "cpu_s",
)  # fmt: skip


def combine(report: JobReport, parts: Sequence[tuple[JobReport, Sequence[int]]]) -> None:
    """Fold the workers' reports (each with its share of input indices) into ``report``:
    counts, bytes, CPU and peaks summed, files back in input order (of a worker that
    listed its inputs: one that failed first has none), ``partial`` if any input was
    skipped."""
    for part, share in parts:
        for name in _SUMMED:
            setattr(report, name, getattr(report, name) + getattr(part, name))
        report.cache_fallback = report.cache_fallback or part.cache_fallback
        if len(part.files) == len(share):
            for index, entry in zip(share, part.files, strict=True):
                report.files[index] = dataclasses.replace(entry)
        if part.conditions is not None:
            report.conditions = _combine_conditions(report.conditions, part.conditions)
    report.select_s = round(report.select_s, 4)
    report.io_wait_s = round(report.io_wait_s, 4)
    report.peak_rss_mb = round(report.peak_rss_mb, 1)
    report.status = "partial" if any(f.status == "skipped" for f in report.files) else "ok"


def _combine_conditions(have: dict[str, Any] | None, more: dict[str, Any]) -> dict[str, Any]:
    """Conditions of two workers: the same provenance; sources joined, costs added."""
    if have is None:
        return dict(more)
    out = dict(have)
    for key, value in more.items():
        if isinstance(value, list):
            out[key] = sorted(set(out.get(key, [])) | set(value))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = round(out.get(key, 0) + value, 4)
    return out
