import json
import sys
from pathlib import Path

import awkward as ak
import pyarrow.parquet as pq
import pytest
import uproot

from hepstream.io import StreamConfig
from hepstream.job.runner import JobSpec, run_job

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PLUGIN = str(EXAMPLES / "tau1n.py")
sys.path.insert(0, str(EXAMPLES))
from tau1n_awkward import tau1n_mask  # noqa: E402

BRANCHES = [
    "run",
    "event",
    "thrust",
    "missing_pt",
    "trk_p",
    "trk_charge",
    "trk_pid_e",
    "trk_pid_mu",
]
REPORT_FIELDS = {
    "events_read", "events_selected", "bytes_read", "requests", "wall_s", "cpu_s",
    "events_per_s", "kb_per_s", "cache_hits", "cache_misses", "site", "files",
    "hepstream_version", "status",
}  # fmt: skip


def _expected(path):
    events = uproot.open(path)["events"].arrays(library="ak")
    return events[tau1n_mask(events)]


def _written(path):
    return uproot.open(path)["events"].arrays(BRANCHES, library="ak")


@pytest.mark.xrootd
def test_streamed_and_local_runs_write_identical_outputs(sample_dir, xrootd_server, out_dir):
    name = "tau1n_data_000.root"
    local = run_job(
        JobSpec(PLUGIN, (str(sample_dir / name),), str(out_dir / "local.root"), site="disk")
    )
    streamed = run_job(
        JobSpec(
            PLUGIN,
            (xrootd_server.data_url(name),),
            str(out_dir / "streamed.root"),
            report=str(out_dir / "report.json"),
            site="loopback",
            chunk_bytes=1 << 20,  # several chunks: exercises the prefetch pipeline
        )
    )
    expected = _expected(sample_dir / name)
    assert local.events_selected == streamed.events_selected == len(expected)
    assert 0 < len(expected) < local.events_read
    assert ak.array_equal(_written(out_dir / "local.root"), _written(out_dir / "streamed.root"))
    assert ak.array_equal(_written(out_dir / "streamed.root"), expected[BRANCHES])

    report = json.loads((out_dir / "report.json").read_text())
    assert report.keys() >= REPORT_FIELDS
    assert report["status"] == "ok"
    assert report["site"] == "loopback"
    assert report["events_read"] == uproot.open(sample_dir / name)["events"].num_entries
    assert report["bytes_read"] > 0
    assert report["requests"] > 0
    assert report["files"][0]["status"] == "ok"
    assert report["cache_peak_bytes"] <= report["cache"]
    assert report["cache"] >= StreamConfig().cache


def test_parquet_output_holds_the_same_events(sample_dir, out_dir):
    inputs = (str(sample_dir / "tau1n_mc_000.root"),)
    run_job(JobSpec(PLUGIN, inputs, str(out_dir / "sel.root")))
    run_job(JobSpec(PLUGIN, inputs, str(out_dir / "sel.parquet")))
    from_root = _written(out_dir / "sel.root")
    from_parquet = ak.from_arrow(pq.read_table(out_dir / "sel.parquet"))
    assert len(from_root) == len(from_parquet) > 0
    for field in BRANCHES:
        assert ak.to_list(from_root[field]) == ak.to_list(from_parquet[field])


def _basket_codec(path: Path, branch: str) -> bytes | None:
    """The ROOT compression header's algorithm of ``branch``'s first basket, from disk
    (None: stored as it is, as ROOT and uproot do when compressing does not pay)."""
    with uproot.open(path) as file:
        b = file["events"][branch]
        basket = b.basket(0)
        if basket.compressed_bytes >= basket.uncompressed_bytes:
            return None
        at = int(b.member("fBasketSeek")[0]) + basket.member("fKeylen")
    with open(path, "rb") as raw:
        raw.seek(at)
        return raw.read(2)


@pytest.mark.parametrize(("codec", "magic"), [
    (None, b"ZS"), ("zlib:1", b"ZL"), ("lz4", b"L4"), ("zstd:19", b"ZS"),
])  # fmt: skip
def test_output_compression_is_the_jobs_choice(sample_dir, out_dir, codec, magic):
    """zstd:1 unless the job says otherwise; the events are the same whatever the codec."""
    inputs = (str(sample_dir / "tau1n_mc_000.root"),)
    out = out_dir / f"sel-{codec}.root"
    run_job(JobSpec(PLUGIN, inputs, str(out), **({"compression": codec} if codec else {})))
    assert {_basket_codec(out, b) for b in BRANCHES} - {None} == {magic}
    assert ak.array_equal(_written(out), _expected(inputs[0])[BRANCHES])


