"""hepstream's decoding pieces: the compiled std::vector header strip and libdeflate inflate."""

from __future__ import annotations

import zlib

import awkward as ak
import numpy as np
import pytest

from hepstream.decode import DECOMPRESS_ERRORS, inflate_zlib, strip_headers


def test_strip_headers_drops_each_entrys_header_and_keeps_empty_entries():
    header = 3
    entries = [[1, 2], [], [3], [4, 5, 6]]  # int16 items
    data, offsets = bytearray(), [0]
    for items in entries:
        data += b"HHH" + np.array(items, np.int16).tobytes()
        offsets.append(len(data))
    items, item_offsets = strip_headers(
        np.frombuffer(bytes(data), np.uint8), np.array(offsets, np.int32), header, 2
    )
    assert items.view(np.int16).tolist() == [1, 2, 3, 4, 5, 6]
    assert item_offsets.tolist() == [0, 2, 2, 3, 6]


@pytest.mark.parametrize(("offsets", "needle"), [
    ([0, 5, 40], "outside the basket"),  # past the end of a 12-byte basket
    ([0, 2, 12], "shorter than its header"),
])  # fmt: skip
def test_damaged_offsets_are_an_error_not_a_read_out_of_bounds(offsets, needle):
    data = np.zeros(12, np.uint8)
    with pytest.raises(ValueError, match=needle):
        strip_headers(data, np.array(offsets, np.int32), 3, 2)


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
    from bench.layouts import generate

    path = tmp_path_factory.mktemp("root") / "nano.root"
    generate("root-nanoaod", path, 12_000, seed=3)
    return str(path)


def test_uproots_zlib_reads_go_through_libdeflate_and_writers_keep_zlib(root_written):
    """What uproot still inflates itself (RNTuple pages, branches hepstream leaves to it)
    goes through libdeflate with uproot's own arrays; a zlib writer still writes zlib."""
    import uproot.compression

    from hepstream.decode import LibdeflateZLIB, use_fast_inflate

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
