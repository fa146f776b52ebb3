"""Fuzzing harness for damaged and hostile input files (issue 23).

hepstream promises (README, "Errors") that every bad input ends in one line
``hepstream: error: ...``, a distinct exit code, no file at the output path and no temp file
left. This module checks that promise the way an analyst meets it: it damages small valid
files and runs each through the real ``hepstream run`` code path (``hepstream.cli.main``),
then sorts what happened into classes. Five of them are defects: ``signal`` (the process
died), ``hang``, ``traceback`` (an uncaught exception, or more than one line of error),
``temp file left`` and ``invalid array`` (the decoder handed the plugin offsets that point
outside their content: a plugin's numba kernel would read out of bounds).

Pieces, each usable on its own (the tests drive them separately):

- :func:`ensure_corpus`: small valid files, TTree and RNTuple, written by uproot and by ROOT,
  one per codec. ROOT is slow to import and prints an alpha-release warning, so every ROOT
  file is written by one child process (``python -m bench.fuzz --write-root DIR``).
- :func:`find_targets`: byte ranges of the structures worth damaging (basket keys and
  entry-offset tables, RNTuple page lists and pages, ...), read once with uproot. Only a bias.
- :func:`mutate`: the damaged bytes of case ``(seed, case)``, deterministic, with a
  description that says where the damage went.
- :class:`Fuzzer`: warms up once in this process (imports, numba kernels, the reference
  output of every valid file), then forks children that each run a batch of cases with
  stdout and stderr on per-case files. The parent kills a child that makes no progress
  within the per-case time limit; a child that dies takes only the case it was running
  with it (the rest of its batch runs again).
- :func:`classify`, :func:`table`, :func:`failures_table`: the verdict and the reports.
  Not a class but reported (:func:`leaks_table`): threads a job started still running
  after it returned, which the ``hepstream`` command's exit hides and a long-lived
  process calling ``run_job`` would keep.

``python -m bench.fuzz --family NAME --seed S --case N`` writes one damaged file and runs
``hepstream run`` on it in the foreground (``--replay FILE`` runs a kept one); ``--cases N``
runs a whole campaign; ``--atheris`` fuzzes one family coverage-guided, when atheris is
installed (it is no dependency).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
#: Bump when a corpus writer changes what it writes: cached corpora get new file names.
CORPUS_VERSION = 3
#: The TTree or RNTuple name in every corpus file (the plugin's ``tree``).
TREE = "Events"
#: Branches (TTree) or top-level fields (RNTuple) the plugin reads: two flat, two jagged.
BRANCHES = ("met", "nvtx", "Jet_pt", "Jet_id")
#: Entries per corpus file and the batches uproot writes them in (one basket per branch and
#: one RNTuple cluster per batch; the 1-entry batch makes a 1-entry basket).
UPROOT_BATCHES = (150, 1, 200, 120, 129)
#: ROOT-written files: entries, entries per cluster (TTree AutoFlush, RNTuple CommitCluster),
#: entries per RNTuple cluster group, basket buffer bytes (several baskets per cluster).
ROOT_ENTRIES = 600
ROOT_CLUSTER = 150
ROOT_GROUP = 300
ROOT_BASKET = 1024
#: ROOT's compression settings (algorithm * 100 + level) per codec name.
ROOT_SETTINGS = {"none": 0, "zlib": 101, "lz4": 404, "zstd": 505}

# -- classes -------------------------------------------------------------------------------

FINISHED_SAME = "finished, same output"
FINISHED_DIFFERENT = "finished, different output"
CLEAN_ERROR = "clean error"
SIGNAL = "signal"
HANG = "hang"
TRACEBACK = "traceback"
TEMP_LEFT = "temp file left"
INVALID_ARRAY = "invalid array"
#: Every class, in table order.
CLASSES = (
    FINISHED_SAME,
    FINISHED_DIFFERENT,
    CLEAN_ERROR,
    SIGNAL,
    HANG,
    TRACEBACK,
    TEMP_LEFT,
    INVALID_ARRAY,
)
#: Classes that are defects: the fuzz targets want 0 of each.
FAILING = (SIGNAL, HANG, TRACEBACK, TEMP_LEFT, INVALID_ARRAY)
#: What the plugin raises when it is handed offsets that do not fit their content.
INVALID_MARK = "FuzzInvalidArray"
#: hepstream's line for an exception no error class names (exit 70; the traceback goes to a
#: log file the line names): a bug, so a traceback here, however clean the line.
INTERNAL_MARK = "hepstream: error: internal error ("


# -- corpus ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Family:
    """One kind of valid input: container, writer and codec. Its name is the table row."""

    kind: str  # "ttree" or "rntuple"
    writer: str  # "uproot" or "ROOT"
    codec: str  # "none", "zlib", "lz4" or "zstd"

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.writer.lower()}-{self.codec}"

    @property
    def file_name(self) -> str:
        return f"{self.name}_v{CORPUS_VERSION}.root"


#: Every family, in table order: TTree by uproot and by ROOT with each of ROOT's codecs;
#: RNTuple (uproot >= 5.7 writes it too) uncompressed, zlib and zstd, ROOT's usual ones.
FAMILIES: tuple[Family, ...] = (
    *(Family("ttree", "uproot", c) for c in ("none", "zlib", "lz4", "zstd")),
    *(Family("ttree", "ROOT", c) for c in ("none", "zlib", "lz4", "zstd")),
    *(Family("rntuple", "uproot", c) for c in ("none", "zlib", "zstd")),
    *(Family("rntuple", "ROOT", c) for c in ("none", "zlib", "zstd")),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


def _uproot_compression(codec: str) -> Any:
    import uproot

    return {"none": None, "zlib": uproot.ZLIB(1), "lz4": uproot.LZ4(1), "zstd": uproot.ZSTD(1)}[
        codec
    ]


def _uproot_batch(rng: Any, n: int, ttree: bool) -> dict[str, Any]:
    """``n`` events: a flat float, a flat int and two jagged columns of equal counts.

    Values are quarters (exact in float32) so the compressed files are small; a TTree
    groups the jagged columns as one ``Jet`` record (``nJet`` counter, ``Jet_pt``, ``Jet_id``)
    like NanoAOD, an RNTuple keeps them as two top-level list fields.
    """
    import awkward as ak
    import numpy as np

    counts = rng.poisson(2.5, n)
    total = int(counts.sum())
    pt = ak.unflatten((rng.integers(0, 800, total) / 4).astype(np.float32), counts)
    jid = ak.unflatten(rng.integers(0, 8, total).astype(np.int32), counts)
    out: dict[str, Any] = {
        "met": (rng.integers(0, 400, n) / 4).astype(np.float32),
        "nvtx": rng.integers(0, 60, n).astype(np.int32),
    }
    if ttree:
        out["Jet"] = ak.zip({"pt": pt, "id": jid})
    else:
        out |= {"Jet_pt": pt, "Jet_id": jid}
    return out


def write_uproot(family: Family, path: Path) -> None:
    """A TTree (several baskets per branch) or an RNTuple (several clusters) with uproot."""
    import awkward as ak
    import numpy as np
    import uproot

    rng = np.random.default_rng(20230)
    ttree = family.kind == "ttree"
    batches = [_uproot_batch(rng, n, ttree) for n in UPROOT_BATCHES]
    with uproot.recreate(path, compression=_uproot_compression(family.codec)) as out:
        if ttree:
            types = {
                k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in batches[0].items()
            }
            tree = out.mktree(TREE, types)
            for batch in batches:
                tree.extend(batch)
        else:
            ntuple = out.mkrntuple(TREE, ak.Array(batches[0]))
            for batch in batches[1:]:
                ntuple.extend(ak.Array(batch))


#: C++ writers of the ROOT families, declared to ROOT's interpreter in the child process.
_ROOT_WRITERS = r"""
#include <ROOT/RNTupleModel.hxx>
#include <ROOT/RNTupleWriteOptions.hxx>
#include <ROOT/RNTupleWriter.hxx>
#include <TFile.h>
#include <TTree.h>
#include <cstdint>
#include <vector>
namespace hsfuzz {
inline std::uint64_t mix(std::uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
inline double u(std::uint64_t e, unsigned k) { return (mix(e * 1000003ull + k) >> 11) * 0x1.0p-53; }
struct Ev { float met; std::int32_t nvtx; std::vector<float> pt; std::vector<std::int32_t> id; };
inline void make(std::uint64_t e, Ev &ev) {
  ev.met = float(int(400 * u(e, 1))) / 4; ev.nvtx = std::int32_t(60 * u(e, 2));
  int n = int(u(e, 0) * 6); ev.pt.resize(n); ev.id.resize(n);
  for (int i = 0; i < n; ++i) {
    ev.pt[i] = float(int(800 * u(e, 10 + i))) / 4; ev.id[i] = std::int32_t(8 * u(e, 40 + i));
  }
}
int write_ttree(const char *path, int n, int comp, int cluster, int basket) {
  TFile f(path, "RECREATE", "", comp);
  TTree t("Events", "hepstream fuzz corpus");
  Ev ev;
  t.Branch("met", &ev.met, "met/F", basket);
  t.Branch("nvtx", &ev.nvtx, "nvtx/I", basket);
  t.Branch("Jet_pt", &ev.pt, basket);
  t.Branch("Jet_id", &ev.id, basket);
  t.SetAutoFlush(cluster);
  for (int e = 0; e < n; ++e) { make(e, ev); t.Fill(); }
  t.Write();
  f.Close();
  return 0;
}
int write_rntuple(const char *path, int n, int comp, int cluster, int group) {
  auto model = ROOT::RNTupleModel::Create();
  auto met = model->MakeField<float>("met");
  auto nvtx = model->MakeField<std::int32_t>("nvtx");
  auto pt = model->MakeField<std::vector<float>>("Jet_pt");
  auto id = model->MakeField<std::vector<std::int32_t>>("Jet_id");
  ROOT::RNTupleWriteOptions opts;
  opts.SetCompression(comp);
  opts.SetInitialUnzippedPageSize(64);  // several pages per column and cluster
  opts.SetMaxUnzippedPageSize(1024);
  auto writer = ROOT::RNTupleWriter::Recreate(std::move(model), "Events", path, opts);
  Ev ev;
  for (int e = 0; e < n; ++e) {
    make(e, ev); *met = ev.met; *nvtx = ev.nvtx; *pt = ev.pt; *id = ev.id;
    writer->Fill();
    if ((e + 1) % cluster == 0) writer->CommitCluster((e + 1) % group == 0);
  }
  return 0;
}
}
"""


def _write_root_families(directory: Path, names: Sequence[str]) -> None:
    """Write the ROOT families ``names`` into ``directory``; in the ROOT child process only.

