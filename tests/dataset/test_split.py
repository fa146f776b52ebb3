"""Pure splitting: files or events per job, cluster aligned, every entry exactly once."""

from __future__ import annotations

import pytest

from hepstream.dataset.layout import read_layouts, resolve_inputs
from hepstream.dataset.split import FileLayout, by_events, by_files, job_name, make_jobs
from hepstream.errors import ConfigError, InputError
from hepstream.jobspec import JobSpec
from hepstream.root.chunks import clip_chunks

BIG = FileLayout(
    "big.root", 10_000, (0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000)
)
SMALL = [FileLayout(f"s{i}.root", 300, (0, 100, 200, 300)) for i in range(3)]
ODD = FileLayout("odd.root", 5000, (0, 4000, 5000))  # one cluster bigger than the target


def _covered(groups):
    """(path, entry) pairs read, with multiplicity."""
    return sorted((p, e) for job in groups for p, a, b in job for e in range(a, b, 50))


def _all(layouts):
    return sorted((f.path, e) for f in layouts for e in range(0, f.entries, 50))


def test_by_files_groups_whole_files_in_order():
    groups = by_files(SMALL, 2)
    assert groups == [[("s0.root", 0, 300), ("s1.root", 0, 300)], [("s2.root", 0, 300)]]


@pytest.mark.parametrize("target", [1, 150, 999, 1000, 2500, 4000, 10_000, 50_000])
def test_by_events_reads_every_entry_once_on_cluster_edges(target):
    layouts = [BIG, *SMALL, ODD]
    groups = by_events(layouts, target)
    assert _covered(groups) == _all(layouts)
    edges = {f.path: set(f.clusters) for f in layouts}
    for job in groups:
        for path, start, stop in job:
            assert start in edges[path]
            assert stop in edges[path]


def test_one_big_file_becomes_several_jobs():
    groups = by_events([BIG], 2500)
    assert groups == [
        [("big.root", 0, 3000)],
        [("big.root", 3000, 6000)],
        [("big.root", 6000, 9000)],
        [("big.root", 9000, 10_000)],
    ]


def test_small_files_share_a_job_and_a_big_cluster_is_one_job():
    assert by_events(SMALL, 500) == [
        [("s0.root", 0, 300), ("s1.root", 0, 200)],
        [("s1.root", 200, 300), ("s2.root", 0, 300)],
    ]
    assert by_events([ODD], 1000) == [[("odd.root", 0, 4000)], [("odd.root", 4000, 5000)]]


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="files-per-job"):
        by_files(SMALL, 0)
    with pytest.raises(ConfigError, match="events-per-job"):
        by_events(SMALL, 0)


def test_make_jobs_names_paths_and_ranges_only_where_partial():
    template = JobSpec("/p.py", ("-",), "-", site="s")
    layouts = [BIG, *SMALL]
    jobs = make_jobs(by_events(layouts, 4500), layouts, template, "/ds/x/")
    assert (
        [j.name for j in jobs]
        == [job_name(0), job_name(1), job_name(2)]
        == ["job-00000", "job-00001", "job-00002"]
    )
    first, second, third = jobs
    assert first.spec.inputs == ("big.root",)
    assert first.spec.entry_ranges == ((0, 5000),)
    assert second.spec.entry_ranges == ((5000, 10_000),)
    assert third.spec.inputs == ("s0.root", "s1.root", "s2.root")
    assert third.spec.entry_ranges == ()  # whole files: runs on any reader
    assert first.spec.output == "/ds/x/outputs/job-00000.parquet"
    assert first.spec.report == "/ds/x/reports/job-00000.json"
    assert sum(j.events for j in jobs) == 10_900
    assert all(j.spec.site == "s" and j.spec.plugin == "/p.py" for j in jobs)


def test_make_jobs_is_stable():
    template = JobSpec("/p.py", ("-",), "-", site="s")
    a = make_jobs(by_files(SMALL, 1), SMALL, template, "/d")
    b = make_jobs(by_files(SMALL, 1), SMALL, template, "/d")
    assert a == b


def test_clip_chunks_is_the_reader_hook_for_entry_ranges():
    chunks = [(0, 2000), (2000, 4000), (4000, 6000)]
    assert clip_chunks(chunks, None) == chunks
    assert clip_chunks(chunks, (2000, 4000)) == [(2000, 4000)]
    assert clip_chunks(chunks, (1000, None)) == [(1000, 2000), (2000, 4000), (4000, 6000)]
    assert clip_chunks(chunks, (6000, 7000)) == []


def test_inputs_from_a_file_list_and_globs(dataset_files, tmp_path):
    listing = tmp_path / "files.txt"
    listing.write_text(f"# two files\n{dataset_files[1]}\n\n{dataset_files[0]}\n")
    glob = str(dataset_files[0].parent / "tau1n_[23].root")
    paths = resolve_inputs([f"@{listing}", glob])
    assert paths == [
        str(dataset_files[1]),
        str(dataset_files[0]),
        str(dataset_files[2]),
        str(dataset_files[3]),
    ]
    (layout,) = read_layouts(paths[:1], "events")
    assert layout.entries == 6000
    assert layout.clusters[0] == 0
    assert layout.clusters[-1] == 6000
    assert len(layout.clusters) > 2  # several clusters: events splitting has edges to use
    with pytest.raises(InputError, match="cannot read file list"):
        resolve_inputs([f"@{tmp_path / 'none.txt'}"])
    with pytest.raises(InputError, match="no TTree 'nope'"):
        read_layouts(paths[:1], "nope")


@pytest.mark.xrootd
def test_root_globs_are_listed_and_split_over_xrootd(xrootd_server):
    paths = resolve_inputs([xrootd_server.data_url("tau1n_*_000.root")])
    assert [p.rsplit("/", 1)[1] for p in paths] == ["tau1n_data_000.root", "tau1n_mc_000.root"]
    layouts = read_layouts(paths, "events")
    assert [f.entries for f in layouts] == [20_000, 20_000]
    groups = by_events(layouts, 15_000)
    assert sum(b - a for job in groups for _, a, b in job) == 40_000
    assert len(groups) == 3  # 20k-event files in 5k clusters: 15k, 5k+10k, 10k
