"""Suite: the storage bench at 1 to 512 concurrent readers, against as many ``xrdcp`` copies.

``hepstream bench storage``'s own functions (the runner's read plan, asynchronous readers, a
few processes) against Debian's xrootd on loopback, each level followed in the same run by
the same number of concurrent ``xrdcp`` copies of the same file. Target: the bench's
aggregate MB/s >= 0.8x xrdcp's at every N, with 0 failed readers and copies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.settings import BenchSettings

pytestmark = pytest.mark.benchmark(group="storage")

#: A file small enough that 512 xrdcp copies of it take seconds, with several chunks.
EVENTS, EVENTS_PER_BASKET = 10_000, 2_500
NAME = "storage_tau1n_mc.root"


@pytest.fixture(scope="module")
def storage_url(served_dir: Path, xrootd_server) -> str:
    from hepstream.tools.generate import generate_sample

    path = generate_sample(served_dir / NAME, "tau1n-mc", EVENTS, seed=77,
                           events_per_basket=EVENTS_PER_BASKET)  # fmt: skip
    path.chmod(0o644)
    return xrootd_server.data_url(NAME)


def test_storage_levels(benchmark, settings: BenchSettings, storage_url: str) -> None:
    from hepstream.io import StreamConfig
    from hepstream.storagebench.model import BenchConfig
    from hepstream.storagebench.pattern import read_pattern
    from hepstream.storagebench.sweep import run_sweep

    quick = settings.mode == "quick"
    # the quick smoke stays well inside a loaded 2-core CI machine; tests/test_storagebench.py
    # runs 512 readers in a short test-sized run, the full bench measures 512 against xrdcp
    levels = [8, 64] if quick else [1, 8, 64, 512]
    bench = BenchConfig(duration=2.0 if quick else 5.0, max_jobs=max(levels))
    stream = StreamConfig()
    pattern = read_pattern(storage_url, stream=stream)
    out: list = []
    benchmark.pedantic(
        lambda: out.extend(run_sweep([(pattern, stream)], levels, bench, xrdcp=True)), rounds=1
    )
    assert all(lv.failed == 0 and lv.xrdcp_failed == 0 for lv in out)
    benchmark.extra_info.update({
        "suite": "storage",
        "events": pattern.events,
        "file_mb": round(sum(b - a for a, b in pattern.spans) / 1e6, 1),
        "duration_s": bench.duration,
        "levels": [
            {"jobs": lv.jobs, "processes": lv.processes, "mb_s": round(lv.aggregate_mb_s, 1),
             "xrdcp_mb_s": round(lv.xrdcp_mb_s or 0.0, 1), "failed": lv.failed,
             "xrdcp_failed": lv.xrdcp_failed, "p99_ms": round(lv.latency_p99_ms, 1)}
            for lv in out
        ],
    })  # fmt: skip
