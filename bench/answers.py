"""Independent answers of the layout plugins: plain uproot + awkward, no hepstream code.

Each answer reads the files with ``uproot.iterate`` and applies the plugin's cuts with
vectorized awkward/numpy operations (cut values written out again here on purpose, not
imported from the plugin), then :func:`check_output` compares a job's output file with it:
the number of selected events exactly, every column's values (floats to 1e-9 relative).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import numpy as np

#: Events per uproot.iterate step of an answer: bounded memory on the 3M-event files.
STEP = 200_000


@dataclass
class Answer:
    """What the plugin must produce: events read, events kept, and the kept columns."""

    events: int = 0
    selected: int = 0
    columns: dict[str, list[Any]] = field(default_factory=dict)

    def add(self, n_events: int, kept: dict[str, Any]) -> None:
        self.events += n_events
        for name, values in kept.items():
            self.columns.setdefault(name, []).append(values)
        self.selected += len(next(iter(kept.values()))) if kept else 0

    def column(self, name: str) -> ak.Array:
        return ak.concatenate(self.columns[name]) if self.columns.get(name) else ak.Array([])


def _iterate(paths: list[str], tree: str, branches: list[str]) -> Iterator[ak.Array]:
    import uproot

    for path in paths:
        yield from uproot.iterate(f"{path}:{tree}", branches, step_size=STEP, library="ak")


def _np(array: Any) -> np.ndarray:
    return ak.to_numpy(array).astype(np.float64)


def mll_leading_pair(muons: ak.Array) -> np.ndarray:
    """float64 invariant mass of the first two muons of each event (events with >= 2)."""

    def pair(name: str) -> list[np.ndarray]:
        return [_np(muons[name][:, k]) for k in (0, 1)]

    pt, eta, phi, mass = (pair(f"Muon_{n}") for n in ("pt", "eta", "phi", "mass"))
    px = pt[0] * np.cos(phi[0]) + pt[1] * np.cos(phi[1])
    py = pt[0] * np.sin(phi[0]) + pt[1] * np.sin(phi[1])
    pz = pt[0] * np.sinh(eta[0]) + pt[1] * np.sinh(eta[1])
    energy = [np.sqrt((pt[k] * np.cosh(eta[k])) ** 2 + mass[k] ** 2) for k in (0, 1)]
    m2 = (energy[0] + energy[1]) ** 2 - px**2 - py**2 - pz**2
    return np.sqrt(np.maximum(m2, 0.0))


def zmumu(paths: list[str], tree: str = "Events") -> Answer:
    """Z -> mu mu: two leading muons 25/15 GeV, |eta| < 2.4, opposite charge, 70-110 GeV, MET < 60."""
    branches = ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "Muon_mass", "MET_pt"]
    answer = Answer()
    for events in _iterate(paths, tree, branches):
        two = events[(ak.num(events.Muon_pt) >= 2) & (_np(events.MET_pt) < 60.0)]
        pt0, pt1 = _np(two.Muon_pt[:, 0]), _np(two.Muon_pt[:, 1])
        eta0, eta1 = _np(two.Muon_eta[:, 0]), _np(two.Muon_eta[:, 1])
        q = ak.to_numpy(two.Muon_charge[:, 0] * two.Muon_charge[:, 1])
        mll = mll_leading_pair(two)
        keep = (pt0 > 25.0) & (pt1 > 15.0) & (np.abs(eta0) < 2.4) & (np.abs(eta1) < 2.4)
        keep &= (q < 0) & (mll > 70.0) & (mll < 110.0)
        kept = two[keep]
        answer.add(len(events), {
            "mll": mll[keep], "MET_pt": kept.MET_pt, "Muon_pt": kept.Muon_pt,
            "Muon_eta": kept.Muon_eta, "Muon_charge": kept.Muon_charge,
        })  # fmt: skip
    return answer


def dijet_btag(paths: list[str], tree: str = "Events") -> Answer:
    """HT of central jets (pt > 30, |eta| < 2.4) above 200 GeV and one with b-tag > 0.7."""
    answer = Answer()
    for events in _iterate(paths, tree, ["Jet_pt", "Jet_eta", "Jet_btagDeepFlavB"]):
        pt = ak.values_astype(events.Jet_pt, np.float64)
        good = (pt > 30.0) & (abs(ak.values_astype(events.Jet_eta, np.float64)) < 2.4)
        ht = ak.to_numpy(ak.sum(pt[good], axis=1))
        tagged = ak.to_numpy(ak.any(events.Jet_btagDeepFlavB[good] > 0.7, axis=1))
        keep = (ht > 200.0) & tagged
        kept = events[keep]
        answer.add(len(events), {"HT": ht[keep], "Jet_pt": kept.Jet_pt,
                                 "Jet_btagDeepFlavB": kept.Jet_btagDeepFlavB})  # fmt: skip
    return answer


def bigbasket(paths: list[str], tree: str = "events") -> Answer:
    """x < 0.5, y**2 + z**2 < 0.5 and the summed hit_e above 1.5."""
    answer = Answer()
    for events in _iterate(paths, tree, ["x", "y", "z", "hit_e"]):
        x, y, z = (ak.to_numpy(events[n]) for n in ("x", "y", "z"))
        keep = (x < 0.5) & (y * y + z * z < 0.5) & (ak.to_numpy(ak.sum(events.hit_e, axis=1)) > 1.5)
        kept = events[keep]
        answer.add(len(events), {"x": kept.x, "y": kept.y, "hit_e": kept.hit_e})
    return answer


def tau1n(paths: list[str], tree: str = "events") -> Answer:
    """The tau1n cuts as vectorized awkward (``examples/tau1n_awkward.tau1n_mask``)."""
    import importlib.util
    from pathlib import Path

    where = Path(__file__).resolve().parent.parent / "examples" / "tau1n_awkward.py"
    spec = importlib.util.spec_from_file_location("bench_tau1n_awkward", where)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    branches = ["run", "event", "ebeam", "thrust", "missing_pt", "ntrk", "trk_px", "trk_py",
                "trk_pz", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu"]  # fmt: skip
    answer = Answer()
    for events in _iterate(paths, tree, branches):
        kept = events[module.tau1n_mask(events)]
        answer.add(len(events), {"event": kept.event, "thrust": kept.thrust,
                                 "trk_p": kept.trk_p})  # fmt: skip
    return answer


ANSWERS: dict[str, Callable[..., Answer]] = {
    "zmumu": zmumu, "dijet_btag": dijet_btag, "bigbasket": bigbasket, "tau1n": tau1n,
}  # fmt: skip


def compare(answer: Answer, got: dict[str, Any], selected: int) -> list[str]:
    """Differences between ``answer`` and a job's selected count and output columns."""
    problems = []
    if selected != answer.selected:
        problems.append(f"selected {selected:,} events, the awkward answer {answer.selected:,}")
    for name in answer.columns:
        if name not in got:
            problems.append(f"output has no column {name!r}")
            continue
        want, have = answer.column(name), ak.Array(got[name])
        if len(want) != len(have):
            problems.append(f"{name}: {len(have):,} entries, expected {len(want):,}")
            continue
        if want.ndim > 1:
            if not ak.all(ak.num(want, axis=1) == ak.num(have, axis=1)):
                problems.append(f"{name}: list lengths differ")
                continue
            want, have = ak.flatten(want), ak.flatten(have)
        w, h = ak.to_numpy(want).astype(np.float64), ak.to_numpy(have).astype(np.float64)
        if not np.allclose(h, w, rtol=1e-9, atol=0.0):
            bad = int(np.sum(~np.isclose(h, w, rtol=1e-9, atol=0.0)))
            problems.append(f"{name}: {bad:,} values differ")
    return problems


def check_output(answer: Answer, output: str, tree: str, selected: int) -> list[str]:
    """Compare a job's output ROOT file (tree ``tree``) with ``answer``; [] when they agree."""
    import uproot

    with uproot.open(output) as file:
        if tree not in file:  # no event passed: the writer may leave the tree out
            return compare(answer, {n: [] for n in answer.columns}, selected)
        got = file[tree].arrays(list(answer.columns), library="ak")
        return compare(answer, {n: got[n] for n in answer.columns}, selected)
