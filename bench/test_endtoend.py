"""Suite 3: whole ``hepstream run`` jobs (``run_job``) from local disk, loopback and the WAN proxy."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from bench.conftest import PLUGIN, link_names, rtt_of
from bench.settings import BenchSettings, current_settings

pytestmark = pytest.mark.benchmark(group="endtoend")

LOCAL = "local"


@pytest.mark.parametrize("link", [LOCAL, *link_names(current_settings())])
def test_job(
    benchmark, settings: BenchSettings, sample_files: list[Path], link_urls, tmp_path, link
) -> None:
    from hepstream.job.runner import JobSpec, run_job

    if link == LOCAL:
        inputs = tuple(str(p) for p in sample_files)
    else:
        inputs = tuple(f"{link_urls[link]}//data/{p.name}" for p in sample_files)
    counter = itertools.count()
    reports = []

    def setup():
        spec = JobSpec(
            plugin=str(PLUGIN),
            inputs=inputs,
            output=str(tmp_path / f"out{next(counter)}.root"),
            site="bench",
        )
        return (spec,), {}

    def job(spec):
        reports.append(run_job(spec))
        Path(spec.output).unlink()

    benchmark.pedantic(job, setup=setup, rounds=settings.rounds_e2e, warmup_rounds=1)
    last = reports[-1]
    assert last.status == "ok"
    assert last.events_read == settings.files * settings.events_per_file
    benchmark.extra_info.update({
        "suite": "endtoend", "link": link, "rtt_ms": rtt_of(link),
        "bandwidth_mbps": settings.bandwidth_mbps if rtt_of(link) is not None else None,
        "events": last.events_read, "bytes": last.bytes_read, "selected": last.events_selected,
        "clusters_skipped": last.clusters_skipped, "io_wait_s": last.io_wait_s,
        "select_s": last.select_s, "report_events_per_s": last.events_per_s,
    })  # fmt: skip


@pytest.mark.parametrize("link", ["wan0ms", "wan30ms"])
def test_long_job(
    benchmark, settings: BenchSettings, rss_files: list[Path], link_urls, tmp_path, link
) -> None:
    """A job over the long input (the 10 files read ``passes`` times): fixed costs
    (connect, open, numba load) amortized, as in the paper's hours-long jobs; judged
    against the same job at zero delay."""
    from hepstream.job.runner import JobSpec, run_job

    if link not in link_urls:
        pytest.fail(f"link {link} not configured in this bench preset")
    inputs = tuple(f"{link_urls[link]}//data/{p.name}" for p in rss_files * settings.passes)
    reports = []

    def job():
        out = tmp_path / "long.root"
        reports.append(run_job(JobSpec(str(PLUGIN), inputs, str(out), site="bench")))
        out.unlink()

    benchmark.pedantic(job, rounds=max(1, settings.rounds_e2e // 2), warmup_rounds=0)
    last = reports[-1]
    assert last.status == "ok"
    benchmark.extra_info.update({
        "suite": "longjob", "link": link, "rtt_ms": rtt_of(link),
        "bandwidth_mbps": settings.bandwidth_mbps,
        "events": last.events_read, "bytes": last.bytes_read, "selected": last.events_selected,
        "clusters_skipped": last.clusters_skipped, "io_wait_s": last.io_wait_s,
        "select_s": last.select_s, "report_events_per_s": last.events_per_s,
    })  # fmt: skip
