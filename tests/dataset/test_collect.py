"""Pure collection: per site and engine, spreads, failures, the resubmit command."""

from __future__ import annotations

import shlex

import pytest

from hepstream.dataset.collect import JobRow, summarize, table, throughput_series


def _ok(name, site, engine, eps, events=1000, wall=2.0, cpu=1.0, end=100.0):
    return JobRow(
        name,
        engine,
        "ok",
        events,
        site=site,
        events=events,
        events_selected=10,
        bytes_read=2_000_000,
        wall_s=wall,
        cpu_s=cpu,
        events_per_s=eps,
        kb_per_s=eps / 10,
        ended_at=end,
    )


ROWS = [
    _ok("job-00000", "cern", "slurm", 100.0),
    _ok("job-00001", "cern", "slurm", 300.0),
    _ok("job-00002", "nrc", "dask", 50.0, end=101.0),
    JobRow("job-00003", "dask", "failed", 1000, site="nrc", error="boom"),
    JobRow("job-00004", "slurm", "missing", 1000),
]


def test_groups_per_site_and_engine_with_mean_and_spread():
    report = summarize(ROWS, "ds")
    cern, nrc = report.groups
    assert (cern.site, cern.engine, cern.jobs, cern.ok, cern.failed) == ("cern", "slurm", 2, 2, 0)
    assert (cern.events_per_s_mean, cern.events_per_s_spread) == (200.0, pytest.approx(141.4, 0.01))
    assert (cern.kb_per_s_mean, cern.cpu_efficiency) == (20.0, 0.5)
    assert (nrc.jobs, nrc.ok, nrc.failed, nrc.events) == (2, 1, 1, 1000)


def test_failed_and_missing_are_named_and_resubmitted_exactly():
    report = summarize(ROWS, "ds dir")
    assert report.failed == ["job-00003"]
    assert report.missing == ["job-00004"]
    assert not report.events_add_up
    assert (report.events_read, report.events_expected) == (3000, 5000)
    argv = shlex.split(report.resubmit)
    assert argv[:4] == ["hepstream", "dataset", "submit", "ds dir"]
    assert argv[argv.index("--jobs") + 1] == "job-00003,job-00004"
    assert argv[argv.index("--engine") + 1] in ("dask", "slurm")


def test_a_complete_dataset_adds_up_and_needs_no_resubmit():
    report = summarize(ROWS[:3], "ds")
    assert report.events_add_up
    assert report.resubmit is None


def test_a_job_that_read_fewer_events_than_planned_does_not_add_up():
    short = _ok("job-00000", "cern", "local", 10.0, events=999)
    short = JobRow(**{**short.__dict__, "expected_events": 1000})
    assert not summarize([short], "ds").events_add_up


def test_table_is_whole_at_any_width():
    wide = [_ok("job-00000", "a-very-long-site-name-" * 4, "slurm", 123456789.0)]
    text = table(summarize(wide, "ds"))
    assert "a-very-long-site-name-" * 4 in text
    assert "123,456,789" in text
    assert "…" not in text


def test_throughput_series_sums_concurrent_jobs():
    rows = [
        _ok("a", "s", "local", 1.0, wall=2.0, end=102.0),
        _ok("b", "s", "local", 1.0, wall=2.0, end=103.0),
    ]
    times, rates = throughput_series(rows, step_s=1.0)
    assert times[:4] == [0.0, 1.0, 2.0, 3.0]
    assert rates[:4] == [1.0, 2.0, 1.0, 0.0]  # 2 MB over 2 s each, overlapping for 1 s