    Each file goes to a temp name first and is renamed, so a killed writer leaves nothing
    a later run would trust.
    """
    import ROOT

    ROOT.gROOT.SetBatch(True)
    if not ROOT.gInterpreter.Declare(_ROOT_WRITERS):
        raise RuntimeError("ROOT could not compile the fuzz corpus writers")
    os.chdir(directory)  # ROOT stores the name it is given: the same bytes in any directory
    for name in names:
        family = FAMILY_BY_NAME[name]
        tmp = _tmp_name(family)
        comp = ROOT_SETTINGS[family.codec]
        if family.kind == "ttree":
            ROOT.hsfuzz.write_ttree(tmp, ROOT_ENTRIES, comp, ROOT_CLUSTER, ROOT_BASKET)
        else:
            ROOT.hsfuzz.write_rntuple(tmp, ROOT_ENTRIES, comp, ROOT_CLUSTER, ROOT_GROUP)
        os.replace(tmp, family.file_name)


def _tmp_name(family: Family) -> str:
    """The temp name a corpus file is written under. Writers store it in the file, so it
    is the same everywhere (no pid, no directory): a corpus written again elsewhere has
    the same layout, and a case's mutation lands on the same structure."""
    return f".{family.file_name}.tmp.root"


def _root_child(directory: Path, families: Sequence[Family]) -> None:
    cmd = [
        sys.executable,
        "-W",
        "ignore",
        "-m",
        "bench.fuzz",
        "--write-root",
        str(Path(directory).resolve()),
    ]
    cmd += [f.name for f in families]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    missing = [f.name for f in families if not (directory / f.file_name).exists()]
    if done.returncode != 0 or missing:
        tail = (done.stderr or done.stdout).strip().splitlines()[-8:]
        raise RuntimeError(f"ROOT corpus writer exited {done.returncode} ({missing}): {tail}")


def default_corpus_dir() -> Path:
    """The bench data dir's corpus (``python -m bench`` and the reproduction command)."""
    from bench.settings import data_dir

    return data_dir() / "fuzz"


def ensure_corpus(directory: Path, families: Iterable[Family] = FAMILIES) -> dict[str, Path]:
    """Path of every family's valid file in ``directory``, written only if missing.

    One writer at a time per directory (a lock file): two sessions sharing a cache must not
    write the same file. uproot files are written here, ROOT ones by one child process.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    families = list(families)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in directory.glob(".*.tmp.root"):
            stale.unlink(missing_ok=True)
        missing = [f for f in families if not (directory / f.file_name).exists()]
        for family in (f for f in missing if f.writer == "uproot"):
            tmp = directory / _tmp_name(family)
            write_uproot(family, tmp)
            os.replace(tmp, directory / family.file_name)
        root_missing = [f for f in missing if f.writer == "ROOT"]
        if root_missing:
            _root_child(directory, root_missing)
    return {f.name: directory / f.file_name for f in families}


#: The selection every case runs: two flat and two jagged branches, one numba kernel,
#: preselection on the flat ones. It checks the offsets it is handed against their content
#: before its kernel indexes with them (:data:`INVALID_MARK`), so a decoder's bad offsets
#: show as their own class instead of a segfault blamed on the plugin.
PLUGIN_SOURCE = '''\
"""hepstream fuzz plugin (bench/fuzz.py): reads TTree and RNTuple corpus files alike."""

import numba
import numpy as np

import hepstream


class FuzzInvalidArray(Exception):
    """The offsets of a jagged branch do not fit its content."""


@numba.njit(cache=True, nogil=True)
def _bad_offsets(offsets, n_content):
    if len(offsets) == 0 or offsets[0] < 0 or offsets[-1] > n_content:
        return True
    for i in range(len(offsets) - 1):
        if offsets[i + 1] < offsets[i]:
            return True
    return False


@numba.njit(cache=True, nogil=True)
def _cheap(met, nvtx):
    keep = np.empty(len(met), np.bool_)
    for i in range(len(met)):
        keep[i] = (met[i] > 20.0) & (nvtx[i] >= 5)
    return keep


@numba.njit(cache=True, nogil=True)
def _select(met, nvtx, offsets, pt, id_offsets, jet_id):
    """Events with a jet above 30 GeV of id >= 2; each list indexed with its own offsets
    (a damaged file may give Jet_pt and Jet_id different counts: not an invalid array)."""
    keep = _cheap(met, nvtx)
    for i in range(len(keep)):
        if not keep[i]:
            continue
        keep[i] = False
        n = min(offsets[i + 1] - offsets[i], id_offsets[i + 1] - id_offsets[i])
        for j in range(n):
            if pt[offsets[i] + j] > 30.0 and jet_id[id_offsets[i] + j] >= 2:
                keep[i] = True
                break
    return keep


class FuzzSelection(hepstream.Selection):
    tree = "Events"
    branches = ["met", "nvtx", "Jet_pt", "Jet_id"]
    preselect = ["met", "nvtx"]

    def preselect_mask(self, events):
        return _cheap(hepstream.flat(events, "met"), hepstream.flat(events, "nvtx"))

    def select(self, events):
        offsets, pt = hepstream.jagged(events, "Jet_pt")
        id_offsets, jet_id = hepstream.jagged(events, "Jet_id")
        met, nvtx = hepstream.flat(events, "met"), hepstream.flat(events, "nvtx")
        for name, offs, content in (("Jet_pt", offsets, pt), ("Jet_id", id_offsets, jet_id)):
            if len(offs) != len(events) + 1 or _bad_offsets(offs, len(content)):
                raise FuzzInvalidArray(
                    f"{name}: {len(offs)} offsets for {len(events)} events, first "
                    f"{offs[:1].tolist()} last {offs[-1:].tolist()}, {len(content)} values"
                )
        if len(met) != len(events) or len(nvtx) != len(events):
            raise FuzzInvalidArray(f"flat branches of {len(met)}/{len(nvtx)} for {len(events)}")
        return _select(met, nvtx, offsets, pt, id_offsets, jet_id)
'''


def write_plugin(directory: Path) -> Path:
    """The fuzz plugin in ``directory`` (rewritten only when its text changed, so numba's
    cache of its kernels stays valid)."""
    path = Path(directory) / "fuzz_plugin.py"
    if not path.exists() or path.read_text() != PLUGIN_SOURCE:
        path.write_text(PLUGIN_SOURCE)
    return path


# -- targets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """A byte range ``[start, stop)`` of a valid file and what it holds."""

    start: int
    stop: int
    category: str
    label: str


@dataclass(frozen=True)
class Targets:
    """Where a valid file keeps its structures: the regions mutations are biased toward."""

    size: int
    #: Regions per category, each category non-empty; ordered, so choices are deterministic.
    regions: dict[str, tuple[Region, ...]]

    def locate(self, offset: int) -> str:
        """The smallest known region holding ``offset``, as ``label +relative``."""
        best: Region | None = None
        for group in self.regions.values():
            for r in group:
                if r.start <= offset < r.stop and (
                    best is None or r.stop - r.start < best.stop - best.start
                ):
                    best = r
        return f"{best.label} +{offset - best.start}" if best else "-"


#: How often each structure category is picked for a structure-biased mutation.
CATEGORY_WEIGHTS = {
    "file-header": 1, "directory": 1, "streamers": 1, "tree": 3,
    "basket-key": 4, "basket-tail": 4, "basket-body": 3,
    "anchor": 2, "rntuple-header": 2, "rntuple-footer": 2,
    "page-list": 5, "page": 4, "page-tail": 2,
}  # fmt: skip


def _add(
    regions: dict[str, list[Region]], size: int, start: int, length: int, category: str, label: str
) -> None:
    start, stop = max(0, int(start)), min(size, int(start) + int(length))
    if stop > start:
        regions.setdefault(category, []).append(Region(start, stop, category, label))


def find_targets(path: Path, kind: str) -> Targets:
    """Regions of file ``path`` (``kind`` ``ttree`` or ``rntuple``), read with uproot.

