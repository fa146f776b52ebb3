"""Suite: conditions lookups. First-chunk latency of ``hepstream run`` with a cold and a
warm conditions cache, and the events/s cost of conditions on the demo's calibrated
selection: the same job with the service against the same selection with the calibration
baked in (local inputs, rounds alternated). Also recorded: the job's own timer of the
conditions work (global tag fetch, IOV resolution and splitting, payload loads)."""

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


def _without_conditions(tmp_path: Path) -> Path:
    """tau1n_calib.py with the payload replaced by its nominal constant: the same selection
    and output, no conditions at all (the baseline of the events/s cost)."""
    text = PLUGIN.read_text()
    text = text.replace('conditions = ["beam"]', "conditions = []")
    text = text.replace('self.payload("beam")["ebeam_scale"][()]', "1.0")
    assert '["ebeam_scale"]' not in text  # every use of the payload replaced
    path = tmp_path / "tau1n_nominal.py"
    path.write_text(text)
    return path


def test_conditions_lookup_cost(
    benchmark, settings: BenchSettings, sample_files: list[Path], conditions_url: str, tmp_path
) -> None:
    """Same job with and without conditions, alternated round by round (local inputs)."""
    from hepstream.job.runner import JobSpec, run_job

    def spec(plugin: Path, tag: str, **kw) -> JobSpec:
        return JobSpec(
            plugin=str(plugin), inputs=tuple(str(p) for p in sample_files),
            output=str(tmp_path / f"{tag}.root"), **kw,
        )  # fmt: skip

    with_cond = spec(PLUGIN, "calib", conditions=(conditions_url,), global_tag=GLOBAL_TAG,
                     conditions_cache=str(tmp_path / "cache"))  # fmt: skip
    without = spec(_without_conditions(tmp_path), "nominal")
    reports: dict[str, list] = {"with": [], "without": []}

    def pair() -> None:
        reports["with"].append(run_job(with_cond))
        reports["without"].append(run_job(without))

    benchmark.pedantic(pair, rounds=settings.rounds_e2e, warmup_rounds=1)
    timed = {k: v[1:] for k, v in reports.items()}  # the warm-up filled caches, compiled
    assert all(r.status == "ok" for v in timed.values() for r in v)
    rate = {k: statistics.median(r.events_per_s for r in v) for k, v in timed.items()}
    cost = [r.conditions["open_s"] + r.conditions["lookup_s"] for r in timed["with"]]
    first = timed["with"][0]
    benchmark.extra_info.update({
        "suite": "conditions", "kind": "lookup", "events": first.events_read,
        "files": len(sample_files), "pieces": first.conditions["pieces"],
        "payloads": first.conditions["payloads_loaded"],
        "rate_with": rate["with"], "rate_without": rate["without"],
        "rate_cost": 1.0 - rate["with"] / rate["without"],
        "lookup_s": statistics.median(cost),
        "lookup_fraction": statistics.median(
            c / r.wall_s for c, r in zip(cost, timed["with"], strict=True)
        ),
    })  # fmt: skip
