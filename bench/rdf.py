"""ROOT's RDataFrame as the anchor (issue 10 item 5): each layout's selection in C++ strings.

A physicist who does not use hepstream would write the selection as RDataFrame ``Filter`` /
``Define`` strings (JIT-compiled by ROOT) and ``Snapshot`` the reduced output. Each
measurement runs in a fresh child process, ``python -m bench.rdf LAYOUT --threads T INPUT...``,
which prints one JSON line: events, selected, and the event loop's own seconds. The parent
(:func:`run_rdf`) also times the whole process: interpreter, ``import ROOT``, JIT included.
``--threads 0`` is ``ROOT.EnableImplicitMT()`` on all cores; ``1`` runs single-threaded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_MLL = """
const double pta = Muon_pt[0], ptb = Muon_pt[1], etaa = Muon_eta[0], etab = Muon_eta[1];
const double phia = Muon_phi[0], phib = Muon_phi[1], ma = Muon_mass[0], mb = Muon_mass[1];
const double px = pta * std::cos(phia) + ptb * std::cos(phib);
const double py = pta * std::sin(phia) + ptb * std::sin(phib);
const double pz = pta * std::sinh(etaa) + ptb * std::sinh(etab);
const double ea = std::sqrt(std::pow(pta * std::cosh(etaa), 2) + ma * ma);
const double eb = std::sqrt(std::pow(ptb * std::cosh(etab), 2) + mb * mb);
const double m2 = (ea + eb) * (ea + eb) - px * px - py * py - pz * pz;
return std::sqrt(std::max(m2, 0.0));
"""

_TAU1N = """
const int n = ntrk;
int charge = 0;
std::size_t lead = 0;
for (std::size_t j = 0; j < trk_p.size(); ++j) {
  charge += trk_charge[j];
  if (trk_p[j] > trk_p[lead]) lead = j;
}
int same = 0;
for (std::size_t j = 0; j < trk_p.size(); ++j)
  same += (double(trk_px[j]) * trk_px[lead] + double(trk_py[j]) * trk_py[lead]
           + double(trk_pz[j]) * trk_pz[lead]) > 0.0;
bool ok = charge == 0 && double(trk_p[lead]) <= 0.8 * double(ebeam)
          && (same == 1 || same == n - 1);
if (n == 2) {
  const bool ee = trk_pid_e[0] > 0.9 && trk_pid_e[1] > 0.9;
  const bool mm = trk_pid_mu[0] > 0.9 && trk_pid_mu[1] > 0.9;
  ok = ok && !(ee || mm);
}
return ok;
"""

#: Per selection of ``bench.answers``: (steps in order, output columns); a step is
#: ``("Filter", expression, name)`` or ``("Define", column, expression)``.
#: The same cuts as the numba plugins and the awkward answers, in float64.
STEPS: dict[str, tuple[list[tuple[str, str, str]], list[str]]] = {
    "zmumu": (
        [
            ("Filter", "nMuon >= 2 && double(MET_pt) < 60.0", "preselect"),
            ("Filter", "double(Muon_pt[0]) > 25.0 && double(Muon_pt[1]) > 15.0 && "
                       "std::abs(double(Muon_eta[0])) < 2.4 && std::abs(double(Muon_eta[1])) < 2.4"
                       " && Muon_charge[0] * Muon_charge[1] < 0", "muons"),
            ("Define", "mll", _MLL),
            ("Filter", "mll > 70.0 && mll < 110.0", "Z window"),
        ],
        ["mll", "MET_pt", "Muon_pt", "Muon_eta", "Muon_charge"],
    ),
    "dijet_btag": (
        [
            ("Define", "goodjet", "Jet_pt > 30.0 && abs(Jet_eta) < 2.4"),
            ("Define", "HT", "Sum(ROOT::RVecD(Jet_pt[goodjet]))"),
            ("Filter", "HT > 200.0 && Any(Jet_btagDeepFlavB[goodjet] > 0.7)", "HT and b-tag"),
        ],
        ["HT", "Jet_pt", "Jet_btagDeepFlavB"],
    ),
    "bigbasket": (
        [("Filter", "x < 0.5 && y * y + z * z < 0.5 && Sum(hit_e) > 1.5", "cuts")],
        ["x", "y", "hit_e"],
    ),
    "tau1n": (
        [
            ("Filter", "(ntrk == 2 || ntrk == 4) && double(thrust) > 0.85 && "
                       "double(missing_pt) > 0.3", "cheap"),
            ("Filter", _TAU1N, "tracks"),
        ],
        ["run", "event", "thrust", "missing_pt", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu"],
    ),
}  # fmt: skip


#: What this ROOT (the PyPI wheel, 6.40.00) cannot do, found by the layout suite: with
#: ``EnableImplicitMT()`` a TTree source reopens each file per task with ``TFile::Open(url,
#: "READ_WITHOUT_GLOBALREGISTRATION")``, which for ``root://`` falls back to a plain local
#: ``TFile`` ("file /data/... does not exist"). Single-threaded TTree reads (a ``TChain``) and
#: RNTuple sources in either mode do open ``root://``; the suite measures only those remotely.
MT_REMOTE_TTREE = "RDataFrame implicit MT cannot open root:// TTrees with ROOT 6.40.00 (PyPI)"


@dataclass(frozen=True)
class RdfRun:
    """One RDataFrame child process."""

    events: int
    selected: int
    #: Seconds of the event loop (RDataFrame built, JIT, loop, Snapshot), inside the child.
    loop_s: float
    #: Seconds from spawn to exit: interpreter start and ``import ROOT`` included.
    process_s: float
    threads: int
    root_version: str


def run_rdf(layout: str, inputs: list[str], threads: int, *, timeout: float = 1800) -> RdfRun:
    """Run layout ``layout``'s selection over ``inputs`` in a fresh ROOT process."""
    cmd = [sys.executable, "-W", "ignore", "-m", "bench.rdf", layout, "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(
        [*cmd, *inputs], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip
    process_s = time.perf_counter() - began
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-4:])
        raise RuntimeError(f"RDataFrame child for {layout} exited {done.returncode}: {tail}")
    data = json.loads(lines[-1])
    return RdfRun(data["events"], data["selected"], data["loop_s"], round(process_s, 4),
                  data["threads"], data["root_version"])  # fmt: skip


