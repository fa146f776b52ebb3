"""Suite 4: peak resident memory of ``hepstream run`` on 1 file, N and 10xN (root:// loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.jobproc import run_subprocess
from bench.settings import BenchSettings

pytestmark = pytest.mark.benchmark(group="memory")


#: One file (the read pipeline never fills: no next file is prepared), N = the distinct
#: files, 10xN = those files read ``passes`` times.
SCALES = ("1 file", "N", "10xN")


@pytest.mark.parametrize("scale", SCALES)
def test_peak_rss(
    benchmark, settings: BenchSettings, rss_files: list[Path], xrootd_server, tmp_path, scale
) -> None:
    files = {"1 file": rss_files[:1], "N": rss_files, "10xN": rss_files * settings.passes}[scale]
    inputs = [xrootd_server.data_url(p.name) for p in files]
    runs = []
    benchmark.pedantic(
        lambda: runs.append(run_subprocess(inputs, tmp_path, tag=f"rss{len(files)}")), rounds=1
    )
    run = runs[0]
    assert run.report["status"] == "ok"
    assert run.report["events_read"] == len(files) * settings.events_per_file
    benchmark.extra_info.update({
        "suite": "memory", "scale": scale,
        "files": len(files), "events": run.report["events_read"],
        "bytes": run.report["bytes_read"], "peak_rss_mb": run.peak_rss_mb,
        "rss_source": run.rss_source,
        "report_peak_rss_mb": run.report["peak_rss_mb"],
        "cache_peak_bytes": run.report["cache_peak_bytes"], "process_wall_s": round(run.process_s, 3),
    })  # fmt: skip