    Robust rather than complete: whatever uproot cannot say is simply not a target.
    """
    import uproot

    data = Path(path).read_bytes()
    size = len(data)
    regions: dict[str, list[Region]] = {}
    with uproot.open(path, handler=uproot.MemmapSource) as file:
        rf = file.file
        _add(regions, size, 0, rf.fBEGIN, "file-header", "file header")
        _add(regions, size, file.fSeekKeys, file.fNbytesKeys, "directory", "keys list")
        _add(regions, size, rf.fSeekInfo, rf.fNbytesInfo, "streamers", "streamer info")
        key = file.key(TREE)
        _add(
            regions,
            size,
            key.fSeekKey,
            key.fNbytes,
            "anchor" if kind == "rntuple" else "tree",
            f"{TREE} key+object",
        )
        if kind == "ttree":
            _ttree_targets(file[TREE], data, regions)
        else:
            _rntuple_targets(file[TREE], size, regions)
    return Targets(size, {k: tuple(v) for k, v in regions.items()})


def _ttree_targets(tree: Any, data: bytes, regions: dict[str, list[Region]]) -> None:
    """Per basket: its key and basket header, its body, and its tail (the entry-offset
    table of a jagged branch, ``4 * (entries + 1)`` bytes before the end; in a compressed
    file the end of the compressed stream)."""
    size = len(data)
    for branch in tree.branches:
        n = branch.num_baskets
        seeks = branch.member("fBasketSeek")[:n]
        nbytes = branch.member("fBasketBytes")[:n]
        entries = branch.member("fBasketEntry")[: n + 1]
        for i, (seek, length) in enumerate(zip(seeks, nbytes, strict=True)):
            seek, length = int(seek), int(length)
            if seek <= 0 or seek + 16 > size:
                continue
            # TKey: fNbytes (4), fVersion (2), fObjlen (4), fDatime (4), then fKeylen (2)
            keylen = int.from_bytes(data[seek + 14 : seek + 16], "big")
            label = f"basket {branch.name}#{i}"
            _add(regions, size, seek, min(keylen, length), "basket-key", f"{label} key")
            _add(regions, size, seek + keylen, length - keylen, "basket-body", f"{label} body")
            tail = 4 * (int(entries[i + 1]) - int(entries[i]) + 1) + 4
            tail = min(tail, max(0, length - keylen))
            _add(regions, size, seek + length - tail, tail, "basket-tail", f"{label} tail")


def _pages(obj: Any) -> Iterator[Any]:
    """Every page description under uproot's page-link list (nested lists of columns)."""
    if isinstance(obj, list | tuple):
        for item in obj:
            yield from _pages(item)
    elif hasattr(obj, "pages"):
        yield from obj.pages


def _rntuple_targets(ntuple: Any, size: int, regions: dict[str, list[Region]]) -> None:
    _add(
        regions,
        size,
        ntuple.member("fSeekHeader"),
        ntuple.member("fNBytesHeader"),
        "rntuple-header",
        "RNTuple header",
    )
    _add(
        regions,
        size,
        ntuple.member("fSeekFooter"),
        ntuple.member("fNBytesFooter"),
        "rntuple-footer",
        "RNTuple footer",
    )
    with contextlib.suppress(Exception):
        for g, group in enumerate(ntuple.footer.cluster_group_records):
            loc = group.page_list_link.locator
            _add(regions, size, loc.offset, loc.num_bytes, "page-list", f"page list #{g}")
    with contextlib.suppress(Exception):
        for i, page in enumerate(_pages(ntuple.page_link_list)):
            loc = page.locator
            _add(regions, size, loc.offset, loc.num_bytes, "page", f"page #{i}")
            tail = 8 if getattr(page, "has_checksum", False) else 16
            _add(
                regions,
                size,
                loc.offset + loc.num_bytes - tail,
                tail,
                "page-tail",
                f"page #{i} tail",
            )


# -- mutations -----------------------------------------------------------------------------

#: Mutation kinds and their weights.
KIND_WEIGHTS = {
    "bitflip": 30, "int32": 18, "int64": 8, "zeros": 14,
    "insert": 8, "delete": 8, "truncate": 6, "duplicate": 4,
}  # fmt: skip
#: Where a mutation lands: anywhere, the last 60 % of the file (data), or a structure.
WHERE_WEIGHTS = {"anywhere": 20, "data": 30, "structure": 50}


@dataclass(frozen=True)
class Mutation:
    """What case ``(seed, case)`` does to its file, and the job options it runs with."""

    kind: str
    where: str
    offset: int
    length: int
    detail: str
    #: Region of the valid file the damage starts in (``label +offset``), or "-".
    region: str
    #: Extra ``hepstream run`` options of this case.
    args: tuple[str, ...] = ()

