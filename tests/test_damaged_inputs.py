"""Damaged files as storage hands them over: each is one line and exit 3, in a real process.

Each case was a crash or a silent result before hepstream checked what the file claims:
list offsets of an uncompressed RNTuple page pointing outside their items (SIGSEGV in the
plugin's kernel), a copy with bytes inserted before the TTree's metadata (uproot's
traceback), and a flipped value in a page ROOT wrote with its checksum (read as data).
``tests/test_fuzz.py`` covers the same paths with thousands of random damages.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot
from prochelpers import one_error_line

from hepstream.cli import main

N = 3000
PLUGIN = """\
import numba, numpy as np, hepstream
from hepstream import flat, jagged

@numba.njit(cache=True, nogil=True)
def _mask(x, offsets, v):
    keep = np.zeros(len(x), np.bool_)
    for i in range(len(x)):
        total = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            total += v[j]
        keep[i] = x[i] + total > 10.0
    return keep

class Damaged(hepstream.Selection):
    tree = "Events"
    branches = ["x", "v"]
    def select(self, events):
        offsets, v = jagged(events, "v")
        return _mask(flat(events, "x"), offsets, v)
"""


def _hepstream(*args: object) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("hepstream")
    return subprocess.run(
        [str(exe), *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def _one_line(result: subprocess.CompletedProcess[str], out: Path, *names: str) -> str:
    """The job failed with exit 3 and one error line naming ``names``; nothing left behind."""
    line = one_error_line(result.returncode, result.stderr, 3, *names)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.endswith(".part")] == []
    return line


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    path = tmp_path / "damaged_plugin.py"
    path.write_text(PLUGIN)
    return path


def _events() -> dict[str, object]:
    return {
        "x": np.arange(N, dtype=np.float32),
        "v": ak.Array([[1.5] * (i % 5) for i in range(N)]),
    }


def test_rntuple_offsets_pointing_outside_their_items(tmp_path, plugin):
    """An uncompressed page of list offsets (no checksum) with one entry's end moved far
    past the items: was SIGSEGV in the plugin's kernel, no line, the temp file left."""
    path = tmp_path / "offsets.root"
    with uproot.recreate(path, compression=None) as file:
        file.mkrntuple("Events", _events())
    ntuple = uproot.open(path)["Events"]
    offsets_column = next(
        i for i, c in enumerate(ntuple.column_records) if int(c.type) in (14, 15, 26, 27)
    )
    page = ntuple.page_link_list[0][offsets_column].pages[0]
    blob = bytearray(path.read_bytes())
    at = int(page.locator.offset) + 8 * 10  # the 11th entry's end: 8-byte offsets
    blob[at : at + 8] = (1 << 40).to_bytes(8, "little")
    path.write_bytes(bytes(blob))
    out = tmp_path / "out" / "o.root"
    out.parent.mkdir()
    result = _hepstream("run", plugin, path, "-o", out, "--no-progress")
    line = _one_line(result, out, str(path), "field v", "entries 0-")
    assert "list offsets" in line


@pytest.mark.parametrize("into", [100, 800, 1500])
def test_tree_metadata_shifted_by_inserted_bytes(tmp_path, plugin, into):
    """A bad copy that inserted bytes into the TTree's metadata shifts what it points at
    (here: 37 zeros ``into`` bytes into its record): was uproot's traceback
    (AssertionError, IndexError, ValueError) and exit 1."""
    path = tmp_path / "shifted.root"
    events = _events()
    with uproot.recreate(path, compression=uproot.ZLIB(1)) as file:
        file.mktree("Events", {"x": np.float32, "v": events["v"].type.content})
        file["Events"].extend(events)
    blob = path.read_bytes()
    cut = uproot.open(path).key("Events").data_cursor.index + into
    path.write_bytes(blob[:cut] + b"\x00" * 37 + blob[cut:])
    out = tmp_path / "out" / "o.root"
    out.parent.mkdir()
    result = _hepstream("run", plugin, path, "-o", out, "--no-progress")
    _one_line(result, out, str(path), "corrupt")
    skipped = _hepstream("run", plugin, path, "-o", out, "--no-progress", "--skip-bad-files")
    assert skipped.returncode == 6, skipped.stderr
    assert "Traceback" not in skipped.stderr


def _root_rntuple(path: Path) -> None:
    """A small RNTuple written by ROOT itself (pages carry xxhash3 checksums)."""
    script = f"""
import ROOT
opts = ROOT.RDF.RSnapshotOptions()
opts.fOutputFormat = ROOT.RDF.ESnapshotOutputFormat.kRNTuple
opts.fCompressionAlgorithm = 0
opts.fCompressionLevel = 0
df = (ROOT.RDataFrame({N}).Define("x", "float(rdfentry_ * 0.5)")
      .Define("v", "ROOT::RVec<float>(rdfentry_ % 5, 1.5f)"))
df.Snapshot("Events", {str(path)!r}, ["x", "v"], opts)
"""
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, timeout=300)


def test_root_page_checksum_mismatch_names_the_page(tmp_path, plugin):
    """One flipped bit in the values of an uncompressed page ROOT wrote with its xxhash3
    checksum: was read as data (a different result, no error)."""
    path = tmp_path / "checksummed.root"
    _root_rntuple(path)
    ntuple = uproot.open(path)["Events"]
    x_column = next(
        i
        for i, r in enumerate(ntuple.column_records)
        if ntuple.field_records[r.field_id].field_name == "x"
    )
    page = ntuple.page_link_list[0][x_column].pages[0]
    assert page.has_checksum
    out = tmp_path / "out" / "o.root"
    out.parent.mkdir()
    assert _hepstream("run", plugin, path, "-o", out, "--no-progress").returncode == 0
    os.unlink(out)
    blob = bytearray(path.read_bytes())
    blob[int(page.locator.offset) + 4 * 100 + 1] ^= 0x10  # the 101st value's second byte
    path.write_bytes(bytes(blob))
    result = _hepstream("run", plugin, path, "-o", out, "--no-progress")
    line = _one_line(result, out, str(path), "field x", f"byte {int(page.locator.offset):,}")
    assert "fails its checksum" in line


def _hepstream_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("hepstream-")}


@pytest.mark.parametrize("where", ["directory", "page list"])
def test_a_file_that_fails_to_open_leaves_no_threads(tmp_path, plugin, capsys, where):
    """A job (or any caller of the job in one process) that meets a damaged file keeps no
    I/O or decompression thread of it: before, each such file left ten running."""
    path = tmp_path / "damaged.root"
    _root_rntuple(path)
    ntuple = uproot.open(path)["Events"]
    blob = bytearray(path.read_bytes())
    if where == "page list":  # its envelope checksum no longer matches
        locator = ntuple.footer.cluster_group_records[0].page_list_link.locator
        blob[int(locator.offset) + 20] ^= 0xFF
    else:  # bytes inserted mid-file: the keys ROOT wrote at its end are no longer where
        blob[len(blob) // 2 : len(blob) // 2] = b"\x00" * 61  # the header says
    path.write_bytes(bytes(blob))
    before = _hepstream_threads()
    out = tmp_path / "out" / "o.root"
    out.parent.mkdir()
    code = main(["run", str(plugin), str(path), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10  # a pool told to stop may still be exiting
    for thread in _hepstream_threads() - before:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert sorted(t.name for t in _hepstream_threads() - before) == []
