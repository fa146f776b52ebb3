"""Suite 5: first-chunk latency of a cold (fresh numba cache) and a warm ``hepstream run``."""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

import pytest

from bench.jobproc import JobRun, run_subprocess
from bench.settings import BenchSettings

pytestmark = pytest.mark.benchmark(group="latency")


def test_first_chunk(
    benchmark, settings: BenchSettings, sample_files: list[Path], xrootd_server, tmp_path
) -> None:
    inputs = [xrootd_server.data_url(sample_files[0].name)]
    runs: dict[int, list[JobRun]] = {1: [], 2: []}

    def pairs() -> None:
        for _ in range(settings.latency_pairs):
            with tempfile.TemporaryDirectory(prefix="numba-cache-", dir=tmp_path) as cache:
                env = {"NUMBA_CACHE_DIR": cache}
                for run in (1, 2):
                    runs[run].append(run_subprocess(inputs, tmp_path, env=env, tag=f"lat{run}"))

    benchmark.pedantic(pairs, rounds=1)
    info: dict = {"suite": "latency", "pairs": settings.latency_pairs}
    for run, results in runs.items():
        assert all(r.report["status"] == "ok" for r in results)
        info[f"run{run}_first_chunk_s"] = statistics.median(
            r.report["first_chunk_s"] for r in results
        )
        info[f"run{run}_wall_s"] = statistics.median(r.report["wall_s"] for r in results)
        info[f"run{run}_process_s"] = round(statistics.median(r.process_s for r in results), 3)
        info[f"run{run}_all_first_chunk_s"] = [r.report["first_chunk_s"] for r in results]
    benchmark.extra_info.update(info)
