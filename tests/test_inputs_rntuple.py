"""An RNTuple chunk that ends on a cluster edge reads that chunk's clusters and no more.

uproot 5.7's ``RNTuple.arrays(entry_start, entry_stop)`` also reads the cluster starting at
``entry_stop`` (found on ROOT's 2-cluster NanoAOD-like RNTuple: 1.59x the needed bytes);
``RNTupleStore`` reads exactly its planned pages, each once, and gives uproot's arrays.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import ClassVar

import awkward as ak
import numpy as np
import pytest
import uproot

from hepstream.cli import main
from hepstream.root.store import event_store

SIZES = (1000, 1200, 1400)  # entries per cluster: one uproot extend each


@pytest.fixture(scope="module")
def three_clusters(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rn") / "three.root"
    rng = np.random.default_rng(7)
    with uproot.recreate(path) as out:
        ntuple = None
        for n in SIZES:
            counts = rng.poisson(2.0, n)
            data = {"x": rng.random(n), "v": ak.unflatten(rng.random(int(counts.sum())), counts)}
            if ntuple is None:
                ntuple = out.mkrntuple("ntuple", data)
            else:
                ntuple.extend(data)
    return str(path)


class Recording(uproot.source.file.MemmapSource):
    """The local source, counting every byte range uproot asks for."""

    asked: ClassVar[Counter] = Counter()

    def chunk(self, start, stop):
        Recording.asked[(start, stop)] += 1
        return super().chunk(start, stop)

    def chunks(self, ranges, notifications):
        Recording.asked.update(ranges)
        return super().chunks(ranges, notifications)


def test_a_chunk_on_a_cluster_edge_reads_only_its_clusters(three_clusters):
    with uproot.open(three_clusters) as plain:
        want = plain["ntuple"].arrays(["x", "v"])
    with uproot.open(three_clusters, handler=Recording, array_cache=None) as file:
        store = event_store(three_clusters, file, "ntuple")
        edges = store.cluster_offsets()
        assert edges == [0, 1000, 2200, 3600]
        for start, stop in [(0, 1000), (1000, 2200), (2200, 3600), (0, 2200), (1000, 3600)]:
            planned = Counter(store.ranges(["x", "v"], start, stop))
            Recording.asked.clear()
            got = store.arrays(["x", "v"], start, stop)
            pages = Counter({r: n for r, n in Recording.asked.items() if r in planned})
            others = {r for r in Recording.asked if r not in planned}
            assert pages == planned, (start, stop)  # every planned page, as often as planned
            assert not [r for r in others if r[1] - r[0] > 64], (start, stop, others)
            assert ak.array_equal(got, want[start:stop]), (start, stop)


_PLUGIN = """\
import hepstream

class Both(hepstream.Selection):
    tree = "nt"
    branches = {branches!r}
    def select(self, events):
        return hepstream.flat(events, "x") > 50
"""


def test_a_field_uproot_cannot_read_is_one_line_before_any_page(tmp_path, capsys):
    """ROOT writes a class as a streamer (unsplit) field; uproot cannot read those. The
    job names the file, the field and its type in one line, exit 3, no output; the
    other fields of the same file still run."""
    path = tmp_path / "streamer.root"
    writer = Path(__file__).parent / "data" / "write_streamer_field.py"
    done = subprocess.run(
        [sys.executable, "-W", "ignore", str(writer), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    both, plain = tmp_path / "both.py", tmp_path / "plain.py"
    both.write_text(_PLUGIN.format(branches=["x", "label"]))
    plain.write_text(_PLUGIN.format(branches=["x"]))
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [
            "run",
            str(both),
            str(path),
            "-o",
            str(out / "o.root"),
            "--report",
            str(out / "r.json"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err.splitlines()
    errors = [line for line in err if line.startswith("hepstream: error:")]
    assert code == 3
    assert errors == [
        f"hepstream: error: {path}: RNTuple field 'label' (TObjString) cannot be read by "
        f"uproot {uproot.__version__} (Unsplit fields are not supported); drop it from the "
        f"plugin's branches"
    ]
    assert [p.name for p in out.iterdir()] == ["r.json"]
    assert json.loads((out / "r.json").read_text())["status"] == "failed"
    assert main(["run", str(plain), str(path), "-o", str(out / "o.root"), "--no-progress"]) == 0
    with uproot.open(out / "o.root") as file:
        assert file[file.keys(cycle=False)[0]].num_entries == 49