def test_many_inputs_are_concatenated_in_order(sample_dir, out_dir):
    inputs = (str(sample_dir / "tau1n_mc_000.root"), str(sample_dir / "tau11_mc_000.root"))
    report = run_job(JobSpec(PLUGIN, inputs, str(out_dir / "both.root"), chunk_bytes=1 << 20))
    expected = ak.concatenate([_expected(p)[BRANCHES] for p in inputs])
    assert ak.array_equal(_written(out_dir / "both.root"), expected)
    assert [f.events_selected for f in report.files] == [len(_expected(p)) for p in inputs]


def test_the_heap_frozen_for_a_job_is_given_back_after_it(sample_dir, out_dir, tmp_path):
    """run_job freezes the heap it starts with (the cycle collector skips it while the job
    runs) and unfreezes it when the job ends, whether it succeeded or failed; a heap the
    caller froze stays frozen."""
    import gc

    from hepstream.errors import InputError

    assert gc.get_freeze_count() == 0
    frozen = []
    gc.callbacks.append(lambda *_: frozen.append(gc.get_freeze_count()))
    try:
        run_job(JobSpec(PLUGIN, (str(sample_dir / "tau1n_mc_000.root"),), str(out_dir / "a.root")))
        gc.collect()  # after the job: nothing frozen
        assert gc.get_freeze_count() == 0
        assert max(frozen) > 0  # collections inside the job skipped the frozen heap
        with pytest.raises(InputError):
            run_job(JobSpec(PLUGIN, (str(tmp_path / "missing.root"),), str(out_dir / "b.root")))
        assert gc.get_freeze_count() == 0
        gc.freeze()  # a caller's own frozen heap stays frozen
        run_job(JobSpec(PLUGIN, (str(sample_dir / "tau1n_mc_000.root"),), str(out_dir / "c.root")))
        assert gc.get_freeze_count() > 0  # (less what died meanwhile)
    finally:
        gc.unfreeze()
        gc.callbacks.pop()


@pytest.mark.xrootd
def test_remote_output_is_uploaded_and_verified(sample_dir, xrootd_server, out_dir):
    name = "tau11_mc_000.root"
    run_job(
        JobSpec(
            PLUGIN,
            (xrootd_server.data_url(name),),
            xrootd_server.out_url("user/tau11.root"),
            report=xrootd_server.out_url("user/tau11.json"),
        )
    )
    served = xrootd_server.out_path("user")
    assert ak.array_equal(_written(served / "tau11.root"), _expected(sample_dir / name)[BRANCHES])
    assert json.loads((served / "tau11.json").read_text())["status"] == "ok"
    assert sorted(p.name for p in served.iterdir()) == ["tau11.json", "tau11.root"]


def test_empty_selection_still_writes_a_valid_tree(sample_dir, out_dir, tmp_path):
    plugin = tmp_path / "none.py"
    plugin.write_text(
        "import numpy as np, hepstream\n"
        "class Nothing(hepstream.Selection):\n"
        "    branches = ['thrust', 'trk_p']\n"
        "    def select(self, events):\n"
        "        return np.zeros(len(events), dtype=bool)\n"
    )
    report = run_job(
        JobSpec(str(plugin), (str(sample_dir / "tau11_mc_000.root"),), str(out_dir / "e.root"))
    )
    assert report.events_selected == 0
    tree = uproot.open(out_dir / "e.root")["events"]
    assert tree.num_entries == 0
    assert {"thrust", "trk_p"} <= set(tree.keys())


PRESELECT_PLUGIN = """
import numpy as np, hepstream

class Sparse(hepstream.Selection):
    branches = ["event", "thrust", "trk_p", "clus_e"]
    preselect = {preselect}

    def preselect_mask(self, events):
        return (events.event.to_numpy() % 20000) < 300   # only the first cluster survives

    def select(self, events):
        return ((events.event.to_numpy() % 20000) < 300) & (events.thrust.to_numpy() > 0.8)
"""


