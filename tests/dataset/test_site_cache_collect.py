"""A dataset read through a site cache: ``--set stream.site_cache`` on the split reaches every
job, and ``hepstream collect`` shows per site the bytes read through the cache vs from the
origin (a real origin and XCache, real ``hepstream run`` jobs)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dshelp import PLUGIN, child_env

from hepstream.cli import main
from hepstream.dataset.collect import JobRow, job_rows, summarize, table
from hepstream.dataset.record import Dataset
from hepstream.report import JobReport
from hepstream.tools.generate import generate_sample
from hepstream.tools.serve import XRootDServer
from hepstream.tools.sitecache import SiteCache


def _row(name: str, site: str, status: str = "ok", cache: int = 0, origin: int = 0) -> JobRow:
    return JobRow(
        name, "local", status, 100, site=site, events=100, wall_s=1.0, cpu_s=1.0,
        events_per_s=100.0, kb_per_s=1.0, cache_bytes=cache, origin_bytes=origin,
    )  # fmt: skip


def test_cache_and_origin_bytes_per_site():
    rows = [
        _row("job-00000", "uvic", cache=3_000_000),
        _row("job-00001", "uvic", cache=1_000_000, origin=500_000),  # a fallback, say
        _row("job-00002", "uvic", status="failed", origin=250_000),  # it moved bytes too
        _row("job-00003", "nrc", origin=2_000_000),  # no cache at this site
    ]
    report = summarize(rows, "ds")
    by_site = {g.site: g for g in report.groups}
    assert (by_site["uvic"].cache_bytes, by_site["uvic"].origin_bytes) == (4_000_000, 750_000)
    assert (by_site["nrc"].cache_bytes, by_site["nrc"].origin_bytes) == (0, 2_000_000)
    lines = table(report).splitlines()
    assert lines[0].endswith("cache MB  origin MB")
    uvic = next(line for line in lines if line.startswith("uvic"))
    assert uvic.split()[-2:] == ["4.0", "0.8"]
    assert json.loads(report.to_json())["groups"][1]["cache_bytes"] == 4_000_000


def _reports(directory: Path, drop: tuple[str, ...] = (), **fields: object) -> None:
    """An ok report for each job of ``directory``: ``fields`` over its own, ``drop`` left out."""
    dataset = Dataset.load(directory)
    for job in dataset.jobs:
        report = JobReport(status="ok", output=str(job.spec.output), events_read=job.events)
        report.finish(1.0, 0.5)
        data = {k: v for k, v in {**report.asdict(), **fields}.items() if k not in drop}
        Path(str(job.spec.report)).write_text(json.dumps(data))


def test_reports_without_the_counts_read_as_zero_and_bad_ones_as_damaged(split_dataset):
    directory = split_dataset()
    _reports(directory, drop=("cache_bytes", "origin_bytes"))  # written before site caches
    rows = job_rows(Dataset.load(directory))
    assert {(r.status, r.cache_bytes, r.origin_bytes) for r in rows} == {("ok", 0, 0)}
    _reports(directory, cache_bytes="lots")
    rows = job_rows(Dataset.load(directory))
    assert {r.status for r in rows} == {"damaged"}
    assert "cache_bytes is 'lots', not a byte count" in rows[0].error


@pytest.fixture
def served_inputs() -> Iterator[Path]:
    """Two small samples in a directory the xrootd user can read."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-ds-cache-"))
    base.chmod(0o755)
    try:
        for i in range(2):
            path = generate_sample(
                base / f"tau1n_{i}.root", "tau1n-mc", 3_000, seed=60 + i, events_per_basket=1_000
            )
            path.chmod(0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.xrootd
def test_a_dataset_split_with_a_site_cache_reads_through_it(
    served_inputs, base, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    with XRootDServer(served_inputs) as origin, SiteCache(origin.url, base / "cache") as cache:
        directory = tmp_path / "ds"
        split = ["dataset", "split", str(PLUGIN), origin.data_url("tau1n_*.root")]
        split += ["--dir", str(directory), "--files-per-job", "1", "--site", "uvic"]
        split += ["--set", f"stream.site_cache={cache.url}", "--set", "stream.timeout=10"]
        assert main(split) == 0
        dataset = Dataset.load(directory)
        assert [j.spec.stream.site_cache for j in dataset.jobs] == [cache.url, cache.url]
        assert main(["dataset", "submit", str(directory), "--engine", "local"]) == 0
        capsys.readouterr()
        assert main(["collect", str(directory), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
    (group,) = report["groups"]
    assert (group["site"], group["ok"]) == ("uvic", 2)
    assert group["cache_bytes"] > 0
    assert group["origin_bytes"] == 0
    for job in dataset.jobs:
        job_report = json.loads(Path(str(job.spec.report)).read_text())
        assert job_report["via_cache"] == cache.url
        assert job_report["cache_bytes"] == job_report["bytes_read"]
