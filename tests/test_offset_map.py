"""A TTree written with ROOT's ``kGenerateOffsetMap``: jagged baskets without entry offsets.

``uproot-small-dy-nooffsets.root`` (scikit-hep-testdata 0.3.12, a CMS NanoAOD-like tree)
stores ``Jet_pt[nJet]`` and ``Muon_pt[nMuon]`` baskets with no entry offsets; readers
rebuild them from the counter branch, as ROOT does. uproot 5.7 refuses these baskets;
hepstream reads them, and the values are ROOT's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skhep_testdata
import uproot

FILE = skhep_testdata.data_path("uproot-small-dy-nooffsets.root")
PLUGIN = """\
import numpy as np, hepstream

class Everything(hepstream.Selection):
    tree = "tree"
    branches = {branches!r}
    def select(self, events):
        return np.ones(len(events), np.bool_)
"""
ROOT_VALUES = """\
import json, sys, ROOT
file = ROOT.TFile.Open(sys.argv[1])  # kept: the tree lives in it
tree = file.Get("tree")
out = {"Jet_pt": [], "Muon_pt": [], "nJet": []}
for i in range(tree.GetEntries()):
    tree.GetEntry(i)
    out["Jet_pt"].append([float(x) for x in tree.Jet_pt])
    out["Muon_pt"].append([float(x) for x in tree.Muon_pt])
    out["nJet"].append(int(tree.nJet))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def root_values() -> dict[str, list]:
    """What ROOT itself reads from the file (PyPI ``root``, in a process of its own)."""
    done = subprocess.run(
        [sys.executable, "-c", ROOT_VALUES, FILE],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run(tmp_path: Path, branches: list[str]) -> dict[str, list]:
    plugin = tmp_path / "everything.py"
    plugin.write_text(PLUGIN.format(branches=branches))
    out = tmp_path / "out.root"
    exe = Path(sys.executable).with_name("hepstream")
    done = subprocess.run(
        [str(exe), "run", str(plugin), FILE, "-o", str(out), "--no-progress", "--chunk", "16k"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    tree = uproot.open(out)[uproot.open(out).keys()[0].split(";")[0]]
    return {name: tree[name].array(library="ak").tolist() for name in branches}


def test_uproot_refuses_the_file():
    """The case hepstream covers: uproot itself cannot read these baskets."""
    with pytest.raises(Exception):  # noqa: B017, PT011  (whatever uproot raises for them)
        uproot.open(FILE)["tree"]["Jet_pt"].array()


@pytest.mark.parametrize(
    "branches", [["nJet", "Jet_pt", "Muon_pt"], ["Jet_pt"]], ids=["with-counters", "alone"]
)
def test_lists_without_offsets_read_as_root_reads_them(tmp_path, root_values, branches):
    """Every entry's items equal ROOT's, with the counter asked for or not (then it is
    read for the offsets all the same), over chunks smaller than the file."""
    got = _run(tmp_path, branches)
    for name in branches:
        want = root_values[name]
        assert len(got[name]) == len(want) == 501
        if name.startswith("n"):
            assert got[name] == want
        else:
            for mine, theirs in zip(got[name], want, strict=True):
                np.testing.assert_array_equal(np.float32(mine), np.float32(theirs))
