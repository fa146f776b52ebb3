"""hepstream's own TTree basket decoder gives exactly uproot's arrays: on ROOT's files (RVec
with per-entry headers), on uproot's (counted lists), for every number type, every codec,
baskets cut by the entry range, multi-block baskets; damage is one clear error."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from columnhelpers import NUMBERS, UPROOT_CODECS, number_batch, same

from hepstream.baskets import BasketColumn
from hepstream.decode import DecodePool
from hepstream.errors import InputError
from hepstream.inputs import TreeInput


@pytest.fixture(scope="module")
def root_written(tmp_path_factory) -> str:
    """ROOT's own NanoAOD-like TTree (RDataFrame Snapshot, ROOT's defaults): RVec columns
    stored with a 10-byte header per entry, bools, unsigned counters, 64-bit ids."""
    from bench.layouts import generate

    path = tmp_path_factory.mktemp("root") / "nano.root"
    generate("root-nanoaod", path, 12_000, seed=3)
    return str(path)


def test_root_written_branches_decode_to_uproots_arrays(root_written):
    with uproot.open(root_written) as file:
        tree = file["Events"]
        names = list(tree.keys())
        columns = {name: BasketColumn.of(tree[name]) for name in names}
        headed = [n for n, c in columns.items() if c is not None and c.header]
        assert len(headed) >= 30  # Muon_*, Electron_*, Jet_*, ...: the case under test
        assert any(c is not None and c.stored.kind == "b" for c in columns.values())
        store = TreeInput(root_written, tree)
        same(store, tree, names, 0, store.num_entries)  # every branch, ours or uproot's
        same(store, tree, ["Muon_pt", "nMuon", "MET_pt"], 4_321, 9_876)  # cuts baskets
        same(store, tree, ["Muon_pt", "MET_pt"], 700, 700)  # no entries: types still right


@pytest.fixture(scope="module")
def uproot_written(tmp_path_factory) -> dict[str, str]:
    """One file per codec: every number type flat and as a counted list, 4 baskets."""
    rng = np.random.default_rng(7)
    base = tmp_path_factory.mktemp("up")
    paths = {}
    for codec, compression in UPROOT_CODECS.items():
        path = base / f"{codec}.root"
        branches = {f"x_{t}": t for t in NUMBERS} | {"flag": "bool"}
        branches |= {f"v_{t}": f"var * {np.dtype(t).name}" for t in NUMBERS}
        with uproot.recreate(path, compression=compression) as out:
            tree = out.mktree("t", branches)
            for n in (1000, 1, 2500, 700):  # uneven baskets, one of a single entry
                tree.extend(number_batch(rng, n))
        paths[codec] = str(path)
    return paths


@pytest.mark.parametrize("codec", UPROOT_CODECS)
def test_every_number_type_and_codec_decodes_to_uproots_arrays(uproot_written, codec):
    path = uproot_written[codec]
    with uproot.open(path, decompression_executor=DecodePool(2)) as file:
        tree = file["t"]
        names = list(tree.keys())
        assert all(BasketColumn.of(tree[name]) is not None for name in names)
        store = TreeInput(path, tree)
        same(store, tree, names, 0, store.num_entries)
        same(store, tree, names, 999, 1001)  # the 1-entry basket and both neighbours
        same(store, tree, names, 17, 3_900)


def test_a_basket_of_several_compression_blocks(tmp_path):
    """A basket over 16 MiB is stored in several blocks: uproot's decompression takes
    it; the arrays are still uproot's."""
    path = tmp_path / "big.root"
    rng = np.random.default_rng(1)
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as out:
        out.mktree("t", {"x": "f8"}).extend({"x": rng.random(2_500_000)})  # 20 MB basket
    with uproot.open(path) as file:
        tree = file["t"]
        assert tree["x"].basket_compressed_bytes(0) > 16 << 20  # the case under test
        same(TreeInput(str(path), tree), tree, ["x"], 0, tree.num_entries)


def test_other_branch_kinds_are_left_to_uproot(tmp_path):
    path = tmp_path / "kinds.root"
    with uproot.recreate(path) as out:
        out.mktree("t", {"s": "string", "a": "3 * float32", "x": "int32"}).extend({
            "s": np.array(["a", "bb", ""]), "a": np.arange(9, dtype="f4").reshape(3, 3),
            "x": np.arange(3, dtype="i4"),
        })  # fmt: skip
    # the job's executor serves uproot's own decompression of the other kinds as well
    with uproot.open(path, decompression_executor=DecodePool(2)) as file:
        tree = file["t"]
        assert BasketColumn.of(tree["s"]) is None
        assert BasketColumn.of(tree["a"]) is None
        assert BasketColumn.of(tree["x"]) is not None
        same(TreeInput(str(path), tree), tree, ["x", "s", "a"], 0, 3)


def test_damaged_entry_offsets_are_one_error_naming_the_file(tmp_path):
    """An uncompressed list basket whose entry offsets point outside it: an InputError
    naming file and entries, not a crash or a read out of bounds."""
    path = tmp_path / "damaged.root"
    with uproot.recreate(path, compression=None) as out:
        out.mktree("t", {"v": "var * int32"}).extend(
            {"v": ak.Array([[1, 2], [3], [], [4, 5, 6]] * 50)}
        )
    with uproot.open(path) as file:
        branch = file["t"]["v"]
        seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    raw = bytearray(path.read_bytes())
    # the offsets table is the basket's tail: an int32 count, one offset per entry, a 0
    at = seek + size - 8 - 4 * 100
    raw[at : at + 4] = (10**6).to_bytes(4, "big")
    path.write_bytes(bytes(raw))
    with uproot.open(path) as file, pytest.raises(InputError, match=r"damaged.root.*entries 0-200"):
        TreeInput(str(path), file["t"]).arrays(["v"], 0, 200)


def test_prepared_chunks_give_the_same_arrays(uproot_written):
    """``prepare`` starts a chunk's reads while an earlier chunk is still to be built (the
    reader decodes one chunk ahead): each chunk's arrays are still uproot's."""
    path = uproot_written["zlib"]
    with uproot.open(path) as file:
        tree = file["t"]
        names = list(tree.keys())
        store = TreeInput(path, tree)
        chunks = [(0, 1000), (1000, 3000), (3000, store.num_entries)]
        store.prepare(names, *chunks[0])
        store.prepare(names, *chunks[1])
        same(store, tree, names, *chunks[0])
        store.prepare(names, *chunks[2])
        same(store, tree, names, *chunks[1])
        same(store, tree, names, *chunks[2])
        same(store, tree, names, 10, 20)  # never prepared: read when asked for