    def describe(self) -> str:
        opts = f" {' '.join(self.args)}" if self.args else ""
        return f"{self.kind} {self.detail} at {self.offset} [{self.where}: {self.region}]{opts}"


def case_rng(seed: int, case: int) -> random.Random:
    """The random stream of one case: a string seed, so it is the same on every platform
    and Python version (``random`` hashes it with SHA-512)."""
    return random.Random(f"hepstream-fuzz/{seed}/{case}")


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _root_header_end(data: bytes | bytearray) -> tuple[int, int] | None:
    """Offset and width of ``fEND`` in a ROOT file header (4 bytes, 8 for large files)."""
    if len(data) < 20 or data[:4] != b"root":
        return None
    version = int.from_bytes(data[4:8], "big")
    return (12, 8) if version >= 1_000_000 else (12, 4)


def _fix_end(data: bytearray) -> None:
    """Make the header's ``fEND`` agree with the damaged file's size, so the damage gets
    past the header check to the decoders."""
    where = _root_header_end(data)
    if where is not None:
        at, width = where
        if len(data) < 2**31 or width == 8:
            data[at : at + width] = len(data).to_bytes(width, "big")


def _offset(rng: random.Random, targets: Targets, where: str, span: int = 1) -> tuple[int, str]:
    """A byte offset for ``where``; for ``structure`` inside a region (aligned to 4 bytes
    from its start half of the time) and the region's label."""
    size = targets.size
    if where == "structure" and targets.regions:
        weights = {c: CATEGORY_WEIGHTS.get(c, 1) for c in targets.regions}
        region = rng.choice(targets.regions[_pick(rng, weights)])
        room = max(1, region.stop - region.start - span + 1)
        rel = rng.randrange(room)
        if rng.random() < 0.5:
            rel -= rel % 4
        return region.start + rel, f"{region.label} +{rel}"
    low = int(size * 0.4) if where == "data" else 0
    at = rng.randrange(low, max(low + 1, size - span + 1))
    return at, targets.locate(at)


def _int_value(rng: random.Random, width: int, old: int) -> tuple[int, str]:
    """A hostile integer of ``width`` bytes: 0, -1, the largest positive, the sign bit, a
    random huge one, or the old value nudged a little (an offset off by a few)."""
    bits = 8 * width
    mask = (1 << bits) - 1
    choice = rng.randrange(7)
    if choice == 0:
        return 0, "0"
    if choice == 1:
        return mask, "-1"
    if choice == 2:
        return mask >> 1, f"{mask >> 1:#x}"
    if choice == 3:
        return 1 << (bits - 1), f"{1 << (bits - 1):#x}"
    if choice == 4:
        value = rng.randrange(1 << 20, 1 << (bits - 1))
        return value, f"{value:#x}"
    delta = rng.choice([-16, -8, -4, -2, -1, 1, 2, 3, 4, 8, 16, 64, 4096])
    return (old + delta) & mask, f"old{delta:+d}"


def mutate(
    data: bytes, targets: Targets, kind_hint: str, seed: int, case: int
) -> tuple[bytes, Mutation]:
    """The damaged bytes of case ``(seed, case)`` of ``data`` and what was done.

    Deterministic: the same valid file, seed and case give the same bytes. ``kind_hint``
    (``ttree`` or ``rntuple``) picks the usual byte order of integers (big-endian ROOT
    streamers, little-endian RNTuple envelopes) four times out of five.
    """
    rng = case_rng(seed, case)
    kind, where = _pick(rng, KIND_WEIGHTS), _pick(rng, WHERE_WEIGHTS)
    out = bytearray(data)
    size = len(data)
    fixed = ""
    if kind == "bitflip":
        at, region = _offset(rng, targets, where, 1)
        spread = rng.choice([1, 4, 64])  # one byte, one word, or scattered nearby
        spread = min(spread, size - at)
        n_bits = rng.randint(1, min(8, 8 * spread))
        flipped = []
        for bit_index in sorted(rng.sample(range(8 * spread), n_bits)):  # distinct bits
            pos, bit = at + bit_index // 8, bit_index % 8
            out[pos] ^= 1 << bit
            flipped.append(f"{pos}.{bit}")
        length, detail = spread, f"{n_bits} bit(s) {','.join(flipped)}"
    elif kind in ("int32", "int64"):
        width = 4 if kind == "int32" else 8
        at, region = _offset(rng, targets, where, width)
        at = min(at, size - width)
        big = (kind_hint == "ttree") == (rng.random() < 0.8)
        order = "big" if big else "little"
        old = int.from_bytes(out[at : at + width], order)
        value, what = _int_value(rng, width, old)
        if value == old:  # no damage at all: every bit flipped instead
            value, what = old ^ ((1 << (8 * width)) - 1), "~old"
        out[at : at + width] = value.to_bytes(width, order)
        length, detail = width, f"= {what} ({'BE' if big else 'LE'}, was {old:#x})"
    elif kind == "zeros":
        length = rng.randint(16, 512)
        at, region = _offset(rng, targets, where, 1)
        length = min(length, size - at)
        fill = 0 if any(out[at : at + length]) else 0xFF  # zeros on zeros: ones instead
        out[at : at + length] = bytes([fill]) * length
        detail = f"{length} bytes" + (" (0xff: they were zeros)" if fill else "")
    elif kind in ("insert", "delete", "duplicate"):
        at, region = _offset(rng, targets, where, 1)
        at = min(max(at, 1), size - 1)
        length = rng.choice([1, 2, 3, 4, 7, 8, 16, 61, 256])
        if kind == "insert":
            out[at:at] = bytes(rng.randrange(256) for _ in range(length))
        elif kind == "delete":
            length = min(length, size - at)
            del out[at : at + length]
        else:  # the preceding bytes again: plausible-looking structure, shifted
            start = max(0, at - length)
            out[at:at] = out[start:at]
            length = at - start
        if rng.random() < 0.5:
            _fix_end(out)
            fixed = ", fEND fixed"
        detail = f"{length} bytes{fixed}"
    else:  # truncate
        at, region = _offset(rng, targets, where, 1)
        at = max(1, at)
        length = size - at
        del out[at:]
        if rng.random() < 0.5:
            _fix_end(out)
            fixed = ", fEND fixed"
        detail = f"to {at} bytes{fixed}"
    args: list[str] = []
    if rng.random() < 0.25:
        args.append("--skip-bad-files")
    if rng.random() < 0.3:
        args += ["--chunk", "16k"]
    return bytes(out), Mutation(kind, where, at, length, detail, region, tuple(args))


# -- classification ------------------------------------------------------------------------


def error_lines(stderr: str) -> list[str]:
    """The non-blank lines of ``stderr`` other than the job summary (``hepstream: job ...``
    and its indented lines), which a finished or partial job prints before its last line."""
    lines, in_summary = [], False
    for line in stderr.splitlines():
        if re.match(r"hepstream: job (ok|partial|failed)\b", line):
            in_summary = True
            continue
        if in_summary and line.startswith("  "):
            continue
        in_summary = False
        if line.strip():
            lines.append(line)
    return lines


def exception_of(stderr: str) -> tuple[str, str]:
    """The exception line of the last traceback in ``stderr`` and its innermost frame
    (``file:function``), or ("Traceback", "") when there is no readable one."""
    text = stderr[stderr.rfind("Traceback (most recent call last):") :]
    frame, exception = "", ""
    for line in text.splitlines()[1:]:
        match = re.match(r'\s+File "([^"]+)", line \d+, in (\S+)', line)
        if match:
            frame = f"{Path(match[1]).name}:{match[2]}"
        elif line.strip() and not line.startswith((" ", "\t")):
            exception = line.strip()
            break
    return exception or "Traceback", frame


def classify(
    *,
    code: int | None,
    signum: int | None = None,
    timed_out: bool = False,
    stderr: str = "",
    leftovers: Sequence[str] = (),
    output: str = "none",
) -> tuple[str, str]:
    """The class of one case and a short reason.

    ``code``: exit code (None when the process did not return); ``signum``: the signal that
    killed it (not our own timeout kill: ``timed_out``); ``leftovers``: files left in the
    output and temp dirs that should not be there; ``output``: ``same``, ``different``,
    ``unreadable`` or ``none`` (no output file), for a job that exited 0.

    A clean error is a non-zero exit whose stderr, the job summary aside, is exactly one
    line ``hepstream: error: ...`` (or ``hepstream: warning: ...``: ``--skip-bad-files``
    skipped the file) and holds no ``Traceback``.
    """
    if timed_out:
        return HANG, "no result within the time limit; killed"
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return SIGNAL, f"killed by {name}"
    if code is None:
        return SIGNAL, "process ended inside the case without returning"
    lines = error_lines(stderr)
    internal = [line for line in lines if line.startswith(INTERNAL_MARK)]
    if internal or "Traceback" in stderr:
        exception, where = exception_of(stderr)
        what = internal[0] if internal else exception
        return TRACEBACK, (f"{what} (at {where})" if where else what)[:300]
    if leftovers:
        return TEMP_LEFT, ", ".join(leftovers)[:300]
    if code != 0:
        if len(lines) == 1 and lines[0].startswith(("hepstream: error:", "hepstream: warning:")):
            if INVALID_MARK in lines[0]:
                return INVALID_ARRAY, lines[0][:300]
            return CLEAN_ERROR, lines[0][:300]
        return TRACEBACK, f"exit {code}, not one clean line: {' | '.join(lines[:3])}"[:300]
    if output == "same":
        return FINISHED_SAME, ""
    why = {"none": "exit 0 but no output file", "unreadable": "output unreadable"}
    return FINISHED_DIFFERENT, why.get(output, "")


# -- running cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One fuzz case: the family's valid file damaged by mutation ``(seed, number)``."""

    family: str
    seed: int
    number: int
    #: Run the valid file itself (no mutation): the harness's own check.
    valid: bool = False

    @property
    def key(self) -> str:
        return f"{self.family}-s{self.seed}-c{self.number}" + ("-valid" if self.valid else "")


@dataclass
class Outcome:
    """What one case did."""

    case: Case
    cls: str
    reason: str
    mutation: str
    region: str
    code: int | None = None
    signum: int | None = None
    seconds: float = 0.0
    stderr: str = ""
    #: The damaged input, kept for failing cases when the fuzzer has a failures dir.
    kept: str | None = None
    #: :func:`signature_of` the full stderr (``stderr`` above is cut to its ends).
    signature: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def failing(self) -> bool:
        return self.cls in FAILING

    def to_json(self) -> dict[str, Any]:
        return {
            "family": self.case.family,
            "seed": self.case.seed,
            "case": self.case.number,
            "class": self.cls,
            "reason": self.reason,
            "mutation": self.mutation,
            "code": self.code,
            "signal": self.signum,
            "seconds": round(self.seconds, 3),
            "stderr": self.stderr,
            "kept": self.kept,
            "notes": self.notes,
            "signature": self.signature,
        }


def plan(seed: int, n_cases: int, families: Sequence[str]) -> list[Case]:
    """``n_cases`` cases of ``seed``, dealt round-robin over ``families`` (case ``i`` goes to
    family ``i % len(families)``), so every family gets the same share."""
    return [Case(families[i % len(families)], seed, i) for i in range(n_cases)]


def _arrays_of(path: Path) -> dict[str, Any]:
    import uproot

    with uproot.open(path, handler=uproot.MemmapSource) as file:
        tree = file[TREE]
        return {name: tree[name].array(library="ak") for name in BRANCHES}


def _same_output(path: Path, reference: dict[str, Any]) -> tuple[str, str]:
    """``same``/``different``/``unreadable`` of an output file against the valid file's."""
    import awkward as ak

