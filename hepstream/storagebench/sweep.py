"""``hepstream bench storage``: how fast a storage endpoint feeds N concurrent analysis jobs.

The runner's own reader opens the file and plans its reads
(:mod:`~hepstream.storagebench.pattern`); many asynchronous readers per process then replay
those requests (:mod:`~hepstream.storagebench.readers`), read-only and bounded in time and
requests per level, so site admins can run it against production storage, and compare with
as many concurrent ``xrdcp`` copies. This module sweeps the concurrency levels and read-ahead
settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from hepstream.errors import ConfigError, InputError
from hepstream.io import StreamConfig
from hepstream.storagebench.model import BenchConfig, LevelResult, ReadPattern, summarise
from hepstream.storagebench.readers import run_readers, split_jobs, xrdcp_level


def job_levels(max_jobs: int) -> list[int]:
    """Concurrency levels 1, 2, 4, ... up to and always including ``max_jobs``."""
    if max_jobs < 1:
        raise ConfigError(f"--max-jobs {max_jobs} must be >= 1")
    levels, n = [], 1
    while n < max_jobs:
        levels.append(n)
        n *= 2
    levels.append(max_jobs)
    return levels


def run_level(
    pattern: ReadPattern, stream: StreamConfig, bench: BenchConfig, jobs: int
) -> LevelResult:
    """Run ``jobs`` readers together once, ``bench.readers_per_process`` asynchronous
    readers per process; every one starts at the same instant."""
    groups = split_jobs(jobs, bench.readers_per_process)
    results = run_readers(pattern, stream, bench, jobs, groups)
    level = summarise(
        results, stream.readahead, stream.cache, pattern.metadata_hit_fraction, len(groups)
    )
    failed = [r for r in results if r.error is not None]
    if failed:
        raise InputError(
            f"{len(failed)} of {jobs} readers failed on {pattern.url}; "
            f"reader {failed[0].job}: {failed[0].error}"
        )
    return level


def run_sweep(
    patterns: Sequence[tuple[ReadPattern, StreamConfig]],
    levels: Sequence[int],
    bench: BenchConfig,
    on_level: Callable[[LevelResult], None] | None = None,
    xrdcp: bool = False,
) -> list[LevelResult]:
    """Every read-ahead setting at every concurrency level, one level at a time; with
    ``xrdcp``, each level is followed by as many concurrent ``xrdcp`` copies of the file."""
    copies: dict[int, tuple[float, int]] = {}
    out = []
    for pattern, stream in patterns:
        for jobs in levels:
            level = run_level(pattern, stream, bench, jobs)
            if xrdcp:
                if jobs not in copies:
                    copies[jobs] = xrdcp_level(pattern.url, jobs, bench)
                rate, failed = copies[jobs]
                level = replace(level, xrdcp_mb_s=rate, xrdcp_failed=failed)
            out.append(level)
            if on_level is not None:
                on_level(level)
    return out
