"""The storage benchmark: read-pattern planning, aggregation, and a real run against xrootd."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
import uproot

from hepstream.cli import main
from hepstream.cli.bench import parse_size_list
from hepstream.cli.storage import write_plot
from hepstream.errors import ConfigError, InputError
from hepstream.io import StreamConfig
from hepstream.io.coalesce import merge_ranges
from hepstream.io.spans import plan_reads
from hepstream.storagebench.model import (
    BenchConfig,
    JobResult,
    ReadPattern,
    Step,
    percentile,
    stagger,
    summarise,
)
from hepstream.storagebench.pattern import chunk_steps, read_pattern
from hepstream.storagebench.readers import split_jobs
from hepstream.storagebench.sweep import job_levels, run_level

MC = "tau1n_mc_000.root"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- pure planning ----------------------------------------------------------------------------


def test_chunk_steps_send_each_span_with_the_chunk_that_reads_it_first() -> None:
    # chunk 0 wants two baskets, chunk 1 re-reads the straddling one and one more,
    # chunk 2 needs nothing new (its basket came with chunk 1)
    wants = [
        [(100, 150, False), (150, 200, False)],
        [(150, 200, False), (300, 400, False)],
        [(300, 400, False)],
    ]
    plan = plan_reads(wants)
    steps = chunk_steps(plan, [(0, 10), (10, 20), (20, 30)], max_request_bytes=1 << 20)
    # touching spans join into one segment, as the prefetcher requests them
    assert [s.requests for s in steps] == [(((100, 200),),), (((300, 400),),), ()]
    assert [s.events for s in steps] == [10, 10, 10]
    pattern = ReadPattern("f", "t", ("a",), (Step((((0, 10),),), metadata=True), *steps))
    # the chunk that needs no new bytes completes with the request before it
    assert [events for _, events in pattern.requests] == [0, 10, 20]
    assert pattern.events == 30
    assert pattern.chunks == 3
    assert pattern.nbytes == 10 + 100 + 100


def test_chunk_steps_cut_large_spans_into_request_sized_pieces() -> None:
    plan = plan_reads([[(0, 2500, False)]])
    (step,) = chunk_steps(plan, [(0, 5)], max_request_bytes=1000)
    assert step.requests == (((0, 1000),), ((1000, 2000),), ((2000, 2500),))


def test_readers_are_dealt_to_few_processes_evenly() -> None:
    assert split_jobs(4, 2) == [[0, 2], [1, 3]]
    assert split_jobs(3, 128) == [[0, 1, 2]]
    groups = split_jobs(512, 128)
    assert len(groups) == 4
    assert sorted(j for g in groups for j in g) == list(range(512))
    with pytest.raises(ConfigError):
        split_jobs(4, 0)


@pytest.mark.parametrize(
    ("max_jobs", "levels"),
    [(1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (6, [1, 2, 4, 6]), (8, [1, 2, 4, 8])],
)
def test_job_levels_double_up_to_the_maximum(max_jobs: int, levels: list[int]) -> None:
    assert job_levels(max_jobs) == levels


def test_job_levels_reject_zero() -> None:
    with pytest.raises(ConfigError):
        job_levels(0)


def test_readahead_sweep_parses_units() -> None:
    assert parse_size_list("0,256k,1M,4M") == [0, 256 << 10, 1 << 20, 4 << 20]
    with pytest.raises(ConfigError):
        parse_size_list(" , ")
    with pytest.raises(ConfigError):
        parse_size_list("1M,lots")


@pytest.mark.parametrize("kwargs", [{"duration": 0}, {"max_requests": 0}, {"max_jobs": 10_000}])
def test_bench_config_refuses_unbounded_or_silly_loads(kwargs) -> None:
    with pytest.raises(ConfigError):
        BenchConfig(**kwargs)


def test_stagger_spreads_readers_over_the_pass() -> None:
    assert [stagger(8, job, 4) for job in range(4)] == [0, 2, 4, 6]
    assert stagger(3, 0, 1) == 0


def test_percentile_interpolates() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) != percentile([], 50)  # NaN: no requests, no latency


def test_summary_uses_the_slowest_reader_as_wall_time() -> None:
    fast = JobResult(job=0, elapsed=1.0, bytes_read=10_000_000, events=100, requests=4)
    fast.latencies = [0.001, 0.003]
    slow = JobResult(job=1, elapsed=2.0, bytes_read=10_000_000, events=100, requests=6)
    slow.latencies = [0.002, 0.004]
    level = summarise([fast, slow], readahead=1 << 20, cache=10 << 20, hit_fraction=0.25)
    assert level.jobs == 2
    assert level.wall_s == 2.0
    assert level.aggregate_mb_s == pytest.approx(10.0)
    assert level.per_job_mb_s == (pytest.approx(10.0), pytest.approx(5.0))
    assert level.mean_job_mb_s == pytest.approx(7.5)
    assert level.events_per_s == pytest.approx(100.0)
    assert level.requests == 10
    assert level.max_job_requests == 6
    assert level.latency_p50_ms == pytest.approx(2.5)
    assert level.cache_hit_fraction == 0.25
    assert level.failed == 0
    assert level.vs_xrdcp is None


# -- the file's layout and the plot (local, no server) ------------------------------------------


def test_read_pattern_covers_every_basket_of_the_sample(sample_dir) -> None:
    path = str(sample_dir / MC)
    pattern = read_pattern(path)
    tree = uproot.open(path)["events"]
    with_data = [b for b in tree.itervalues(recursive=True) if b.num_baskets > 0]
    assert pattern.tree == "events"
    assert pattern.branches == tuple(b.name for b in with_data)
    assert pattern.events == tree.num_entries
    basket_bytes = sum(int(sum(b.member("fBasketBytes")[: b.num_baskets])) for b in with_data)
    chunk_bytes = sum(s.nbytes for s in pattern.steps if not s.metadata)
    assert chunk_bytes == basket_bytes == sum(b - a for a, b in pattern.spans)
    assert pattern.steps[0].metadata  # the job's metadata reads come first


def test_read_pattern_selects_branches_by_glob(sample_dir) -> None:
    pattern = read_pattern(str(sample_dir / MC), "events", ["run", "event"])
    assert pattern.branches == ("run", "event")
    with pytest.raises(ConfigError, match="matches no branch"):
        read_pattern(str(sample_dir / MC), None, ["no_such_branch*"])
    with pytest.raises(ConfigError, match="no object"):
        read_pattern(str(sample_dir / MC), "nope")


def test_plot_is_a_png_written_atomically(tmp_path) -> None:
    levels = [
        summarise([JobResult(job=j, elapsed=1.0, bytes_read=5_000_000) for j in range(n)], ra, 0)
        for ra in (0, 1 << 20)
        for n in (1, 2, 4)
    ]
    out = write_plot(levels, tmp_path / "plot.png", "test")
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]


# -- real runs -----------------------------------------------------------------------------------


def _run_cli(args: list[str], capsys) -> dict:
    code = main(["bench", "storage", *args, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.xrootd
def test_storage_bench_against_xrootd(xrootd_server, tmp_path, capsys) -> None:
    plot = tmp_path / "storage.png"
    max_requests = 6
    doc = _run_cli(
        [
            xrootd_server.data_url(MC),
            "--max-jobs", "2", "--duration", "1.5", "--max-requests", str(max_requests),
            "--readahead", "256k", "--cache", "4M", "--plot", str(plot),
        ],
        capsys,
    )  # fmt: skip
    assert doc["url"] == xrootd_server.data_url(MC)
    assert doc["tree"] == "events"
    assert doc["events_per_pass"] == 20_000
    assert doc["max_requests"] == max_requests
    assert [lv["jobs"] for lv in doc["levels"]] == [1, 2]
    for level in doc["levels"]:
        assert level["readahead"] == 256 << 10
        assert level["cache"] == 4 << 20
        assert 0 < level["max_job_requests"] <= max_requests
        assert level["requests"] <= max_requests * level["jobs"]
        assert level["bytes_read"] > 0
        assert level["aggregate_mb_s"] > 0
        assert len(level["per_job_mb_s"]) == level["jobs"]
        assert level["events_per_s"] >= 0
        assert level["latency_p99_ms"] >= level["latency_p50_ms"] > 0
        assert level["wall_s"] <= 1.5 + 60  # the duration bound, plus one request in flight
    assert plot.read_bytes().startswith(PNG_MAGIC)


@pytest.mark.xrootd
def test_storage_bench_sweeps_readahead_up_to_4m_against_xrootd(xrootd_server, capsys) -> None:
    """Its own --help example sweeps 4M: vector reads are cut to the server's readv limits
    (before: ``[3008] Single readv transfer is too large``)."""
    doc = _run_cli(
        [xrootd_server.data_url(MC), "--max-jobs", "1", "--duration", "1",
         "--max-requests", "6", "--readahead-sweep", "1M,4M"],
        capsys,
    )  # fmt: skip
    assert [lv["readahead"] for lv in doc["levels"]] == [1 << 20, 4 << 20]
    for level in doc["levels"]:
        assert level["bytes_read"] > 0
        assert level["aggregate_mb_s"] > 0


def test_storage_bench_sweeps_readahead_on_a_local_file(sample_dir, capsys) -> None:
    doc = _run_cli(
        [str(sample_dir / MC), "--max-jobs", "1", "--duration", "0.5",
         "--readahead-sweep", "0,1M", "--branches", "trk_*"],
        capsys,
    )  # fmt: skip
    assert [(lv["jobs"], lv["readahead"]) for lv in doc["levels"]] == [(1, 0), (1, 1 << 20)]
    assert all(b.startswith("trk_") for b in doc["branches"])
    # read-ahead turns the job's small metadata reads into fewer, larger requests
    assert doc["levels"][1]["cache_hit_fraction"] > doc["levels"][0]["cache_hit_fraction"]
    assert all(lv["failed"] == 0 for lv in doc["levels"])


def test_a_reader_that_cannot_open_fails_the_level(tmp_path) -> None:
    gone = ReadPattern(str(tmp_path / "gone.root"), "events", ("x",), (Step((((0, 10),),)),))
    with pytest.raises(InputError, match="reader 0 cannot open"):
        run_level(gone, StreamConfig(), BenchConfig(duration=0.5, startup_timeout=60), jobs=1)


def test_storage_bench_reports_a_missing_file(tmp_path, capsys) -> None:
    code = main(["bench", "storage", str(tmp_path / "missing.root"), "--duration", "1"])
    assert code != 0
    assert "not found" in capsys.readouterr().err


# -- the runner's plan, 512 readers, whole tables -----------------------------------------------


@pytest.mark.xrootd
def test_bench_requests_exactly_the_runners_planned_spans(xrootd_server) -> None:
    """The bench plans with the runner's reader: the same spans, in the same order, and its
    chunk requests cover exactly those bytes (touching spans joined, nothing in between)."""
    from hepstream.job.reader import Reader
    from hepstream.jobspec import JobSpec
    from hepstream.plugin.api import Selection
    from hepstream.plugin.loader import load_plugin

    plugin = load_plugin(Path(__file__).resolve().parent.parent / "examples" / "tau1n.py")

    class Everything(Selection):  # the plugin's tree and branches, read in one pass
        tree = plugin.tree
        branches: ClassVar[list[str]] = list(plugin.branches)

    url = xrootd_server.data_url(MC)
    spec = JobSpec(plugin="tau1n.py", inputs=(url,), output="unused.parquet")
    reader = Reader([url], Everything(), spec, [])
    opened = reader._prepare(0)
    try:
        runner_spans = tuple((s.start, s.stop) for s in opened.plan.spans)
    finally:
        opened.close()
    pattern = read_pattern(url, plugin.tree, list(plugin.branches), spec.stream, spec.chunk_bytes)
    assert pattern.branches == tuple(plugin.branches)
    assert pattern.spans == runner_spans
    requested = [seg for step in pattern.steps if not step.metadata for seg in step.ranges]
    assert merge_ranges(requested, 0) == merge_ranges(runner_spans, 0)
    assert sum(b - a for a, b in requested) == sum(b - a for a, b in runner_spans)


@pytest.mark.xrootd
@pytest.mark.slow
def test_512_readers_against_the_server_with_no_failure(xrootd_server) -> None:
    """512 concurrent readers in 4 processes of 128 asynchronous readers (short, small)."""
    stream = StreamConfig()
    pattern = read_pattern(xrootd_server.data_url(MC), "events", ["run", "event"], stream)
    bench = BenchConfig(duration=0.5, max_requests=3, max_jobs=512, readers_per_process=128)
    level = run_level(pattern, stream, bench, jobs=512)
    assert level.jobs == 512
    assert level.processes == 4
    assert level.failed == 0
    assert len(level.per_job_mb_s) == 512
    assert min(level.per_job_mb_s) > 0
    assert 512 <= level.requests <= 3 * 512
    assert level.max_job_requests <= 3
    assert level.bytes_read > 0
    assert level.aggregate_mb_s > 0


@pytest.mark.xrootd
def test_xrdcp_comparison_at_the_same_concurrency(xrootd_server, capsys) -> None:
    doc = _run_cli(
        [xrootd_server.data_url(MC), "--max-jobs", "2", "--duration", "0.5",
         "--max-requests", "4", "--branches", "run,event", "--xrdcp"],
        capsys,
    )  # fmt: skip
    for level in doc["levels"]:
        assert level["failed"] == 0
        assert level["xrdcp_failed"] == 0
        assert level["xrdcp_mb_s"] > 0
        assert level["vs_xrdcp"] == pytest.approx(level["aggregate_mb_s"] / level["xrdcp_mb_s"])


def test_xrdcp_comparison_needs_a_remote_url(sample_dir, capsys) -> None:
    code = main(["bench", "storage", str(sample_dir / MC), "--xrdcp"])
    assert code == 2
    assert "--xrdcp compares with a root:// URL" in capsys.readouterr().err


def test_table_prints_whole_when_piped(sample_dir) -> None:
    """stdout to a pipe: no column cut to fit 80 characters, no ``…``."""
    proc = subprocess.run(
        [sys.executable, "-m", "hepstream", "bench", "storage", str(sample_dir / MC),
         "--max-jobs", "2", "--duration", "0.3", "--max-requests", "5"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "COLUMNS": "40"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "readahead" in line)
    for column in ("readahead", "jobs", "MB/s/job", "events/s", "p50 ms", "p99 ms", "failed"):
        assert column in header
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2
    assert all(len(r) == len(header) for r in rows)


def test_plugin_gives_the_tree_and_branches_its_job_reads(sample_dir, capsys) -> None:
    from hepstream.plugin.loader import load_plugin

    plugin_path = Path(__file__).resolve().parent.parent / "examples" / "tau1n.py"
    doc = _run_cli(
        [str(sample_dir / MC), "--plugin", str(plugin_path), "--max-jobs", "1",
         "--duration", "0.3", "--max-requests", "3"],
        capsys,
    )  # fmt: skip
    plugin = load_plugin(plugin_path)
    assert doc["tree"] == plugin.tree
    assert doc["branches"] == list(plugin.branches)
