"""Pure collection: per site and engine, spreads, failures, the resubmit command."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path

import awkward as ak
import pytest
from prochelpers import one_error_line

from hepstream.cli import main
from hepstream.dataset.collect import JobRow, summarize, table, throughput_series
from hepstream.dataset.record import Dataset
from hepstream.report import JobReport


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


def test_a_damaged_report_counts_as_failed():
    rows = [*ROWS[:3], JobRow("job-00003", "dask", "damaged", 1000, "-", error="r.json is empty")]
    report = summarize(rows, "ds")
    assert report.failed == ["job-00003"]
    assert not report.events_add_up
    assert shlex.split(report.resubmit)[-1] == "job-00003"


# -- collect over a real dataset directory whose job-00001 left a damaged report ----------------


def _good_report(job, status: str = "ok") -> str:
    report = JobReport(status=status, output=str(job.spec.output), events_read=job.events)
    report.events_selected, report.bytes_read = 10, 1000
    report.finish(1.0, 0.5)
    return report.to_json()


def _without(key: str) -> Callable[[Path, str], None]:
    def damage(path: Path, text: str) -> None:
        path.write_text(json.dumps({k: v for k, v in json.loads(text).items() if k != key}))

    return damage


def _with(**fields: object) -> Callable[[Path, str], None]:
    def damage(path: Path, text: str) -> None:
        path.write_text(json.dumps({**json.loads(text), **fields}))

    return damage


#: How job-00001's report is damaged (given a real report's text), and what the line says.
DAMAGED_REPORTS: dict[str, tuple[Callable[[Path, str], None], str]] = {
    "truncated": (lambda p, t: p.write_text(t[: len(t) * 6 // 10]), "is not JSON"),
    "empty": (lambda p, _: p.write_text(""), "is empty (0 bytes)"),
    "not-utf8": (lambda p, _: p.write_bytes(b"\xff\x00\x13garbage"), "is not JSON"),
    "a-list": (lambda p, _: p.write_text("[1, 2]"), "holds an array, not a job report"),
    "a-number": (lambda p, _: p.write_text("42"), "holds a number, not a job report"),
    "null": (lambda p, _: p.write_text("null"), "holds null, not a job report"),
    "missing-status": (_without("status"), "no 'status'"),
    "missing-events": (_without("events_read"), "no 'events_read'"),
    "string-for-integer": (_with(events_read="lots"), "events_read is 'lots', not an integer"),
    "null-for-number": (_with(wall_s=None), "wall_s is None, not a number"),
    "boolean-for-integer": (_with(bytes_read=True), "bytes_read is True, not an integer"),
    "nan-rate": (_with(events_per_s=float("nan")), "events_per_s is nan, not a number"),
    "number-for-status": (_with(status=1), "status is 1, not a string"),
    "a-directory": (lambda p, _: p.mkdir(), "cannot be read (Is a directory)"),
}


def _finished_but_one(directory: Path, damage: Callable[[Path, str], None]) -> Path:
    """Every job of ``directory`` ok with its output, except job-00001 whose report is
    damaged. Returns job-00001's report path."""

    dataset = Dataset.load(directory)
    dataset.record_submission("local", [j.name for j in dataset.jobs])
    for job in dataset.jobs:
        report = Path(str(job.spec.report))
        if job.name == "job-00001":
            damage(report, _good_report(job, "failed"))
            continue
        ak.to_parquet(ak.Array({"x": [1.0] * 10}), str(job.spec.output))
        report.write_text(_good_report(job))
    return Path(str(dataset.job("job-00001").spec.report))


@pytest.mark.parametrize("case", list(DAMAGED_REPORTS))
def test_collect_names_a_damaged_report_and_refuses_completion(
    split_dataset, capsys, case: str
) -> None:
    damage, says = DAMAGED_REPORTS[case]
    directory = split_dataset()
    report = _finished_but_one(directory, damage)
    code = main(["collect", str(directory)])
    out, err = capsys.readouterr()
    line = one_error_line(code, err, 1, str(report), says, "1 with a damaged report")
    assert line.endswith("--engine local --jobs job-00001")
    assert "3/4 jobs ok" in out
    assert "counts do NOT add up" in out
    assert "failed:  job-00001" in out
    manifest = json.loads((directory / "manifest.json").read_text())
    assert [f["job"] for f in manifest["files"]] == ["job-00000", "job-00002", "job-00003"]
    assert [p.name for p in directory.rglob("*") if ".part" in p.name] == []
    assert main(["dataset", "status", str(directory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job-00001"] == "damaged"


@pytest.mark.parametrize("record", ['["not", "a", "record"]', '{"engine": "slurm"}', "{"])
def test_collect_passes_over_a_damaged_submission_record(split_dataset, capsys, record) -> None:
    directory = split_dataset()
    _finished_but_one(directory, _with(status="failed", error="boom"))
    (directory / "submissions" / "001-slurm.json").write_text(record)
    code = main(["collect", str(directory)])
    line = one_error_line(code, capsys.readouterr().err, 1, "1 of 4 jobs failed")
    assert line.endswith("--engine local --jobs job-00001")  # from the intact record


def test_resubmit_over_a_directory_in_a_reports_place(split_dataset, capsys) -> None:
    directory = split_dataset()
    report = _finished_but_one(directory, lambda p, _: p.mkdir())
    code = main(["dataset", "submit", str(directory), "--jobs", "job-00001"])
    one_error_line(code, capsys.readouterr().err, 5, str(report), "Is a directory", "remove it")
    assert report.is_dir()


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"format": "hepstream-dataset/1", "jobs": [', "is not JSON"),
        ("[]", "is not a hepstream-dataset/1 file"),
        (
            '{"format": "hepstream-dataset/1", "plugin": "p.py", "jobs": [{"name": "j"}]}',
            "KeyError",
        ),
        ('{"format": "hepstream-dataset/1", "plugin": "p.py", "jobs": 7}', "TypeError"),
    ],
)
def test_collect_names_a_damaged_dataset_json(tmp_path, capsys, body: str, says: str) -> None:
    (tmp_path / "dataset.json").write_text(body)
    code = main(["collect", str(tmp_path)])
    one_error_line(code, capsys.readouterr().err, 3, f"{tmp_path}/dataset.json", says, "restore it")
