"""hepstream's own RNTuple page decoder gives exactly uproot's arrays: on files ROOT wrote
(split, zigzag and delta encodings, every codec), on uproot's (plain encodings, several
clusters), for entry ranges across clusters; the compiled passes against numpy; damage is
one clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import uproot
from columnhelpers import NUMBERS, UPROOT_CODECS, number_batch, opened, same

from bench.layouts import generate
from hepstream.errors import InputError
from hepstream.root.pagelists import _column_pages, read_page_lists
from hepstream.root.pages import _TYPES, PageColumn, decode_page
from hepstream.root.rntuple import RNTupleStore
from hepstream.root.store import event_store

#: ROOT's compression settings: zlib, LZMA, LZ4, zstd, none.
ROOT_CODECS = (101, 207, 404, 505, 0)

_ROOT_WRITER = textwrap.dedent(
    """
    import sys, ROOT
    ROOT.gROOT.SetBatch(True)
    types = {"i1": "std::int8_t", "i2": "std::int16_t", "i4": "std::int32_t",
             "i8": "std::int64_t", "u1": "std::uint8_t", "u2": "std::uint16_t",
             "u4": "std::uint32_t", "u8": "std::uint64_t", "f4": "float", "f8": "double"}
    df = ROOT.RDataFrame(int(sys.argv[1])).Define("n", "int(rdfentry_ % 5)")
    cols = ["n"]
    for t, c in types.items():
        x = f"(long long)(rdfentry_ * 2654435761ull % 20000) - 10000"
        df = df.Define(f"x_{t}", f"({c})({x})")
        df = df.Define(f"v_{t}", f"ROOT::RVec<{c}> v(n); for (int i = 0; i < n; ++i) "
                       f"v[i] = ({c})((long long)((rdfentry_ + i) * 40503ull % 2000) - 1000);"
                       " return v;")
        cols += [f"x_{t}", f"v_{t}"]
    df = df.Define("flag", "rdfentry_ % 3 == 0").Define("s", "std::to_string(rdfentry_)")
    cols += ["flag", "s"]
    for setting, path in zip(sys.argv[2::2], sys.argv[3::2]):
        opts = ROOT.RDF.RSnapshotOptions()
        opts.fOutputFormat = ROOT.RDF.ESnapshotOutputFormat.kRNTuple
        opts.fCompressionAlgorithm = int(setting) // 100
        opts.fCompressionLevel = int(setting) % 100
        df.Snapshot("Events", path, cols, opts)
    """
)


def _kinds(store: RNTupleStore, names: list[str]) -> tuple[set[int], list[int]]:
    """Column types hepstream decodes, and the columns it leaves to uproot."""
    mine, theirs = store._decoders_of(names)
    records = store.obj.ntuple.column_records
    return {int(records[d.index].type) for d in mine}, theirs


@pytest.fixture(scope="module")
def root_written(tmp_path_factory) -> dict[int, str]:
    """ROOT's RNTuple (RDataFrame Snapshot) of every number type, flat and as RVec, once
    per codec."""
    base = tmp_path_factory.mktemp("rn-root")
    paths = {setting: str(base / f"c{setting}.root") for setting in ROOT_CODECS}
    args = [str(a) for setting, path in paths.items() for a in (setting, path)]
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _ROOT_WRITER, "6000", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return paths


@pytest.mark.parametrize("setting", ROOT_CODECS)
def test_root_written_pages_decode_to_uproots_arrays(root_written, setting):
    with opened(root_written[setting], "Events", array_cache=None) as (ntuple, names, store):
        kinds, theirs = _kinds(store, names)
        # compressed: split ints (zigzag if signed), floats and 64-bit offsets, plain bytes;
        # stored as they are: plain encodings
        index = 27 if setting else 15
        want = {17, 18, 19, 20, 21, 22, 24, 25, 3, 4} if setting else {*range(3, 11), 12, 13}
        assert {*want, index, 0} <= kinds  # and bits
        records = ntuple.ntuple.column_records
        assert {int(records[c].type) for c in theirs} == {index, 2}  # the string's columns
        same(store, ntuple, names, 0, store.num_entries)
        same(store, ntuple, ["v_i8", "x_u2"], 1234, 4321)  # inside the cluster
        same(store, ntuple, ["v_f4", "x_i1"], 300, 300)  # no entries: types still right


def test_every_number_type_is_the_value_root_wrote(root_written):
    """Independent of uproot: each flat column equals the writer's formula, cast as C++
    casts it (negative values wrap in the unsigned types)."""
    entries = np.arange(6000, dtype=np.uint64)
    written = ((entries * np.uint64(2654435761)) % np.uint64(20000)).astype(np.int64) - 10000
    with uproot.open(root_written[505], array_cache=None) as file:
        store = event_store("x", file, "Events")
        got = store.arrays([f"x_{t}" for t in NUMBERS], 0, store.num_entries)
    for t in NUMBERS:
        np.testing.assert_array_equal(got[f"x_{t}"].to_numpy(), written.astype(t), err_msg=t)


@pytest.fixture(scope="module")
def uproot_written(tmp_path_factory) -> dict[str, str]:
    """uproot's RNTuple (plain encodings): every number type flat and as a list, three
    clusters of uneven size, once per codec."""
    rng = np.random.default_rng(11)
    base = tmp_path_factory.mktemp("rn-up")
    paths = {}
    for codec, compression in UPROOT_CODECS.items():
        path = base / f"{codec}.root"
        with uproot.recreate(path, compression=compression) as out:
            ntuple = None
            for n in (1000, 1, 2500):
                batch = number_batch(rng, n)
                if ntuple is None:
                    ntuple = out.mkrntuple("nt", batch)
                else:
                    ntuple.extend(batch)
        paths[codec] = str(path)
    return paths


@pytest.mark.parametrize("codec", UPROOT_CODECS)
def test_uproot_written_pages_across_clusters(uproot_written, codec):
    with opened(uproot_written[codec], "nt", array_cache=None) as (ntuple, names, store):
        assert store.cluster_offsets() == [0, 1000, 1001, 3501]
        kinds, theirs = _kinds(store, names)
        assert {0, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 15} <= kinds
        assert not theirs
        same(store, ntuple, names, 0, 3501)  # offsets continued over three clusters
        for start, stop in [(0, 1000), (1000, 1001), (1001, 3501), (1000, 3501), (10, 3000)]:
            same(store, ntuple, ["v_i4", "x_f8", "v_u1", "flag"], start, stop)


def test_the_nanoaod_like_rntuple_is_decoded_by_hepstream(tmp_path):
    """ROOT's NanoAOD-like RNTuple: every field equals uproot's, every column is ours."""
    path = tmp_path / "nano.root"
    generate("root-nanoaod-rntuple", path, 12_000, seed=5)
    with opened(str(path), "Events", array_cache=None) as (ntuple, names, store):
        mine, theirs = store._decoders_of(names)
        assert len(mine) >= 100
        assert not theirs
        same(store, ntuple, names, 0, store.num_entries)


def _split(values: np.ndarray) -> np.ndarray:
    """ROOT's split encoding: every element's first byte, then every second byte, ..."""
    return np.ascontiguousarray(values.view(np.uint8).reshape(len(values), -1).T).ravel()


@pytest.mark.parametrize("kind", [17, 18, 19, 20, 21, 22, 24, 25, 26, 27, 5, 13, 0])
def test_the_compiled_passes_match_numpy(kind):
    """A stored-as-is page of each encoding, decoded straight into its place."""
    dtype = np.dtype(_TYPES[kind])
    rng = np.random.default_rng(kind)
    if kind in (26, 27):  # offsets: deltas from 0 within the page
        want = np.cumsum(rng.integers(0, 7, 1001)).astype(dtype)
        stored = np.diff(want, prepend=dtype.type(0)).astype(dtype)
    elif dtype.kind == "f":
        want = stored = rng.standard_normal(1001).astype(dtype)
    elif dtype.kind == "b":  # 8 to a byte, the first entry in the lowest bit
        want = rng.random(1001) < 0.3
        stored = np.packbits(want, bitorder="little")
    else:
        info = np.iinfo(dtype)
        want = rng.integers(info.min, info.max, 1001, dtype=dtype, endpoint=True)
        want[:2] = [info.min, info.max]
        stored = want
        if kind in (17, 19, 21):  # zigzag: 0, -1, 1, -2, ... as 0, 1, 2, 3, ...
            zz = (want << 1) ^ (want >> (8 * dtype.itemsize - 1))  # wraps as in C++
            stored = zz.view(dtype.str.replace("i", "u")).view(dtype)
    raw = _split(stored) if kind >= 17 else stored.view(np.uint8)
    column = PageColumn(0, dtype, kind >= 17, kind in (17, 19, 21), kind in (26, 27), False)
    out = np.full(1001, 1, dtype)
    decode_page(column, raw, None, out)
    np.testing.assert_array_equal(out, want)


def test_a_damaged_page_is_one_clear_error(uproot_written, tmp_path):
    """Bytes flipped inside a compressed page: one InputError naming the file."""
    path = uproot_written["zstd"]
    with uproot.open(path) as file:
        store = event_store(path, file, "nt")
        links, _ = store._layout()
        column = store.columns(["x_f8"])[0]
        offset, _nbytes = links[2][column].pages[0]
    data = bytearray(Path(path).read_bytes())
    data[offset + 20 : offset + 60] = b"\x55" * 40
    broken = tmp_path / "broken.root"
    broken.write_bytes(bytes(data))
    with uproot.open(broken, array_cache=None) as file:
        store = event_store(str(broken), file, "nt")
        store.prepare(["x_f8"], 0, 1000)
        store.prepare(["x_f8"], 1001, 3501)  # decoded ahead: the error waits for arrays()
        store.arrays(["x_f8"], 0, 1000)  # other clusters read fine
        with pytest.raises(InputError, match=r"broken\.root: cannot read entries 1001-3501"):
            store.arrays(["x_f8"], 1001, 3501)


def _uproots_page_lists(ntuple) -> tuple[list[int], list]:
    clusters = ntuple.cluster_summaries
    offsets = [int(c.num_first_entry) for c in clusters]
    offsets.append(offsets[-1] + int(clusters[-1].num_entries))
    return offsets, [[_column_pages(c) for c in row] for row in ntuple.page_link_list]


def test_page_lists_are_parsed_as_uproot_parses_them(root_written, uproot_written):
    """Clusters, pages, element counts and suppression equal uproot's, on ROOT's files
    (checksummed pages, every codec) and uproot's (several clusters)."""
    for path in [*root_written.values(), *uproot_written.values()]:
        with uproot.open(path) as file:
            ntuple = file[file.keys(cycle=False)[0]].ntuple
            assert read_page_lists(ntuple) == _uproots_page_lists(ntuple), path


def test_a_damaged_page_list_is_one_clear_error(uproot_written, tmp_path):
    """A flipped byte in a stored-as-is page list: its checksum says so, before any page."""
    path = uproot_written["none"]
    with uproot.open(path) as file:
        link = file["nt"].ntuple.footer.cluster_group_records[0].page_list_link
        at = int(link.locator.offset) + 40
    data = bytearray(Path(path).read_bytes())
    data[at] ^= 0xFF
    broken = tmp_path / "broken.root"
    broken.write_bytes(bytes(data))
    page_list = r"broken\.root: cannot read the RNTuple's page list"
    with uproot.open(broken) as file, pytest.raises(InputError, match=page_list):
        event_store(str(broken), file, "nt")
