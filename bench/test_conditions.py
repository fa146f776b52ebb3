"""Suite: conditions lookups. First-chunk latency of ``hepstream run`` with a cold and a
warm conditions cache, and the share of job time spent on conditions: fetching the global
tag, resolving IOVs, splitting chunks and loading payloads (``report.conditions.open_s +
lookup_s`` over ``wall_s``) on the demo's calibrated selection, local inputs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from bench.conftest import REPO
from bench.settings import BenchSettings

pytestmark = pytest.mark.benchmark(group="conditions")
PLUGIN = REPO / "examples" / "tau1n_calib.py"
GLOBAL_TAG = "bench-beam-v1"


@pytest.fixture(scope="module")
def conditions_url(sample_files: list[Path]) -> Iterator[str]:
    """A LOCKED global tag with one beam IOV per run of the samples, served over HTTP."""
    import uproot

    from hepstream.conditions.sample import build_beam_db
    from hepstream.conditions.server import ConditionsServer

    runs: set[int] = set()
    for path in sample_files:
        with uproot.open(path) as f:
            runs.update(np.unique(f["events"]["run"].array(library="np")).tolist())
    with tempfile.TemporaryDirectory(prefix="hepstream-bench-cond-") as base:
        build_beam_db(Path(base) / "db", sorted(runs), GLOBAL_TAG).close()
        with ConditionsServer(Path(base) / "db") as server:
            yield server.url


def _run(inputs: list[str], workdir: Path, url: str, env: dict[str, str], tag: str) -> dict:
    output, report = workdir / f"{tag}.root", workdir / f"{tag}.json"
    cmd = [sys.executable, "-m", "hepstream", "run", str(PLUGIN), *inputs, "-o", str(output),
           "--report", str(report), "--no-progress", "--conditions", url,
           "--global-tag", GLOBAL_TAG]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"hepstream run exited {done.returncode}: {done.stderr.strip()}")
    output.unlink(missing_ok=True)
    return json.loads(report.read_text())


def test_conditions_first_chunk(
    benchmark, settings: BenchSettings, sample_files: list[Path], conditions_url: str, tmp_path
) -> None:
    inputs = [str(sample_files[0])]
    numba_cache = tmp_path / "numba"
    # compile the plugin's kernels once, so cold vs warm differ only by the conditions cache
    _run(inputs, tmp_path, conditions_url, {"NUMBA_CACHE_DIR": str(numba_cache),
         "HEPSTREAM_CONDITIONS_CACHE": str(tmp_path / "warmup")}, "warmup")  # fmt: skip
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}

    def pairs() -> None:
        for _ in range(settings.latency_pairs):
            with tempfile.TemporaryDirectory(prefix="cond-cache-", dir=tmp_path) as cache:
                env = {"NUMBA_CACHE_DIR": str(numba_cache), "HEPSTREAM_CONDITIONS_CACHE": cache}
                for kind in ("cold", "warm"):
                    runs[kind].append(_run(inputs, tmp_path, conditions_url, env, kind))

    benchmark.pedantic(pairs, rounds=1)
    info: dict = {"suite": "conditions", "kind": "latency", "pairs": settings.latency_pairs}
    for kind, reports in runs.items():
        assert all(r["status"] == "ok" for r in reports)
        info[f"{kind}_first_chunk_s"] = statistics.median(r["first_chunk_s"] for r in reports)
        info[f"{kind}_lookup_s"] = statistics.median(
            r["conditions"]["open_s"] + r["conditions"]["lookup_s"] for r in reports
        )
    benchmark.extra_info.update(info)


def test_conditions_lookup_cost(
    benchmark, settings: BenchSettings, sample_files: list[Path], conditions_url: str, tmp_path
) -> None:
    from hepstream.runner import JobSpec, run_job

    spec = JobSpec(
        plugin=str(PLUGIN), inputs=tuple(str(p) for p in sample_files),
        output=str(tmp_path / "calib.root"), conditions=(conditions_url,),
        global_tag=GLOBAL_TAG, conditions_cache=str(tmp_path / "cache"),
    )  # fmt: skip
    reports = []
    benchmark.pedantic(lambda: reports.append(run_job(spec)), rounds=settings.rounds_e2e,
                       warmup_rounds=1)  # fmt: skip
    timed = reports[1:]  # the warm-up round filled the cache and compiled the kernels
    assert all(r.status == "ok" for r in timed)
    cost = [r.conditions["open_s"] + r.conditions["lookup_s"] for r in timed]
    fractions = [c / r.wall_s for c, r in zip(cost, timed, strict=True)]
    benchmark.extra_info.update({
        "suite": "conditions", "kind": "lookup", "events": timed[0].events_read,
        "files": len(sample_files), "pieces": timed[0].conditions["pieces"],
        "payloads": timed[0].conditions["payloads_loaded"],
        "lookup_s": statistics.median(cost),
        "lookup_fraction": statistics.median(fractions),
    })  # fmt: skip
