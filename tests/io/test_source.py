import awkward as ak
import pytest
import uproot

from hepstream.errors import InputError
from hepstream.io import StreamConfig, StreamingSource, expand_inputs, open_source

MC = "tau1n_mc_000.root"


def _arrays(path, config=None):
    with uproot.open(path, handler=StreamingSource, hepstream_config=config) as file:
        tree = file["events"]
        arrays = tree.arrays(library="ak")
        return arrays, file.file.source.stats


def test_local_source_reads_what_uproot_reads(sample_dir):
    ours, stats = _arrays(str(sample_dir / MC))
    theirs = uproot.open(sample_dir / MC)["events"].arrays(library="ak")
    assert ak.array_equal(ours, theirs)
    assert stats.bytes_read >= (sample_dir / MC).stat().st_size * 0.5
    assert stats.cache_peak <= StreamConfig().cache


@pytest.mark.xrootd
def test_root_url_and_disk_give_identical_arrays(sample_dir, xrootd_server):
    remote, stats = _arrays(xrootd_server.data_url(MC))
    local = uproot.open(sample_dir / MC)["events"].arrays(library="ak")
    assert remote.fields == local.fields
    assert ak.array_equal(remote, local)
    assert stats.vector_reads > 0


@pytest.mark.xrootd
@pytest.mark.parametrize("cache", [256 << 10, 2 << 20, 10 << 20])
def test_cache_never_exceeds_its_bound(xrootd_server, cache):
    config = StreamConfig(readahead=1 << 20, cache=cache)
    with uproot.open(
        xrootd_server.data_url(MC), handler=StreamingSource, hepstream_config=config
    ) as file:
        tree = file["events"]
        source = file.file.source
        for start, stop in zip(
            tree.common_entry_offsets()[:-1], tree.common_entry_offsets()[1:], strict=True
        ):
            tree.arrays(["trk_p", "clus_e", "thrust"], entry_start=start, entry_stop=stop)
            assert source.cache.held <= cache
        assert source.stats.cache_peak <= cache
        assert source.stats.cache_peak > 0


@pytest.mark.xrootd
def test_readahead_turns_small_reads_into_hits(xrootd_server):
    with open_source(xrootd_server.data_url(MC), StreamConfig(readahead=64 << 10)) as source:
        first = source.chunk(0, 100).raw_data.tobytes()
        second = source.chunk(100, 1000).raw_data.tobytes()
        assert source.stats.requests == 1
        assert source.stats.cache_hits == 1
        assert len(first) == 100
        assert len(second) == 900


def test_chunks_deliver_every_range_once(sample_dir):
    import queue

    path = sample_dir / MC
    blob = path.read_bytes()
    ranges = [(i * 5000, i * 5000 + 300) for i in range(200)] + [(900_000, 4_000_000)]
    with open_source(str(path), StreamConfig(coalesce_gap=0, max_request_bytes=64 << 10)) as source:
        notifications: queue.Queue = queue.Queue()
        chunks = source.chunks(ranges, notifications)
        delivered = {id(notifications.get(timeout=10)) for _ in ranges}
        assert delivered == {id(c) for c in chunks}
        for (start, stop), chunk in zip(ranges, chunks, strict=True):
            assert chunk.raw_data.tobytes() == blob[start:stop]
        assert source.stats.requests > 1


def test_missing_local_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_source(str(tmp_path / "nope.root"))


@pytest.mark.xrootd
def test_missing_remote_file_is_an_input_error(xrootd_server):
    with pytest.raises(InputError, match="cannot open"):
        open_source(xrootd_server.data_url("nope.root"))


@pytest.mark.xrootd
def test_remote_glob_lists_the_directory(xrootd_server, sample_dir):
    found = expand_inputs([xrootd_server.data_url("tau1n_*.root")])
    names = sorted(p.name for p in sample_dir.glob("tau1n_*.root"))
    assert [f.rsplit("/", 1)[1] for f in found] == names
    with pytest.raises(InputError, match="no input matches"):
        expand_inputs([xrootd_server.data_url("zzz_*.root")])


@pytest.mark.xrootd
def test_planned_baskets_are_fetched_ahead_and_served_from_the_plan(xrootd_server):
    """Basket seeks come from numpy arrays; the remote plan must still be fetched, ahead,
    and uproot's reads then served from it without another request."""
    import time

    from hepstream.io.spans import plan_reads

    with uproot.open(
        xrootd_server.data_url(MC), handler=StreamingSource,
        hepstream_config=StreamConfig(cache=64 << 20),
    ) as file:  # fmt: skip
        tree = file["events"]
        source = file.file.source
        ranges = [
            where
            for name in ("trk_p", "thrust")
            for _, where in tree[name].entries_to_ranges_or_baskets(0, tree.num_entries)
        ]
        plan = plan_reads([[(a, b, False) for a, b in ranges]])
        reads = source.set_plan(plan)
        deadline = time.monotonic() + 10
        while (
            source.stats.bytes_read - source.stats.metadata_bytes
            < plan.needed_bytes
            - sum(len(p) for pieces in reads._prefilled.values() for _, p in pieces)
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        before = source.stats.requests
        tree.arrays(["trk_p", "thrust"])
        assert source.stats.requests == before  # every basket came from the plan
        stats = source.stats
        assert stats.unplanned_bytes == 0
        assert stats.bytes_needed == stats.bytes_read