    try:
        got = _arrays_of(path)
    except Exception as err:
        return "unreadable", f"{type(err).__name__}: {err}"[:200]
    if not ak.array_equal(ak.num(got["Jet_pt"]), ak.num(got["Jet_id"])):
        # every corpus file has equal counts: a list's structure changed and nothing saw it
        return "different", "Jet_pt and Jet_id counts differ (list structure changed unseen)"
    for name, want in reference.items():
        if len(got[name]) != len(want):
            return "different", f"{name}: {len(got[name])} events selected, valid file {len(want)}"
        if not ak.array_equal(got[name], want, equal_nan=True):
            return "different", f"{name}: values differ"
    return "same", ""


_DEFAULT_WARNING_FILTERS = (
    ("default", DeprecationWarning, "__main__"),
    ("ignore", DeprecationWarning, None),
    ("ignore", PendingDeprecationWarning, None),
    ("ignore", ImportWarning, None),
    ("ignore", ResourceWarning, None),
)


def _as_a_fresh_process() -> None:
    """Undo what a test runner set up in this (forked) process, so the case runs as it does
    under the ``hepstream`` command: Python's default warning filters (pytest makes warnings
    errors), no logging handlers (pytest's live log), stdout and stderr on fds 1 and 2."""
    import logging
    import warnings

    warnings.resetwarnings()
    for action, category, module in reversed(_DEFAULT_WARNING_FILTERS):
        if module is None:
            warnings.simplefilter(action, category)
        else:
            warnings.filterwarnings(action, category=category, module=module)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__  # type: ignore[assignment]


@dataclass
class _Family:
    """What the parent knows about a family before it forks: bytes, targets, reference."""

    family: Family
    path: Path
    data: bytes
    targets: Targets
    reference: dict[str, Any]


@dataclass
class _Child:
    """A forked child and what it reported so far."""

    pid: int
    slot: int
    cases: list[Case]
    results: Path
    #: When it last showed progress (fork, or its last result): the hang clock.
    last: float
    consumed: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    killed: bool = False


class Fuzzer:
    """Runs cases through ``hepstream.cli.main`` in forked children, a batch per child.

    ``workdir`` holds the plugin, numba's cache of its kernels, and per slot (one child
    running at a time) the damaged input, the output dir, the temp dir and the per-case
    stderr files. ``jobs`` children run at once; each takes ``batch`` cases. A case that
    shows no result within ``timeout`` seconds is a hang: its child gets SIGKILL. A child
    that dies takes the case it was running with it; the cases it never started run again
    in a new batch, or with ``isolate`` one per child, and then the case it died in also runs
    once more alone, to tell a case that kills any process from one that kills only a
    process earlier cases left in a bad state. Damaged inputs and stderr of failing cases
    are copied to ``failures_dir`` when one is given.
    """

