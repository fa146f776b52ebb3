"""The compiled std::vector decoder gives exactly uproot's arrays, on files ROOT wrote."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from hepstream.decode import StrippedJagged, strip_headers, use_fast_vectors
from hepstream.inputs import TreeInput


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


@pytest.fixture(scope="module")
def root_written(tmp_path_factory) -> str:
    """ROOT's own NanoAOD-like TTree (RDataFrame Snapshot, ROOT's defaults): its jagged
    columns are stored as one vector, with its header, per entry."""
    from bench.layouts import generate

    path = tmp_path_factory.mktemp("root") / "nano.root"
    generate("root-nanoaod", path, 12_000, seed=3)
    return str(path)


def test_root_written_vectors_decode_to_uproots_own_arrays(root_written):
    with uproot.open(root_written) as plain:
        tree = plain["Events"]
        jagged = [
            name for name, branch in tree.items()
            if getattr(branch.interpretation, "header_bytes", 0) > 0
        ]  # fmt: skip
        assert len(jagged) >= 30  # Muon_*, Electron_*, Jet_*, ...: the case under test
        want = tree.arrays([*jagged, "nMuon"], library="ak")
    with uproot.open(root_written) as fast:
        store = TreeInput(root_written, fast["Events"])
        got = store.arrays([*jagged, "nMuon"], 0, store.num_entries)
        assert all(isinstance(fast["Events"][n].interpretation, StrippedJagged) for n in jagged)
        part = store.arrays(["Muon_pt"], 4_321, 9_876)  # a range cutting baskets
    for name in [*jagged, "nMuon"]:
        assert ak.array_equal(got[name], want[name]), name
        assert got[name].type == want[name].type, name
    assert ak.array_equal(part["Muon_pt"], want["Muon_pt"][4_321:9_876])


def test_uproot_written_jagged_branches_keep_uproots_interpretation(tmp_path):
    path = tmp_path / "up.root"
    with uproot.recreate(path) as out:
        out.mktree("t", {"x": "var * float64"})
        out["t"].extend({"x": ak.Array([[1.0, 2.0], [], [3.0]])})
    with uproot.open(path) as file:
        assert use_fast_vectors(file["t"], ["x", "nx"]) == 0  # no headers: nothing to strip
        assert not isinstance(file["t"]["x"].interpretation, StrippedJagged)
        assert file["t"]["x"].array().tolist() == [[1.0, 2.0], [], [3.0]]


def test_zlib_baskets_are_inflated_by_isal_for_reading_only(root_written, tmp_path):
    """ROOT's zlib baskets read through ISA-L give uproot's zlib arrays; a zlib writer
    still writes with zlib (files any ROOT reads)."""
    import uproot.compression

    from hepstream.decode import use_fast_inflate

    assert use_fast_inflate()
    inflate = uproot.compression._decompress_ZLIB
    assert inflate.library == "isal"
    assert uproot.ZLIB(1).library == "zlib"
    inflate.library = "zlib"  # uproot's own inflate, for the reference arrays
    try:
        with uproot.open(root_written) as file:
            assert isinstance(file.file.compression, uproot.ZLIB)  # ROOT's default: the case
            plain = file["Events"].arrays(["Muon_pt", "MET_pt", "Jet_pt"], library="ak")
    finally:
        inflate.library = "isal"
    with uproot.open(root_written) as file:
        fast = file["Events"].arrays(["Muon_pt", "MET_pt", "Jet_pt"], library="ak")
    assert ak.array_equal(fast, plain)
