"""The storage benchmark: read-pattern planning, aggregation, and a real run against xrootd."""

from __future__ import annotations

import json

import pytest
import uproot

from hepstream.cli import main
from hepstream.errors import ConfigError, InputError
from hepstream.io import StreamConfig
from hepstream.storagebench import (
    BenchConfig,
    BranchBaskets,
    JobResult,
    ReadPattern,
    Step,
    job_levels,
    parse_size_list,
    percentile,
    plan_clusters,
    read_pattern,
    run_level,
    stagger,
    step_request_bound,
    summarise,
    write_plot,
)

MC = "tau1n_mc_000.root"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# -- pure planning ----------------------------------------------------------------------------


def test_clusters_gather_every_branch_basket_that_starts_in_them() -> None:
    a = BranchBaskets("a", seeks=(100, 300, 500), sizes=(50, 50, 50), entry_starts=(0, 10, 20))
    b = BranchBaskets("b", seeks=(200, 400), sizes=(80, 80), entry_starts=(0, 20))
    steps = plan_clusters([a, b], cluster_starts=[0, 20, 30], num_entries=30)
    assert [s.ranges for s in steps] == [
        ((100, 150), (200, 280), (300, 350)),
        ((400, 480), (500, 550)),
    ]
    assert [s.events for s in steps] == [20, 10]
    assert all(s.vector for s in steps)
    assert sum(s.nbytes for s in steps) == 3 * 50 + 2 * 80


def test_clusters_skip_unsaved_baskets_and_empty_clusters() -> None:
    # seek 0 marks a basket kept inside the TBranch record (never written on its own)
    a = BranchBaskets("a", seeks=(100, 0), sizes=(10, 10), entry_starts=(0, 5))
    steps = plan_clusters([a], cluster_starts=[0, 5], num_entries=10)
    assert [(s.ranges, s.events) for s in steps] == [(((100, 110),), 5)]


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


def test_request_bound_counts_the_vector_reads_a_step_may_need() -> None:
    config = StreamConfig(coalesce_gap=0, max_request_bytes=100)
    assert step_request_bound(Step(((0, 10),), vector=False), config) == 1
    far_apart = Step(tuple((i * 1000, i * 1000 + 40) for i in range(5)))
    assert step_request_bound(far_apart, config) == 3  # 40 B each, at most 100 B per request: 2+2+1


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
    fast.latencies, fast.cache_hits, fast.cache_misses = [0.001, 0.003], 1, 3
    slow = JobResult(job=1, elapsed=2.0, bytes_read=10_000_000, events=100, requests=6)
    slow.latencies, slow.cache_misses = [0.002, 0.004], 4
    level = summarise([fast, slow], readahead=1 << 20, cache=10 << 20)
    assert level.jobs == 2
    assert level.wall_s == 2.0
    assert level.aggregate_mb_s == pytest.approx(10.0)
    assert level.per_job_mb_s == (pytest.approx(10.0), pytest.approx(5.0))
    assert level.mean_job_mb_s == pytest.approx(7.5)
    assert level.events_per_s == pytest.approx(100.0)
    assert level.requests == 10
    assert level.max_job_requests == 6
    assert level.latency_p50_ms == pytest.approx(2.5)
    assert level.cache_hit_fraction == pytest.approx(1 / 8)


# -- the file's layout and the plot (local, no server) ------------------------------------------


def test_read_pattern_covers_every_basket_of_the_sample(sample_dir) -> None:
    path = str(sample_dir / MC)
    pattern = read_pattern(path)
    tree = uproot.open(path)["events"]
    with_data = [b for b in tree.itervalues(recursive=True) if b.num_baskets > 0]
    assert pattern.tree == "events"
    assert pattern.branches == tuple(b.name for b in with_data)
    assert pattern.events == tree.num_entries
    assert pattern.clusters == len(tree.common_entry_offsets()) - 1
    basket_bytes = sum(int(sum(b.member("fBasketBytes")[: b.num_baskets])) for b in with_data)
    cluster_bytes = sum(s.nbytes for s in pattern.steps if s.vector)
    assert cluster_bytes == basket_bytes
    assert any(not s.vector for s in pattern.steps)  # the job's metadata reads come first
    assert not pattern.steps[0].vector


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


def test_a_reader_that_cannot_open_fails_the_level(tmp_path) -> None:
    gone = ReadPattern(str(tmp_path / "gone.root"), "events", ("x",), (Step(((0, 10),)),))
    with pytest.raises(InputError, match="reader 0 cannot open"):
        run_level(gone, StreamConfig(), BenchConfig(duration=0.5, startup_timeout=60), jobs=1)


def test_storage_bench_reports_a_missing_file(tmp_path, capsys) -> None:
    code = main(["bench", "storage", str(tmp_path / "missing.root"), "--duration", "1"])
    assert code != 0
    assert "not found" in capsys.readouterr().err