    def __init__(
        self,
        corpus: dict[str, Path],
        workdir: Path,
        *,
        timeout: float = 10.0,
        jobs: int = 2,
        batch: int = 20,
        isolate: bool = False,
        failures_dir: Path | None = None,
        memory_bytes: int = 2 << 30,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plugin = write_plugin(self.workdir)
        self.numba_cache = self.workdir / "numba"
        self.corpus = {name: Path(p) for name, p in corpus.items()}
        self.timeout, self.jobs, self.batch, self.isolate = timeout, max(1, jobs), batch, isolate
        self.failures_dir = failures_dir
        #: Address space a child may add to what this process has mapped (RLIMIT_AS): a file
        #: that claims gigabytes meets a MemoryError, not the machine's OOM killer.
        self.memory_bytes = memory_bytes
        self.echo = echo
        self.families: dict[str, _Family] = {}
        self._serial = 0
        #: Cases that killed a batch, waiting for their run alone: the batch's verdict.
        self._confirming: dict[Case, Outcome] = {}

    # -- set-up in this process (inherited by every child) ----------------------------------

    @contextlib.contextmanager
    def _numba_cache(self) -> Iterator[None]:
        before = os.environ.get("NUMBA_CACHE_DIR")
        os.environ["NUMBA_CACHE_DIR"] = str(self.numba_cache)
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("NUMBA_CACHE_DIR", None)
            else:
                os.environ["NUMBA_CACHE_DIR"] = before

    def prepare(self) -> None:
        """Import hepstream and run every valid file once here: the imports, hepstream's
        numba kernels and the plugin's cached kernels are then warm in every fork; each
        valid file's output is the reference its damaged copies are compared with."""
        import hepstream.cli

        for name, path in self.corpus.items():
            family = FAMILY_BY_NAME[name]
            out_dir = self.workdir / "warmup" / name
            shutil.rmtree(out_dir, ignore_errors=True)
            out_dir.mkdir(parents=True)
            out = out_dir / "out.root"
            err = io.StringIO()
            argv = ["run", str(self.plugin), str(path), "-o", str(out), "--no-progress"]
            with (
                self._numba_cache(),
                contextlib.redirect_stderr(err),
                contextlib.redirect_stdout(io.StringIO()),
            ):
                code = hepstream.cli.main(argv)
            if code != 0 or not out.exists():
                raise RuntimeError(
                    f"the valid {name} file {path} does not run (exit {code}): "
                    f"{err.getvalue().strip()[-800:]}"
                )
            reference = _arrays_of(out)
            shutil.rmtree(out_dir, ignore_errors=True)
            self.families[name] = _Family(
                family, path, path.read_bytes(), find_targets(path, family.kind), reference
            )

    def damaged(self, case: Case) -> tuple[bytes, Mutation]:
        """The input of ``case`` and its mutation (the valid bytes for a ``valid`` case)."""
        fam = self.families[case.family]
        if case.valid:
            return fam.data, Mutation("none", "-", 0, 0, "(the valid file)", "-")
        return mutate(fam.data, fam.targets, fam.family.kind, case.seed, case.number)

    # -- the child ---------------------------------------------------------------------------

    def _slot_dirs(self, slot: int) -> dict[str, Path]:
        base = self.workdir / f"slot{slot}"
        dirs = {k: base / k for k in ("in", "out", "tmp", "err")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        return dirs

    def run_main(self, argv: list[str]) -> int:
        """One ``hepstream`` command in this process, as the console script runs it: an
        uncaught exception prints its traceback and exits 1 (tests override this)."""
        import hepstream.cli

        try:
            return hepstream.cli.main(argv)
        except SystemExit as err:
            return err.code if isinstance(err.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
            return 1

    def _child(self, slot: int, cases: list[Case], results: Path) -> None:
        """Body of a forked child: run ``cases`` in turn, one JSON line per finished case."""
        import faulthandler
        import resource

        os.setpgid(0, 0)  # the parent's SIGKILL reaches anything this case started
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if self.memory_bytes:
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = _vm_size() + self.memory_bytes
            if hard == resource.RLIM_INFINITY or limit < hard:
                resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        _as_a_fresh_process()
        _build_cli_once()
        dirs = self._slot_dirs(slot)
        os.environ.update(
            {
                "TMPDIR": str(dirs["tmp"]),
                "HEPSTREAM_SCRATCH": str(dirs["tmp"]),
                "NUMBA_CACHE_DIR": str(self.numba_cache),
            }
        )
        tempfile.tempdir = None
        faulthandler.enable(file=sys.__stderr__, all_threads=True)  # a crash's stack: fd 2
        with open(results, "a") as sink:
            for index, case in enumerate(cases):
                record = self._one(case, dirs)
                sink.write(json.dumps({"index": index, **record}) + "\n")
                sink.flush()
                if record["threads"]:  # the next case would share the process with them
                    break
        os._exit(0)

    def _one(self, case: Case, dirs: dict[str, Path]) -> dict[str, Any]:
        data, mutation = self.damaged(case)
        inp = dirs["in"] / f"{case.key}.root"
        inp.write_bytes(data)
        out = dirs["out"] / "out.root"
        fd = os.open(dirs["err"] / f"{case.key}.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        before = {t.ident for t in threading.enumerate()}
        start = time.perf_counter()
        argv = ["run", str(self.plugin), str(inp), "-o", str(out), "--no-progress"]
        code = self.run_main([*argv, *mutation.args])
        seconds = time.perf_counter() - start
        sys.stdout.flush()
        sys.stderr.flush()
        threads = _threads_left(before)
        log = _internal_log(dirs["err"] / f"{case.key}.txt")
        allowed = {"out.root"} if code in (0, 6) else set()  # 6: partial, output written
        leftovers = [
            f"output dir: {n}" for n in sorted(os.listdir(dirs["out"])) if n not in allowed
        ]
        leftovers += [f"TMPDIR: {n}" for n in sorted(os.listdir(dirs["tmp"])) if n != log]
        output, why = "none", ""
        if code == 0 and out.exists():
            output, why = _same_output(out, self.families[case.family].reference)
        for name in ("out", "tmp"):
            _empty(dirs[name])
        inp.unlink(missing_ok=True)
        return {
            "code": code,
            "seconds": seconds,
            "leftovers": leftovers,
            "output": output,
            "why": why,
            "threads": threads,
        }

    def _fork(self, slot: int, cases: list[Case]) -> _Child:
        self._serial += 1
        results = self._slot_dirs(slot)["err"].parent / f"results-{self._serial}.jsonl"
        results.write_text("")
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which never returns
            try:
                self._child(slot, cases, results)
            except BaseException:  # the harness's own failure, not the case's: say so
                import traceback

                with open(results.with_suffix(".harness-error"), "w") as sink:
                    traceback.print_exc(file=sink)
            finally:
                os._exit(70)
        return _Child(pid, slot, cases, results, time.monotonic())

    # -- the parent --------------------------------------------------------------------------

    def run(self, cases: Sequence[Case]) -> list[Outcome]:
        """Run ``cases`` (each once: duplicates are run once); outcomes in the order given."""
        if not self.families:
            self.prepare()
        unique = list(dict.fromkeys(cases))
        queue: deque[list[Case]] = deque(
            unique[i : i + self.batch] for i in range(0, len(unique), self.batch)
        )
        results: dict[Case, Outcome] = {}
        running: dict[int, _Child] = {}
        free = list(range(self.jobs))
        last_echo = time.monotonic()
        try:
            while queue or running:
                while queue and free:
                    child = self._fork(free.pop(0), queue.popleft())
                    running[child.pid] = child
                time.sleep(0.02)
                for pid, child in list(running.items()):
                    self._read(child)
                    stalled = time.monotonic() - child.last > self.timeout
                    if len(child.records) < len(child.cases) and stalled and not child.killed:
                        child.killed = True
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(pid, signal.SIGKILL)
                    done, status = os.waitpid(pid, os.WNOHANG)
                    if done == pid:
                        del running[pid]
                        free.append(child.slot)
                        self._finish(child, status, queue, results)
                if self.echo is not None and time.monotonic() - last_echo > 30:
                    last_echo = time.monotonic()
                    failing = sum(o.failing for o in results.values())
                    self.echo(f"fuzz: {len(results)} of {len(unique)} cases, {failing} failing")
        finally:
            for pid in running:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
        return [results[c] for c in cases]

    def _read(self, child: _Child) -> None:
        with open(child.results) as f:
            f.seek(child.consumed)
            chunk = f.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        child.consumed += len(complete)
        for line in complete.splitlines():
            child.records.append(json.loads(line))
            child.last = time.monotonic()

    def _finish(
        self, child: _Child, status: int, queue: deque[list[Case]], results: dict[Case, Outcome]
    ) -> None:
        """Outcomes of a child that ended: its results, then the case it died in, if any;
        the cases it never started go back to the queue."""
        self._read(child)
        harness_error = child.results.with_suffix(".harness-error")
        if harness_error.exists():
            raise RuntimeError(f"the fuzz harness failed in a child:\n{harness_error.read_text()}")
        for record in child.records:
            case = child.cases[record["index"]]
            self._settle(case, self._outcome(case, child.slot, record["code"], record), results)
        done = len(child.records)
        unfinished = child.cases[done:]
        if not unfinished:
            return
        culprit, rest = unfinished[0], unfinished[1:]
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if child.killed:
            outcome = self._outcome(culprit, child.slot, None, timed_out=True)
        else:
            outcome = self._outcome(culprit, child.slot, None, signum=signum)
            if signum is None:  # exit() or os._exit() inside the case
                outcome.notes.append(f"process exited with status {os.WEXITSTATUS(status)}")
        if child.records and child.records[-1]["threads"]:  # it stopped after a stuck case
            queue.appendleft(unfinished)
            return
        if done:
            outcome.notes.append(f"after {done} other case(s) in the same process")
        for name in ("in", "out", "tmp"):
            _empty(self.workdir / f"slot{child.slot}" / name)
        if rest:
            if self.isolate:
                queue.extendleft([c] for c in reversed(rest))
            else:
                queue.appendleft(rest)
        if self.isolate and done and culprit not in self._confirming:
            self._confirming[culprit] = outcome
            queue.appendleft([culprit])
            return
        self._settle(culprit, outcome, results)

    def _settle(self, case: Case, outcome: Outcome, results: dict[Case, Outcome]) -> None:
        """Record ``case``'s outcome; a case re-run alone after killing a batch keeps the
        batch's verdict, with what the run alone did."""
        first = self._confirming.pop(case, None)
        if first is not None:
            again = "too" if outcome.cls == first.cls else "(not reproduced outside the batch)"
            first.notes.append(f"alone: {outcome.cls} {again}")
            outcome = first
        results[case] = outcome

    def _outcome(
        self,
        case: Case,
        slot: int,
        code: int | None,
        record: dict[str, Any] | None = None,
        *,
        signum: int | None = None,
        timed_out: bool = False,
    ) -> Outcome:
        record = record or {}
        err_path = self.workdir / f"slot{slot}" / "err" / f"{case.key}.txt"
        try:
            stderr = err_path.read_text(errors="replace")
        except FileNotFoundError:
            stderr = ""
        cls, reason = classify(
            code=code,
            signum=signum,
            timed_out=timed_out,
            stderr=stderr,
            leftovers=record.get("leftovers", ()),
            output=record.get("output", "none"),
        )
        if cls == FINISHED_DIFFERENT and record.get("why"):
            reason = record["why"]
        data, mutation = self.damaged(case)
        outcome = Outcome(
            case,
            cls,
            reason,
            mutation.describe(),
            mutation.region,
            code,
            signum,
            record.get("seconds", 0.0),
            _head(stderr),
        )
        if outcome.failing:
            outcome.signature = signature_of(cls, reason, stderr)
        if record.get("threads"):
            outcome.notes.append(
                f"threads left running after the job: {', '.join(record['threads'])}"
            )
        err_path.unlink(missing_ok=True)
        if outcome.failing and self.failures_dir is not None:
            self.failures_dir.mkdir(parents=True, exist_ok=True)
            kept = self.failures_dir / f"{case.key}.root"
            kept.write_bytes(data)
            (self.failures_dir / f"{case.key}.stderr.txt").write_text(stderr)
            outcome.kept = str(kept)
        return outcome


def _internal_log(err_file: Path) -> str | None:
    """For an internal error, append the traceback log its line names to the case's stderr
    file (the signature comes from it) and return the log's name (it is no leftover)."""
    text = err_file.read_text(errors="replace")
    match = re.search(r"the traceback is in (\S+), please report it", text)
    if match is None:
        return None
    log = Path(match[1])
    with contextlib.suppress(OSError), open(err_file, "a") as sink:
        sink.write(f"[fuzz harness] {log}:\n{log.read_text(errors='replace')}")
    return log.name


def _build_cli_once() -> None:
    """Let typer build hepstream's click command tree once per child, not once per case.

    ``hepstream.cli.main`` asks typer for the command tree on every call; typer rebuilds it
    from every command's signature, ~0.12 s of a ~0.2 s case here. The tree is the same
    each time (click makes a fresh context per call), so the case runs the same code.
    """
    import typer.main

    build = typer.main.get_command
    built: dict[int, Any] = {}

    def get_command(typer_instance: Any) -> Any:
        key = id(typer_instance)
        if key not in built:
            built[key] = build(typer_instance)
        return built[key]

    typer.main.get_command = get_command  # type: ignore[assignment]


def _vm_size() -> int:
    """This process's virtual memory size in bytes (the child's memory limit sits above it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _threads_left(before: set[int | None], wait: float = 0.3) -> list[str]:
    """Threads a job started (not in ``before``) still alive ``wait`` seconds after it."""
    deadline = time.monotonic() + wait
    while True:
        alive = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.01)


def _empty(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


def _head(stderr: str, head: int = 8, tail: int = 30) -> str:
    """``stderr`` short enough to keep per case: its first and last lines."""
    lines = stderr.splitlines()
    if len(lines) > head + tail:
        lines = [*lines[:head], f"[... {len(lines) - head - tail} lines ...]", *lines[-tail:]]
    return "\n".join(line[:300] for line in lines)


# -- reports -------------------------------------------------------------------------------


def counts(outcomes: Iterable[Outcome]) -> dict[str, Counter[str]]:
    """Cases per family and class, families in :data:`FAMILIES` order."""
    by: dict[str, Counter[str]] = {}
    for o in outcomes:
        by.setdefault(o.case.family, Counter())[o.cls] += 1
    order = [f.name for f in FAMILIES if f.name in by] + sorted(set(by) - set(FAMILY_BY_NAME))
    return {name: by[name] for name in order}


def _markdown(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def table(outcomes: Sequence[Outcome]) -> str:
    """The classification table: a row per family, a column per class, and the totals."""
    by = counts(outcomes)
    total: Counter[str] = Counter()
    rows = []
    for name, c in by.items():
        total.update(c)
        rows.append([name, str(sum(c.values())), *(str(c[k]) for k in CLASSES)])
    rows.append(["**all**", str(sum(total.values())), *(f"**{total[k]}**" for k in CLASSES)])
    return "\n".join(_markdown(["family", "cases", *CLASSES], rows))


def repro_command(case: Case, corpus_dir: Path | None = None) -> str:
    """The one-line command that damages and runs ``case`` again in the foreground."""
    cmd = f"python -m bench.fuzz --family {case.family} --seed {case.seed} --case {case.number}"
    if corpus_dir is not None and Path(corpus_dir) != default_corpus_dir():
        cmd += f" --corpus {corpus_dir}"
    return cmd


def signature(outcome: Outcome) -> str:
    """What tells one defect from another (:func:`signature_of` when the outcome was made)."""
    return outcome.signature or signature_of(outcome.cls, outcome.reason, outcome.stderr)


def signature_of(cls: str, reason: str, stderr: str) -> str:
    """The class and its reason with numbers, paths and pids blanked (the same bug at
    another offset gives the same signature); for a crash or a traceback, the exception
    and the innermost frame of the full ``stderr``."""
    if cls == SIGNAL:  # faulthandler's stack: the innermost Python frame
        frames = re.findall(r'File "([^"]+)", line \d+ in (\S+)', stderr)
        if frames:
            reason += f" (at {Path(frames[0][0]).name}:{frames[0][1]})"
    elif cls == TRACEBACK and "Traceback" in stderr:
        exception, where = exception_of(stderr)
        reason = f"{exception[:150]} (at {where})"
    reason = re.sub(r"b'[^']*'", "b'...'", reason)
    reason = re.sub(r"(/[^\s:'\"]+)+", "PATH", reason)
    reason = re.sub(r"0x[0-9a-fA-F]+|\d[\d,.]*", "N", reason)
    return f"{cls}: {reason}"


def failures_table(
    outcomes: Sequence[Outcome], corpus_dir: Path | None = None, limit: int = 60
) -> str:
    """The failing cases (defect classes): how to reproduce each, what it did, its stderr."""
    failing = [o for o in outcomes if o.failing]
    if not failing:
        return "no failing cases"
    lines = [f"{len(failing)} failing case(s):", ""]
    sigs = Counter(signature(o) for o in failing)
    first = {}
    for o in failing:
        first.setdefault(signature(o), o)
    lines.append("distinct signatures (cases, signature, one reproduction):")
    for sig, n in sigs.most_common():
        lines += [f"  {n:5d}  {sig}", f"         {repro_command(first[sig].case, corpus_dir)}"]
    lines.append("")
    for o in failing[:limit]:
        lines.append(
            f"- {o.cls}: {o.case.family} seed {o.case.seed} case {o.case.number}: {o.mutation}"
        )
        lines.append(f"    reason: {o.reason}")
        if o.notes:
            lines.append(f"    notes: {'; '.join(o.notes)}")
        lines.append(f"    reproduce: {repro_command(o.case, corpus_dir)}")
        if o.kept:
            lines.append(f"    damaged file: {o.kept}")
        err = o.stderr.splitlines()
        shown = err[-8:] if o.cls in (TRACEBACK, SIGNAL) else err[:4]
        lines += [f"    | {line[:200]}" for line in shown]
    if len(failing) > limit:
        lines.append(f"... and {len(failing) - limit} more")
    return "\n".join(lines)


def region_kind(region: str) -> str:
    """A region label without its numbers: ``basket Jet_pt#7 tail +128`` is
    ``basket Jet_pt tail``, ``page #4 +224`` is ``page``."""
    return re.sub(r"\s*[#+]\d+", "", region).strip() or "-"


def different_table(outcomes: Sequence[Outcome], limit: int = 15) -> str:
    """``finished, different output`` cases by input kind, where the damage started and
    why the output differed: damage to values is expected to pass unseen where there is
    no checksum; damage to structure passing unseen is worth a look."""
    diff = [o for o in outcomes if o.cls == FINISHED_DIFFERENT]
    if not diff:
        return "no case finished with a different output"
    groups = Counter(
        (o.case.family, region_kind(o.region), re.sub(r"\d+", "N", o.reason)) for o in diff
    )
    rows = [[str(n), fam, where, why] for (fam, where, why), n in groups.most_common(limit)]
    more = len(groups) - limit
    return "\n".join(
        [
            f"{len(diff)} case(s) finished with a different output (where the damage started):",
            *_markdown(["cases", "family", "region", "why"], rows),
            *([f"... and {more} more groups"] if more > 0 else []),
        ]
    )


def leaks_table(outcomes: Sequence[Outcome], corpus_dir: Path | None = None) -> str:
    """Cases after which threads the job started were still running (not a class: the
    ``hepstream`` command exits anyway; a long-lived process calling ``run_job`` keeps
    them): how many, and one example per kind of failure they followed."""
    leaked = [o for o in outcomes if any(n.startswith("threads left") for n in o.notes)]
    if not leaked:
        return "no threads left running after any case"
    lines = [f"{len(leaked)} case(s) left threads running after the job returned:"]
    seen: dict[str, Outcome] = {}
    for o in leaked:
        seen.setdefault(signature(o) if o.failing else f"{o.cls}", o)
    for sig, o in seen.items():
        lines.append(f"  after {sig}: e.g. {repro_command(o.case, corpus_dir)}")
    return "\n".join(lines)


def summary(outcomes: Sequence[Outcome], corpus_dir: Path | None = None) -> dict[str, Any]:
    """Counts and failing cases as plain data (the bench's ``extra_info``)."""
    by = counts(outcomes)
    failing = [o for o in outcomes if o.failing]
    return {
        "cases": len(outcomes),
        "families": {name: {k: c[k] for k in CLASSES} for name, c in by.items()},
        "classes": {k: sum(c[k] for c in by.values()) for k in CLASSES},
        "failing": len(failing),
        "signatures": dict(Counter(signature(o) for o in failing).most_common()),
        "threads_left": sum(any(n.startswith("threads left") for n in o.notes) for o in outcomes),
        "failures": [
            {
                **o.to_json(),
                "stderr": "\n".join(o.stderr.splitlines()[-12:]),
                "reproduce": repro_command(o.case, corpus_dir),
            }
            for o in failing[:100]
        ],
        "different_output": [
            {
                "family": o.case.family,
                "case": o.case.number,
                "mutation": o.mutation,
                "region": region_kind(o.region),
                "reason": o.reason,
            }
            for o in outcomes
            if o.cls == FINISHED_DIFFERENT
        ][:200],
    }


def campaign(
    corpus_dir: Path,
    workdir: Path,
    seed: int,
    n_cases: int,
    *,
    families: Sequence[str] | None = None,
    **fuzzer_options: Any,
) -> list[Outcome]:
    """Write (or reuse) the corpus, then run ``n_cases`` cases of ``seed`` over ``families``."""
    names = list(families or [f.name for f in FAMILIES])
    corpus = ensure_corpus(corpus_dir, [FAMILY_BY_NAME[n] for n in names])
    fuzzer = Fuzzer(corpus, workdir, **fuzzer_options)
    return fuzzer.run(plan(seed, n_cases, names))


# -- command line --------------------------------------------------------------------------


def reproduce(
    family: str,
    seed: int,
    case: int,
    corpus_dir: Path,
    timeout: float = 120.0,
    workdir: Path | None = None,
) -> int:
    """Write case ``(family, seed, case)``'s damaged file and run ``hepstream run`` on it as a
    process of its own, in the foreground; print its stderr and the class. Returns 1 when
    the case is in a defect class, else 0."""
    fam = FAMILY_BY_NAME[family]
    path = ensure_corpus(corpus_dir, [fam])[family]
    data, mutation = mutate(path.read_bytes(), find_targets(path, fam.kind), fam.kind, seed, case)
    work = Path(workdir or tempfile.mkdtemp(prefix=f"hepstream-fuzz-{family}-s{seed}-c{case}-"))
    print(f"case:     {family} seed {seed} case {case}")
    print(f"mutation: {mutation.describe()}")
    return _foreground(path, data, mutation.args, work, timeout)


def replay(family: str, damaged: Path, corpus_dir: Path, timeout: float = 120.0) -> int:
    """:func:`reproduce` for a damaged file already on disk (a kept failure, an atheris
    crash file), compared with ``family``'s valid file."""
    path = ensure_corpus(corpus_dir, [FAMILY_BY_NAME[family]])[family]
    work = Path(tempfile.mkdtemp(prefix=f"hepstream-fuzz-replay-{family}-"))
    print(f"input:    {damaged} (valid file: {path})")
    return _foreground(path, Path(damaged).read_bytes(), (), work, timeout)


def _foreground(valid: Path, data: bytes, args: Sequence[str], work: Path, timeout: float) -> int:
    """Run ``hepstream run`` on the valid file (the reference) and on ``data``, each as a
    process of its own; print the damaged run's command, stderr and class."""
    work.mkdir(parents=True, exist_ok=True)
    plugin = write_plugin(work)
    damaged = work / "damaged.root"
    damaged.write_bytes(data)
    out_dir, tmp = work / "out", work / "tmp"
    for d in (out_dir, tmp):
        d.mkdir(exist_ok=True)
        _empty(d)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(work / "numba"), "TMPDIR": str(tmp)}
    ref_out = work / "valid" / "out.root"
    ref = subprocess.run(
        [
            sys.executable,
            "-m",
            "hepstream",
            "run",
            str(plugin),
            str(valid),
            "-o",
            str(ref_out),
            "--no-progress",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if ref.returncode != 0:
        print(f"the valid file does not run: {ref.stderr.strip()}", file=sys.stderr)
        return 2
    _empty(tmp)
    cmd = [
        sys.executable,
        "-m",
        "hepstream",
        "run",
        str(plugin),
        str(damaged),
        "-o",
        str(out_dir / "out.root"),
        "--no-progress",
        *args,
    ]
    print(f"command:  NUMBA_CACHE_DIR={env['NUMBA_CACHE_DIR']} {' '.join(cmd)}", flush=True)
    timed_out, signum, code, stderr = False, None, None, ""
    try:
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        stderr = done.stderr
        code, signum = (done.returncode, None) if done.returncode >= 0 else (None, -done.returncode)
    except subprocess.TimeoutExpired as err:
        timed_out = True
        stderr = err.stderr.decode(errors="replace") if isinstance(err.stderr, bytes) else ""
    print("--- stderr ---")
    print(stderr.rstrip())
    print("--------------")
    log = re.search(r"the traceback is in (\S+), please report it", stderr)
    allowed = {"out.root"} if code in (0, 6) else set()
    leftovers = [f"output dir: {n}" for n in sorted(os.listdir(out_dir)) if n not in allowed]
    leftovers += [
        f"TMPDIR: {n}" for n in sorted(os.listdir(tmp)) if log is None or n != Path(log[1]).name
    ]
    output, why = "none", ""
    if code == 0 and (out_dir / "out.root").exists():
        output, why = _same_output(out_dir / "out.root", _arrays_of(ref_out))
    if log is not None and Path(log[1]).exists():
        stderr += Path(log[1]).read_text(errors="replace")
    cls, reason = classify(
        code=code,
        signum=signum,
        timed_out=timed_out,
        stderr=stderr,
        leftovers=leftovers,
        output=output,
    )
    print(f"exit:     {code if signum is None else f'signal {signum}'}")
    print(f"class:    {cls}{f' ({why or reason})' if (why or reason) else ''}")
    print(f"files:    {work}")
    return 1 if cls in FAILING else 0


class FuzzDefect(Exception):
    """A case in a defect class, raised for atheris (which saves the input that did it)."""


def run_atheris(family: str, corpus_dir: Path, workdir: Path, libfuzzer: list[str]) -> None:
    """Coverage-guided fuzzing of one family with atheris (optional: ``pip install atheris``;
    not a dependency, and the fixed-seed runs never need it).

    hepstream's and uproot's Python code is instrumented, so libFuzzer keeps the mutations
    that reach new branches of the parsers and checks; the compiled decoders (numba) are
    not, but run on every input. Each input runs through ``hepstream.cli.main`` in this
    process; a case in a defect class raises :class:`FuzzDefect` and atheris writes the
    input to ``workdir`` (``crash-*``); a signal or a hang (``-timeout``) stops libFuzzer
    the same way. Replay one with ``python -m bench.fuzz --replay FILE --family F``.
    """
    import atheris

    fam = FAMILY_BY_NAME[family]
    path = ensure_corpus(corpus_dir, [fam])[family]
    with atheris.instrument_imports(include=["hepstream", "uproot"]):
        import uproot  # noqa: F401

        import hepstream.cli
        import hepstream.job.reader
        import hepstream.job.runner
        import hepstream.job.writer  # noqa: F401
    fuzzer = Fuzzer({family: path}, workdir, jobs=1)
    fuzzer.prepare()
    reference = fuzzer.families[family].reference
    seeds = workdir / "seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    (seeds / path.name).write_bytes(path.read_bytes())
    dirs = fuzzer._slot_dirs(0)
    os.environ.update({"TMPDIR": str(dirs["tmp"]), "NUMBA_CACHE_DIR": str(fuzzer.numba_cache)})
    tempfile.tempdir = None

    def one_input(data: bytes) -> None:
        inp, out = dirs["in"] / "input.root", dirs["out"] / "out.root"
        inp.write_bytes(data)
        err = io.StringIO()
        argv = ["run", str(fuzzer.plugin), str(inp), "-o", str(out), "--no-progress"]
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = fuzzer.run_main(argv)
        allowed = {"out.root"} if code in (0, 6) else set()
        leftovers = [f"output dir: {n}" for n in os.listdir(dirs["out"]) if n not in allowed]
        leftovers += [f"TMPDIR: {n}" for n in os.listdir(dirs["tmp"]) if "traceback" not in n]
        output = _same_output(out, reference)[0] if code == 0 and out.exists() else "none"
        for name in ("out", "tmp"):
            _empty(dirs[name])
        cls, reason = classify(code=code, stderr=err.getvalue(), leftovers=leftovers, output=output)
        if cls in FAILING:
            raise FuzzDefect(f"{cls}: {reason}\n{err.getvalue()[-3000:]}")

    size = len(path.read_bytes())
    argv = [
        sys.argv[0],
        f"-max_len={2 * size}",
        "-timeout=10",
        "-rss_limit_mb=4096",
        f"-artifact_prefix={workdir}/",
        *libfuzzer,
        str(seeds),
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz",
        description="Damage small valid ROOT files and run `hepstream run` on them (issue 23).",
        epilog="examples: python -m bench.fuzz --family ttree-uproot-zlib --seed 23 --case 17\n"
        "          python -m bench.fuzz --seed 1 --cases 300",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--family",
        action="append",
        choices=sorted(FAMILY_BY_NAME),
        help="input family (repeat for a campaign; default: all)",
    )
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--case", type=int, help="reproduce this one case in the foreground")
    parser.add_argument("--cases", type=int, help="run a campaign of this many cases")
    parser.add_argument("--corpus", type=Path, help="corpus dir (default: bench data dir/fuzz)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per case")
    parser.add_argument(
        "--atheris",
        action="store_true",
        help="coverage-guided fuzzing of one --family with atheris (optional); "
        "libFuzzer options after --, e.g. -- -runs=10000",
    )
    parser.add_argument("--workdir", type=Path, help="--atheris: where crash files go")
    parser.add_argument("--replay", type=Path, help="run this damaged file (with one --family)")
    parser.add_argument("--write-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else argv
    libfuzzer = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.write_root is not None:  # the ROOT child of ensure_corpus
        _write_root_families(args.write_root, args.names)
        return 0
    corpus_dir = args.corpus or default_corpus_dir()
    if args.atheris:
        if not args.family or len(args.family) != 1:
            parser.error("--atheris needs exactly one --family")
        work = args.workdir or Path(tempfile.mkdtemp(prefix="hepstream-atheris-"))
        print(f"atheris: inputs that fail go to {work}/crash-*", flush=True)
        run_atheris(args.family[0], corpus_dir, work, libfuzzer)
        return 0
    if args.replay is not None:
        if not args.family or len(args.family) != 1:
            parser.error("--replay needs exactly one --family")
        return replay(args.family[0], args.replay, corpus_dir, timeout=max(args.timeout, 60.0))
    if args.case is not None:
        if not args.family or len(args.family) != 1:
            parser.error("--case needs exactly one --family")
        return reproduce(
            args.family[0], args.seed, args.case, corpus_dir, timeout=max(args.timeout, 60.0)
        )
    if args.cases is None:
        parser.error("give --case N (with --family) or --cases N")
    work = Path(tempfile.mkdtemp(prefix="hepstream-fuzz-"))
    try:
        start = time.monotonic()
        outcomes = campaign(
            corpus_dir,
            work,
            args.seed,
            args.cases,
            families=args.family,
            jobs=args.jobs,
            batch=args.batch,
            timeout=args.timeout,
            failures_dir=corpus_dir / "failures" / f"s{args.seed}",
            isolate=True,
            echo=print,
        )
        print(table(outcomes))
        print()
        print(failures_table(outcomes, corpus_dir))
        print(different_table(outcomes))
        print(leaks_table(outcomes, corpus_dir))
        print(f"\n{len(outcomes)} cases in {time.monotonic() - start:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if any(o.failing for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
