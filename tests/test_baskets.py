"""hepstream's own TTree basket decoder gives exactly uproot's arrays: on ROOT's files (RVec
with per-entry headers), on uproot's (counted lists), for every number type, every codec,
baskets cut by the entry range, multi-block baskets; damage is one clear error."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from columnhelpers import NUMBERS, UPROOT_CODECS, number_batch, same

import hepstream.root.baskets
from bench.layouts import generate
from hepstream.errors import InputError
from hepstream.io.pool import WorkPool
from hepstream.root.baskets import BasketColumn, start_columns
from hepstream.root.decompress import DECOMPRESS_ERRORS
from hepstream.root.ttree import TTreeStore


@pytest.fixture(scope="module")
def root_written(tmp_path_factory) -> str:
    """ROOT's own NanoAOD-like TTree (RDataFrame Snapshot, ROOT's defaults): RVec columns
    stored with a 10-byte header per entry, bools, unsigned counters, 64-bit ids."""
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
        store = TTreeStore(root_written, tree)
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
    with uproot.open(path, decompression_executor=WorkPool(2)) as file:
        tree = file["t"]
        names = list(tree.keys())
        assert all(BasketColumn.of(tree[name]) is not None for name in names)
        store = TTreeStore(path, tree)
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
        same(TTreeStore(str(path), tree), tree, ["x"], 0, tree.num_entries)


def test_other_branch_kinds_are_left_to_uproot(tmp_path):
    path = tmp_path / "kinds.root"
    with uproot.recreate(path) as out:
        out.mktree("t", {"s": "string", "a": "3 * float32", "x": "int32"}).extend(
            {
                "s": np.array(["a", "bb", ""]),
                "a": np.arange(9, dtype="f4").reshape(3, 3),
                "x": np.arange(3, dtype="i4"),
            }
        )
    # the job's executor serves uproot's own decompression of the other kinds as well
    with uproot.open(path, decompression_executor=WorkPool(2)) as file:
        tree = file["t"]
        assert BasketColumn.of(tree["s"]) is None
        assert BasketColumn.of(tree["a"]) is None
        assert BasketColumn.of(tree["x"]) is not None
        same(TTreeStore(str(path), tree), tree, ["x", "s", "a"], 0, 3)


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
        TTreeStore(str(path), file["t"]).arrays(["v"], 0, 200)


def test_prepared_chunks_give_the_same_arrays(uproot_written):
    """``prepare`` starts a chunk's reads while an earlier chunk is still to be built (the
    reader decodes one chunk ahead): each chunk's arrays are still uproot's."""
    path = uproot_written["zlib"]
    with uproot.open(path) as file:
        tree = file["t"]
        names = list(tree.keys())
        store = TTreeStore(path, tree)
        chunks = [(0, 1000), (1000, 3000), (3000, store.num_entries)]
        store.prepare(names, *chunks[0])
        store.prepare(names, *chunks[1])
        same(store, tree, names, *chunks[0])
        store.prepare(names, *chunks[2])
        same(store, tree, names, *chunks[1])
        same(store, tree, names, *chunks[2])
        same(store, tree, names, 10, 20)  # never prepared: read when asked for


class _Ahead:
    """An uproot source whose bytes are all there before ``chunks`` returns, as when the
    read plan fetched them ahead: every range is handed over at once."""

    def __init__(self, source) -> None:
        self.source = source

    def chunks(self, ranges, notifications):
        chunks = [self.source.chunk(start, stop) for start, stop in ranges]
        for chunk in chunks:
            chunk.wait()
            notifications.put(chunk)
        return chunks


class _Counting(WorkPool):
    def __init__(self, threads: int) -> None:
        super().__init__(threads, name="test-batches")
        self.calls = 0

    def run(self, fn, *args) -> None:
        self.calls += 1
        super().run(fn, *args)


def _batched(path: str, names: list[str], start: int, stop: int, pool: WorkPool):
    with uproot.open(path) as file:
        tree = file["t"]
        columns = [BasketColumn.of(tree[name]) for name in names]
        got = start_columns(columns, _Ahead(file.file.source), start, stop, pool)()
        want = tree.arrays(names, entry_start=start, entry_stop=stop, library="ak")
    return got, want


@pytest.mark.parametrize("codec", UPROOT_CODECS)
def test_baskets_already_there_are_decoded_a_batch_per_thread(uproot_written, codec):
    """What the plan fetched ahead is decoded in one call per decompression thread (zlib
    in compiled code, other codecs basket by basket inside the batch): uproot's arrays,
    whole baskets and baskets cut at both ends."""
    path = uproot_written[codec]
    with uproot.open(path) as file:
        names = list(file["t"].keys())
    pool = _Counting(2)
    try:
        for start, stop in [(0, 4201), (999, 1001), (17, 3_900), (5, 5)]:
            pool.calls = 0
            got, want = _batched(path, names, start, stop, pool)
            assert pool.calls <= 2  # 2 batches, not one call per basket
            for name in names:
                layout = ak.Array(got[name])
                assert layout.type.content == want[name].type.content, name
                assert ak.array_equal(layout, want[name]), name
    finally:
        pool.shutdown()


def test_a_damaged_zlib_basket_in_a_batch_names_its_branch(tmp_path):
    """A zlib stream that does not inflate, inside a batch: one error naming the branch
    (the job turns it into one line naming the file and entries), not a crash."""
    path = tmp_path / "bad.root"
    rng = np.random.default_rng(5)
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as out:
        out.mktree("t", {"x": "f8", "v": "var * float32"}).extend(
            {
                "x": rng.random(5000).round(2),
                "v": ak.Array([[1.5, 2.5]] * 5000),
            }
        )
    with uproot.open(path) as file:
        branch = file["t"]["x"]
        seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    raw = bytearray(path.read_bytes())
    middle = seek + size // 2
    raw[middle : middle + 16] = bytes(16)
    path.write_bytes(bytes(raw))
    pool = WorkPool(2)
    try:
        with pytest.raises((ValueError, *DECOMPRESS_ERRORS), match="branch x"):
            _batched(str(path), ["v", "x"], 0, 5000, pool)
    finally:
        pool.shutdown()


def test_without_libdeflates_c_api_a_batch_takes_the_per_basket_path(uproot_written, monkeypatch):
    """A build of ``deflate`` that does not export libdeflate: zlib baskets in a batch are
    inflated basket by basket through its Python API, and the arrays are the same."""
    monkeypatch.setattr(hepstream.root.baskets, "libdeflate", lambda: (0, 0, 0))
    path = uproot_written["zlib"]
    with uproot.open(path) as file:
        names = list(file["t"].keys())
    pool = WorkPool(2)
    try:
        got, want = _batched(path, names, 17, 3_900, pool)
    finally:
        pool.shutdown()
    for name in names:
        assert ak.array_equal(ak.Array(got[name]), want[name]), name
