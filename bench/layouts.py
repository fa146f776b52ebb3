"""The layout matrix of issue 10: one sample per file layout, generated once and cached.

Every generator takes ``(path, n_events, seed)`` and writes ``path`` atomically (a temp name
beside it, then a rename), so a failed or interrupted write never leaves a file a later run
would trust. :func:`ensure` caches files under the bench data dir with names that encode
everything that changes the file (layout, events, seed, generator version).

Layouts written by ROOT run in a child process (``python -m bench.layouts write LAYOUT PATH
N SEED``): importing ROOT takes seconds, loads a C++ interpreter and prints an alpha-release
warning that ``filterwarnings=error`` would turn into a failure inside pytest.

    uproot-bigbasket      uproot, one basket per 100k entries, incompressible random floats
    root-nanoaod          ROOT RDataFrame Snapshot (ROOT's defaults), ~100 NanoAOD-like branches
    root-nanoaod-rntuple  the same events as an RNTuple (Snapshot, fOutputFormat = kRNTuple)
    smallbasket           ROOT Snapshot, 32 KiB baskets in 200k-entry clusters
    tau1n                 hepstream's own Tau1N-data samples (bench/data.py's generator)
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
PLUGINS = BENCH_DIR / "plugins"
#: C++ event generator of the NanoAOD-like layouts (declared to ROOT's interpreter).
NANOAOD_HEADER = BENCH_DIR / "nanoaod_gen.h"
#: Bump when a generator changes what it writes: cached files get new names.
GENERATOR_VERSION = 1
#: Entries per basket (and cluster) of the uproot big-basket layout.
BIGBASKET_ENTRIES = 100_000
#: The small-basket layout: ROOT's basket size and entries per cluster (AutoFlush).
SMALLBASKET_BYTES = 32 * 1024
SMALLBASKET_CLUSTER = 200_000
#: Entries per basket of the tau1n layout (the generator's default, a ROOT-like cluster).
TAU1N_ENTRIES = 10_000

# -- the NanoAOD-like event content -----------------------------------------------------------

_MUON = ("pt", "eta", "phi", "mass", "charge", "dxy", "dz", "pfRelIso04_all", "jetIdx",
         "nTrackerLayers", "tightId", "mediumId", "looseId")  # fmt: skip
_ELECTRON = ("pt", "eta", "phi", "mass", "charge", "cutBased", "pfRelIso03_all", "dxy", "dz")
_JET = ("pt", "eta", "phi", "mass", "btagDeepFlavB", "area", "jetId", "puId", "nConstituents")
_PHOTON = ("pt", "eta", "phi", "pfRelIso03_all")
_TAU = ("pt", "eta", "phi", "mass", "charge", "decayMode")
HLT_PATHS = (
    "IsoMu24", "IsoMu27", "Mu50", "Mu17_TrkIsoVVL_Mu8_TrkIsoVVL_DZ_Mass3p8", "Mu37_TkMu27",
    "Ele32_WPTight_Gsf", "Ele35_WPTight_Gsf", "Ele115_CaloIdVT_GsfTrkIdT",
    "Ele23_Ele12_CaloIdL_TrackIdL_IsoVL", "DoubleEle33_CaloIdL_MW", "Photon200",
    "Diphoton30_22_R9Id_OR_IsoCaloId_AND_HE_R9Id_Mass90", "PFHT1050", "PFJet500",
    "AK8PFJet500", "PFMET120_PFMHT120_IDTight", "PFMETNoMu120_PFMHTNoMu120_IDTight",
    "MET105_IsoTrk50", "DoubleMediumChargedIsoPFTauHPS35_Trk1_eta2p1",
    "IsoMu24_eta2p1_LooseDeepTauPFTauHPS30_eta2p1_CrossL1", "Mu8_TrkIsoVVL_Ele23_CaloIdL",
    "Mu23_TrkIsoVVL_Ele12_CaloIdL", "TripleMu_12_10_5", "DoubleMu4_3_Jpsi", "Dimuon25_Jpsi",
    "QuadPFJet70_50_40_35_PFBTagParticleNet_2BTagSum0p65", "PFHT330PT30_QuadPFJet_75_60_45_40",
    "ZeroBias", "L1SingleMuOpen", "Physics",
)  # fmt: skip
FLAGS = (
    "goodVertices", "globalSuperTightHalo2016Filter", "HBHENoiseFilter",
    "HBHENoiseIsoFilter", "EcalDeadCellTriggerPrimitiveFilter", "BadPFMuonFilter",
    "BadPFMuonDzFilter", "eeBadScFilter", "ecalBadCalibFilter", "METFilters",
)  # fmt: skip
_SCALARS = (
    "run", "luminosityBlock", "event",
    "MET_pt", "MET_phi", "MET_sumEt", "MET_significance",
    "PuppiMET_pt", "PuppiMET_phi", "PuppiMET_sumEt",
    "PV_npvs", "PV_npvsGood", "PV_x", "PV_y", "PV_z", "fixedGridRhoFastjetAll",
)  # fmt: skip


def nanoaod_columns() -> dict[str, str]:
    """Branch (or field) name -> C++ expression on the generated event ``hsev``."""
    cols = {name: f"hsev.{name}" for name in _SCALARS[:3]}
    for coll, fields in (("Muon", _MUON), ("Electron", _ELECTRON), ("Jet", _JET),
                         ("Photon", _PHOTON), ("Tau", _TAU)):  # fmt: skip
        cols[f"n{coll}"] = f"hsev.n{coll}"
        cols |= {f"{coll}_{f}": f"hsev.{coll}_{f}" for f in fields}
    cols |= {name: f"hsev.{name}" for name in _SCALARS[3:]}
    cols |= {f"HLT_{p}": f"hsev.HLT[{i}]" for i, p in enumerate(HLT_PATHS)}
    cols |= {f"Flag_{f}": f"hsev.Flag[{i}]" for i, f in enumerate(FLAGS)}
    return cols


# -- writers (ROOT ones run in the child process) ---------------------------------------------


def _root_snapshot(path: Path, n_events: int, seed: int, fmt: str) -> None:
    """Write NanoAOD-like events with RDataFrame Snapshot; in the ROOT child process only."""
    import ROOT

    ROOT.gROOT.SetBatch(True)
    if not ROOT.gInterpreter.Declare(f'#include "{NANOAOD_HEADER}"'):
        raise RuntimeError(f"ROOT could not compile {NANOAOD_HEADER}")
    df = ROOT.RDataFrame(n_events).Define("hsev", f"hsbench::make_event(rdfentry_, {seed}ull)")
    columns = nanoaod_columns()
    for name, expr in columns.items():
        df = df.Define(name, expr)
    opts = ROOT.RDF.RSnapshotOptions()  # ROOT's defaults unless the layout says otherwise
    if fmt == "rntuple":
        opts.fOutputFormat = ROOT.RDF.ESnapshotOutputFormat.kRNTuple
    elif fmt == "smallbasket":
        opts.fBasketSize = SMALLBASKET_BYTES
        opts.fAutoFlush = SMALLBASKET_CLUSTER
    df.Snapshot("Events", str(path), list(columns), opts)


def _root_child(fmt: str) -> Callable[[Path, int, int], None]:
    def write(path: Path, n_events: int, seed: int) -> None:
        cmd = [sys.executable, "-W", "ignore", "-m", "bench.layouts", "write", fmt, str(path)]
        cmd += [str(n_events), str(seed)]
        done = subprocess.run(
            cmd, cwd=BENCH_DIR.parent, capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(
                [str(BENCH_DIR.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)},
        )  # fmt: skip
        if done.returncode != 0 or not path.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise RuntimeError(f"ROOT writer for {fmt} exited {done.returncode}: {tail}")

    return write


def write_bigbasket(path: Path, n_events: int, seed: int) -> None:
    """uproot, one ``extend`` (one basket per branch, one cluster) per 100k entries.

    Uniform random float64s do not compress, so baskets are stored as they are: a
    100k-entry basket of ``hit_e`` (3 hits per event on average) is ~2.7 MB.
    """
    import awkward as ak
    import uproot

    rng = np.random.default_rng(seed)
    with uproot.recreate(path) as out:
        tree = out.mktree("events", {"x": "f8", "y": "f8", "z": "f8", "t": "f8",
                                     "hit_e": "var * float64"})  # fmt: skip
        for start in range(0, n_events, BIGBASKET_ENTRIES):
            n = min(BIGBASKET_ENTRIES, n_events - start)
            counts = rng.poisson(3.0, n)
            hits = ak.unflatten(rng.random(int(counts.sum())), counts)
            tree.extend({"x": rng.random(n), "y": rng.random(n), "z": rng.random(n),
                         "t": rng.random(n), "hit_e": hits})  # fmt: skip


def write_tau1n(path: Path, n_events: int, seed: int) -> None:
    """hepstream's own Tau1N-data generator (the samples of the other bench suites)."""
    from hepstream.tools.generate import generate_sample

    generate_sample(path, "tau1n-data", n_events, seed=seed, events_per_basket=TAU1N_ENTRIES)


