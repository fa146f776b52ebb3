"""hepstream's decoding pieces: the compiled list unpacking and libdeflate inflate."""

from __future__ import annotations

import struct
import threading
import zlib

import awkward as ak
import numpy as np
import pytest
import uproot
import uproot.compression

from bench.layouts import generate
from hepstream.io.pool import WorkPool
from hepstream.root.decompress import (
    DECOMPRESS_ERRORS,
    LibdeflateZLIB,
    inflate_zlib,
    use_fast_inflate,
)
from hepstream.root.lists import unpack_lists


def _basket(entries: list[list[int]], header: int, dtype: str, keylen: int = 70):
    """A basket payload of lists as ROOT lays it out: each entry's header (a vector's: its
    byte count with kByteCountMask, version 9, size) and items, then an int32 count and
    every entry's byte offset from the key's start (big-endian)."""
    body, starts = bytearray(), []
    for items in entries:
        starts.append(keylen + len(body))
        data = np.array(items, dtype).tobytes()
        head = struct.pack(">IhI", (6 + len(data)) | 0x40000000, 9, len(items))
        body += head[:header] + data
    border = len(body)
    body += np.array([len(entries) + 1, *starts, 0], ">i4").tobytes()
    return np.frombuffer(bytes(body), np.uint8), border, keylen


@pytest.mark.parametrize("dtype", [">i2", ">f4", ">f8", ">u8", "|i1"])
@pytest.mark.parametrize("header", [0, 10])
def test_unpack_lists_drops_headers_swaps_bytes_and_keeps_empty_entries(dtype, header):
    entries = [[1, 2], [], [3], [4, 5, 6], [7]]
    data, border, keylen = _basket(entries, header, dtype)
    for lo, hi in [(0, 5), (1, 4), (3, 5), (2, 2)]:
        values, counts = unpack_lists(data, border, keylen, 5, lo, hi, header, np.dtype(dtype))
        assert values.dtype.isnative
        assert values.dtype == np.dtype(dtype).newbyteorder("=")
        assert values.tolist() == [x for items in entries[lo:hi] for x in items]
        assert counts.tolist() == [len(items) for items in entries[lo:hi]]


@pytest.mark.parametrize("damage", ["outside", "decreasing", "short", "partial"])
def test_damaged_offsets_are_an_error_not_a_read_out_of_bounds(damage):
    data, border, keylen = _basket([[1, 2], [3], [4, 5]], 3, ">i2")
    data = data.copy()
    table = data[border + 4 :].view(">i4")
    if damage == "outside":
        table[1] = keylen + 10_000
    elif damage == "decreasing":
        table[2] = table[1] - 1
    elif damage == "short":  # an entry shorter than its header
        table[1] = table[0] + 2
    else:  # half an item
        table[1] += 1
    with pytest.raises(ValueError, match="entry offsets are damaged"):
        unpack_lists(data, border, keylen, 3, 0, 3, 3, np.dtype(">i2"))
    with pytest.raises(ValueError, match="no entry offsets"):
        unpack_lists(data[: border + 4], border, keylen, 3, 0, 3, 3, np.dtype(">i2"))


@pytest.mark.parametrize("moved", [4, -4])
def test_vector_offsets_that_disagree_with_the_vectors_own_header_are_an_error(moved):
    """An entry offset moved by one whole item still falls on items, within the basket
    and rising: only the vectors' own headers (byte count, size) show the damage, which
    would otherwise give two lists of one branch family different lengths unseen."""
    data, border, keylen = _basket([[1.0, 2.0], [3.0], [4.0, 5.0]], 10, ">f4")
    data = data.copy()
    data[border + 4 :].view(">i4")[2] += moved  # where entry 1 starts
    with pytest.raises(ValueError, match="entry offsets are damaged"):
        unpack_lists(data, border, keylen, 3, 0, 3, 10, np.dtype(">f4"))


def test_inflate_gives_zlibs_bytes_and_damage_is_an_inflate_error():
    data = np.arange(50_000, dtype=">f4").tobytes()
    stream = zlib.compress(data, 1)
    assert bytes(inflate_zlib(stream, len(data))) == data
    assert len(inflate_zlib(stream, len(data) + 7)) == len(data)  # the caller compares sizes
    damaged = bytearray(stream)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(DECOMPRESS_ERRORS):
        inflate_zlib(bytes(damaged), len(data))


@pytest.fixture(scope="module")
def root_written(tmp_path_factory) -> str:
    """ROOT's own NanoAOD-like TTree (RDataFrame Snapshot, ROOT's defaults)."""
    path = tmp_path_factory.mktemp("root") / "nano.root"
    generate("root-nanoaod", path, 12_000, seed=3)
    return str(path)


def test_uproots_zlib_reads_go_through_libdeflate_and_writers_keep_zlib(root_written):
    """What uproot still inflates itself (RNTuple pages, branches hepstream leaves to it)
    goes through libdeflate with uproot's own arrays; a zlib writer still writes zlib."""
    assert use_fast_inflate()
    inflate = uproot.compression._decompress_ZLIB
    assert isinstance(inflate, LibdeflateZLIB)
    assert inflate.library == "libdeflate"
    assert uproot.ZLIB(1).library == "zlib"
    inflate.library = "zlib"  # uproot's own inflate, for the reference arrays
    try:
        with uproot.open(root_written) as file:
            assert isinstance(file.file.compression, uproot.ZLIB)  # ROOT's default: the case
            plain = file["Events"].arrays(["Muon_pt", "MET_pt", "Jet_pt"], library="ak")
    finally:
        inflate.library = "libdeflate"
    with uproot.open(root_written) as file:
        fast = file["Events"].arrays(["Muon_pt", "MET_pt", "Jet_pt"], library="ak")
    assert ak.array_equal(fast, plain)


def test_decode_pool_runs_calls_in_order_and_stops_cleanly():
    """The files' decompression executor: ``run`` (no Future) for hepstream's decoders,
    ``submit`` (a Future) for uproot's; work not started is dropped on a cancelling
    shutdown; nothing is taken after shutdown; its threads are gone."""
    pool = WorkPool(1, name="test-decode")
    gate, seen = threading.Event(), []
    pool.run(gate.wait, 10)  # holds the one thread until the queue below is built
    pool.run(seen.append, 1)
    future = pool.submit(lambda a, b=0: a + b, 2, b=3)
    failed = pool.submit(lambda: 1 / 0)
    pool.run(seen.append, 2)
    gate.set()
    assert future.result(timeout=10) == 5
    with pytest.raises(ZeroDivisionError):
        failed.result(timeout=10)
    pool.run(lambda: 1 / 0)  # a call that raises does not take its thread down
    done = pool.submit(lambda: "still here")
    assert done.result(timeout=10) == "still here"
    assert seen == [1, 2]

    gate.clear()
    pool.run(gate.wait, 10)
    late = pool.submit(seen.append, 3)
    threading.Timer(0.2, gate.set).start()
    pool.shutdown(wait=True, cancel_futures=True)
    assert late.cancelled()  # dropped before it started
    assert seen == [1, 2]
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.run(seen.append, 4)
    assert not [t for t in threading.enumerate() if t.name.startswith("test-decode")]
