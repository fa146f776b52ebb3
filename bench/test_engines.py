"""Dataset engines: overhead per job (submit to first event) and 8 jobs at once vs one.

Each job reads one of the bench's local sample files (no network: what is measured is the
engine, not the link). ``submit → first event`` is the time from the engine's submit
call to the job's first selection result, from the job's report (its end time minus its
wall time plus ``first_chunk_s``). Slurm and Dask run as real daemons on this machine
(``tests.support``), stopped at the end of the module.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from bench.conftest import PLUGIN, REPO


def _env() -> dict[str, str]:
    paths = [str(REPO), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def _dataset(files: list[Path], directory: Path, jobs: int):
    """``jobs`` one-file jobs over ``files`` (cycled), as ``hepstream dataset split`` would."""
    from hepstream.dataset.layout import read_layouts
    from hepstream.dataset.record import Dataset
    from hepstream.dataset.split import by_files, make_jobs
    from hepstream.jobspec import JobSpec

    chosen = [str(files[i % len(files)]) for i in range(jobs)]
    layouts = read_layouts(chosen, "events")
    template = JobSpec(str(PLUGIN), ("-",), "-", site="bench")
    made = make_jobs(by_files(layouts, 1), layouts, template, str(directory))
    dataset = Dataset(directory, str(PLUGIN), tuple(made), {"files_per_job": 1})
    dataset.save()
    return dataset


def _first_event_after(dataset, submitted: float) -> float:
    """Seconds from ``submitted`` to the earliest first selection result of any job."""
    firsts = []
    for job in dataset.jobs:
        report = json.loads(Path(str(job.spec.report)).read_text())
        end = Path(str(job.spec.report)).stat().st_mtime
        firsts.append(end - report["wall_s"] + report["first_chunk_s"])
    return min(firsts) - submitted


@pytest.fixture(scope="module")
def engines(monkeypatch_module):
    """local, slurm and dask engines; the daemons live as long as this module."""
    from hepstream.dataset.engines.dask import DaskEngine
    from hepstream.dataset.engines.local import LocalEngine
    from hepstream.dataset.engines.slurm import SlurmEngine
    from tests.support.daskcluster import DaskCluster
    from tests.support.slurm import SlurmCluster

    for key, value in _env().items():
        monkeypatch_module.setenv(key, value)
    with (
        SlurmCluster(cpus=os.cpu_count() or 2, lifetime_s=1800) as slurm,
        DaskCluster(workers=1, lifetime_s=1800, env=_env()) as dask,
    ):
        monkeypatch_module.setenv("SLURM_CONF", str(slurm.conf))
        yield {
            "local": lambda: LocalEngine(1, retries=0),
            "slurm": lambda: SlurmEngine(retries=0, poll_s=0.2),
            "dask": lambda: DaskEngine(dask.address, retries=0),
        }


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.parametrize("engine", ["local", "slurm", "dask"])
def test_overhead_submit_to_first_event(benchmark, engines, sample_files, tmp_path, engine):
    from hepstream.dataset.engines.base import QuietProgress

    overheads: list[float] = []
    round_no = [0]

    def one_job():
        round_no[0] += 1
        dataset = _dataset(sample_files, tmp_path / f"{engine}-{round_no[0]}", 1)
        submitted = time.time()
        (outcome,) = engines[engine]().submit(dataset, dataset.jobs, QuietProgress())
        assert outcome.status == "ok", outcome.error
        overheads.append(_first_event_after(dataset, submitted))

    benchmark.pedantic(one_job, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(
        {
            "suite": "engines",
            "engine": engine,
            "submit_to_first_event_s": round(sorted(overheads)[len(overheads) // 2], 3),
            "submit_to_first_event_all_s": [round(o, 3) for o in overheads],
        }
    )


@pytest.mark.parametrize("jobs", [1, 8])
def test_eight_jobs_at_once_against_one(benchmark, sample_files, tmp_path, jobs, monkeypatch):
    """Aggregate events/s of ``jobs`` concurrent local jobs (8 on this machine's cores)."""
    from hepstream.dataset.engines.base import QuietProgress
    from hepstream.dataset.engines.local import LocalEngine

    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    rates: list[float] = []
    round_no = [0]

    def run_all():
        round_no[0] += 1
        dataset = _dataset(sample_files, tmp_path / f"n{jobs}-{round_no[0]}", jobs)
        began = time.perf_counter()
        outcomes = LocalEngine(jobs, retries=0).submit(dataset, dataset.jobs, QuietProgress())
        wall = time.perf_counter() - began
        assert all(o.status == "ok" for o in outcomes)
        rates.append(sum(j.events for j in dataset.jobs) / wall)

    benchmark.pedantic(run_all, rounds=2, warmup_rounds=0)
    benchmark.extra_info.update(
        {
            "suite": "engines",
            "concurrent_jobs": jobs,
            "cpus": os.cpu_count(),
            "aggregate_events_per_s": round(max(rates), 1),
        }
    )