_ZMUMU = ("nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "Muon_mass", "MET_pt")

# -- the layouts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """One row of the matrix: how its file is written and which plugin reads it."""

    name: str
    #: TTree or RNTuple name (what the plugin's ``tree`` says).
    tree: str
    #: ``ttree`` or ``rntuple``.
    kind: str
    #: Who writes the file, for the tables.
    writer: str
    description: str
    #: Events per file in the full bench and in the quick (CI) bench.
    full_events: int
    quick_events: int
    write: Callable[[Path, int, int], None]
    #: The plugin file that reads it and the key of its awkward answer (``bench.answers``).
    plugin: Path
    selection: str
    #: Names of the branches (fields) the plugin reads, for the uproot-only readers.
    branches: tuple[str, ...]

    def file_name(self, n_events: int, seed: int) -> str:
        """Cache file name: layout, events, seed and generator version."""
        return f"{self.name}_{n_events}ev_s{seed}_g{GENERATOR_VERSION}.root"


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("uproot-bigbasket", "events", "ttree", "uproot",
               "uproot-written, one basket per 100k entries, incompressible float64",
               3_000_000, 200_000, write_bigbasket, PLUGINS / "bigbasket.py", "bigbasket",
               ("x", "y", "z", "hit_e")),
        Layout("root-nanoaod", "Events", "ttree", "ROOT",
               "ROOT RDataFrame Snapshot, ROOT's defaults, ~100 NanoAOD-like branches",
               1_000_000, 20_000, _root_child("ttree"), PLUGINS / "zmumu.py", "zmumu", _ZMUMU),
        Layout("root-nanoaod-rntuple", "Events", "rntuple", "ROOT",
               "the same events as an RNTuple (Snapshot fOutputFormat=kRNTuple)",
               1_000_000, 20_000, _root_child("rntuple"), PLUGINS / "zmumu.py", "zmumu", _ZMUMU),
        Layout("smallbasket", "Events", "ttree", "ROOT",
               "ROOT Snapshot, 32 KiB baskets, 200k-entry clusters (NanoAOD-like events)",
               1_000_000, 20_000, _root_child("smallbasket"), PLUGINS / "dijet_btag.py",
               "dijet_btag", ("nJet", "Jet_pt", "Jet_eta", "Jet_btagDeepFlavB")),
        Layout("tau1n", "events", "ttree", "uproot (hepstream.tools.generate)",
               "hepstream's Tau1N-data sample, 10k-entry baskets and clusters",
               1_000_000, 20_000, write_tau1n, BENCH_DIR.parent / "examples" / "tau1n.py", "tau1n",
               ("run", "event", "ebeam", "thrust", "missing_pt", "ntrk", "trk_px", "trk_py",
                "trk_pz", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu")),
    )
}  # fmt: skip


def answer(name: str, paths: list[str]):
    """The independent uproot + awkward answer of layout ``name``'s plugin on ``paths``."""
    from bench.answers import ANSWERS

    layout = LAYOUTS[name]
    return ANSWERS[layout.selection](paths, layout.tree)


def generate(name: str, path: Path, n_events: int, seed: int) -> Path:
    """Write layout ``name`` to ``path`` (atomically: temp name beside it, then rename)."""
    layout = LAYOUTS[name]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.root", dir=path.parent)
    os.close(fd)
    try:
        Path(tmp).unlink()  # the writers create the file themselves
        layout.write(Path(tmp), n_events, seed)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
    path.chmod(0o644)  # the xrootd daemon's user reads staged links to it
    return path


def ensure(name: str, n_events: int, seed: int, cache: Path | None = None) -> Path:
    """The cached file of layout ``name``, generated only if it is not there yet."""
    from bench.settings import data_dir

    layout = LAYOUTS[name]
    path = Path(cache or data_dir()) / "layouts" / layout.file_name(n_events, seed)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # one generator at a time per cache (two bench sessions must not write the same file);
    # under the lock, temp files of this name are leftovers of a killed writer
    with open(path.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            for stale in path.parent.glob(f".*{path.name}.*"):
                stale.unlink(missing_ok=True)
            generate(name, path, n_events, seed)
    return path


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write one ROOT layout of the bench matrix.")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write NanoAOD-like events with ROOT (child process)")
    write.add_argument("format", choices=("ttree", "rntuple", "smallbasket"))
    write.add_argument("path", type=Path)
    write.add_argument("n_events", type=int)
    write.add_argument("seed", type=int)
    gen = sub.add_parser("generate", help="generate any layout, e.g. for a look at it")
    gen.add_argument("layout", choices=sorted(LAYOUTS))
    gen.add_argument("path", type=Path)
    gen.add_argument("n_events", type=int)
    gen.add_argument("seed", type=int)
    args = parser.parse_args(argv)
    if args.command == "write":
        _root_snapshot(args.path, args.n_events, args.seed, args.format)
    else:
        print(generate(args.layout, args.path, args.n_events, args.seed))


if __name__ == "__main__":
    _main()