def test_preselection_skips_dead_clusters_and_changes_nothing(sample_dir, out_dir, tmp_path):
    results = {}
    for name, preselect in [("plain", []), ("pre", ["event"])]:
        plugin = tmp_path / f"{name}.py"
        plugin.write_text(PRESELECT_PLUGIN.format(preselect=preselect))
        results[name] = run_job(
            JobSpec(
                str(plugin), (str(sample_dir / "tau1n_mc_000.root"),), str(out_dir / f"{name}.root")
            )
        )
    plain, pre = results["plain"], results["pre"]
    assert plain.events_selected == pre.events_selected > 0
    assert pre.clusters_skipped > 0
    assert plain.clusters_skipped == 0
    # what was saved: the non-preselect baskets of every cluster after the first
    tree = uproot.open(sample_dir / "tau1n_mc_000.root")["events"]
    first_cluster_end = tree.common_entry_offsets()[1]
    skipped_bytes = sum(
        where[1] - where[0]
        for name in ("thrust", "trk_p", "clus_e")
        for _, where in tree[name].entries_to_ranges_or_baskets(first_cluster_end, tree.num_entries)
    )
    assert plain.bytes_read - pre.bytes_read >= 0.9 * skipped_bytes > 0
    fields = ["event", "thrust", "trk_p", "clus_e"]
    a = uproot.open(out_dir / "plain.root")["events"].arrays(fields)
    b = uproot.open(out_dir / "pre.root")["events"].arrays(fields)
    assert ak.array_equal(a, b)


@pytest.mark.xrootd
def test_prefetch_serves_later_chunks_from_the_cache(xrootd_server, out_dir):
    spec = JobSpec(
        PLUGIN,
        (xrootd_server.data_url("tau1n_data_000.root"),),
        str(out_dir / "p.root"),
        chunk_bytes=256 << 10,
    )
    report = run_job(spec)
    assert report.cache_hits > 0
    assert report.cache_peak_bytes <= report.cache
    fixed = run_job(
        JobSpec(
            PLUGIN,
            spec.inputs,
            str(out_dir / "f.root"),
            chunk_bytes=256 << 10,
            stream=StreamConfig(cache=1 << 20),
            auto_cache=False,
        )
    )
    assert fixed.cache == 1 << 20
    assert fixed.cache_peak_bytes <= 1 << 20
    assert fixed.events_selected == report.events_selected


@pytest.mark.xrootd
def test_baskets_are_fetched_ahead_across_files(xrootd_server, out_dir):
    """Every basket of a many-file remote job comes from the read plan, including at file
    edges; only each file's first (metadata) read misses. Without fetch-ahead, reads wait
    for their bytes more often. Depth, decompression threads and preselection change
    nothing in the output."""
    url = xrootd_server.data_url("tau1n_data_000.root")
    inputs = (url, url, url, url)  # four opens of one file: the same bytes, four file edges
    deep = run_job(JobSpec(PLUGIN, inputs, str(out_dir / "deep.root"), chunk_bytes=256 << 10))
    assert deep.cache_misses == len(inputs)
    assert deep.cache_hits > 10 * len(inputs)
    plain = run_job(
        JobSpec(
            PLUGIN, inputs, str(out_dir / "plain.root"), chunk_bytes=256 << 10,
            fetch_ahead=0, decompress_threads=1, open_ahead=1,
        )
    )  # fmt: skip
    assert plain.cache_misses == deep.cache_misses
    assert plain.reads_waited > deep.reads_waited
    assert deep.events_selected == plain.events_selected > 0
    assert ak.array_equal(_written(out_dir / "deep.root"), _written(out_dir / "plain.root"))


@pytest.mark.parametrize(
    ("option", "value"), [("fetch_ahead", -1), ("open_ahead", 0), ("decompress_threads", 0)]
)
def test_pipeline_options_are_checked_before_any_io(option, value):
    from hepstream.errors import ConfigError
    from hepstream.job.runner import validate_spec

    with pytest.raises(ConfigError, match=option):
        validate_spec(
            JobSpec(PLUGIN, ("root://nowhere.invalid//x.root",), "o.root", **{option: value})
        )


@pytest.mark.xrootd
@pytest.mark.parametrize("readahead", ["4M", "16M"])
def test_a_readahead_above_the_readv_element_limit_streams_the_same(
    sample_dir, xrootd_server, out_dir, readahead
):
    """Read-ahead windows larger than one kXR_readv element (2 MiB - 16) are cut to the
    server's limits; before, the server refused: ``[3008] Single readv transfer is too large``."""
    from hepstream.cli.analyst import spec_from_options

    name = "tau1n_mc_000.root"
    spec = spec_from_options(
        PLUGIN, [xrootd_server.data_url(name)], str(out_dir / "ra.root"), readahead=readahead
    )
    assert spec.stream.readahead > 2 << 20
    report = run_job(spec)
    assert report.status == "ok"
    assert report.events_read == 20_000
    assert report.vector_reads > 0
    expected = _expected(sample_dir / name)
    assert ak.array_equal(_written(out_dir / "ra.root"), expected[BRANCHES])