def _dataframe(root, name: str, kind: str, inputs: list[str]):
    """An RDataFrame over ``inputs`` that also opens ``root://`` URLs, and what it reads
    from (the chain must outlive the event loop).

    ROOT 6.40's ``RDataFrame(name, files)`` probes each file with a plain ``TFile``, which
    cannot open ``root://`` ("could not open file"); a ``TChain`` (TTree) and
    ``FromRNTuple`` go through ``TFile::Open`` and its XRootD plugin (``TNetXNGFile``).
    """
    if kind == "rntuple":
        from_rntuple = getattr(root.RDF, "FromRNTuple", None) or root.RDF.Experimental.FromRNTuple
        files = root.std.vector("std::string")()
        for path in inputs:
            files.push_back(path)
        return from_rntuple(name, files), files
    chain = root.TChain(name)
    for path in inputs:
        chain.Add(path)
    return root.RDataFrame(chain), chain


def _child(layout_name: str, inputs: list[str], threads: int) -> dict:
    """The measurement itself, in the child process."""
    import ROOT

    from bench.layouts import LAYOUTS

    ROOT.gROOT.SetBatch(True)
    if threads == 0:
        ROOT.EnableImplicitMT()
    elif threads > 1:
        ROOT.EnableImplicitMT(threads)
    layout = LAYOUTS[layout_name]
    steps, columns = STEPS[layout.selection]
    began = time.perf_counter()
    df, _source = _dataframe(ROOT, layout.tree, layout.kind, inputs)
    events = df.Count()
    for kind, first, second in steps:  # ("Filter", expression, name), ("Define", name, expression)
        df = df.Filter(first, second) if kind == "Filter" else df.Define(first, second)
    selected = df.Count()
    fd, out = tempfile.mkstemp(prefix="hepstream-rdf-", suffix=".root")
    os.close(fd)
    try:
        opts = ROOT.RDF.RSnapshotOptions()
        opts.fLazy = True
        df.Snapshot("selected", out, columns, opts)
        n_events, n_selected = int(events.GetValue()), int(selected.GetValue())
    finally:
        Path(out).unlink(missing_ok=True)
    return {
        "events": n_events, "selected": n_selected,
        "loop_s": round(time.perf_counter() - began, 4),
        "threads": int(ROOT.GetThreadPoolSize()) or 1, "root_version": ROOT.__version__,
    }  # fmt: skip


def _main() -> None:
    parser = argparse.ArgumentParser(description="One RDataFrame measurement (JSON on stdout).")
    parser.add_argument("layout")
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--threads", type=int, default=0, help="0 = EnableImplicitMT() on all")
    args = parser.parse_args()
    print(json.dumps(_child(args.layout, args.inputs, args.threads)), flush=True)


if __name__ == "__main__":
    _main()
