"""A tau1n-style analysis that ends in histograms and a cut flow, not only skimmed events.

    hepstream run examples/tau1n_hists.py data/tau1n_*.root -o out/tau1n.root
    hepstream hist show out/tau1n.root

What it shows of the plugin API (README, "Histograms and cut flows"):

- ``book()`` returns ``hist`` histograms by name; the job writes them as TH1/TH2 next to the
  selected events (``--histograms-only``: them alone) and ``hepstream collect`` merges a
  dataset's, bit for bit as one job over all inputs would.
- ``cuts`` names the track-level cuts; the numba kernel returns per event how many it passed
  in a row, and the job counts the cut flow from that (after the rows for all events read
  and the preselection on multiplicity, thrust and missing momentum, the first cut).
- ``fill()`` gets the selected events: the visible mass is computed and binned inside a numba
  kernel straight into ``bins()``; ``fill_all()`` gets every preselected event, before the
  track-level cuts.
"""

import hist
import numba
import numpy as np

import hepstream

THRUST_MIN = 0.85  # tau pairs are back to back
MISSING_PT_MIN = 0.3  # GeV: neutrinos carry momentum away
LEAD_P_MAX = 0.8  # fraction of the beam energy: rejects Bhabha and mu pairs
LEPTON_ID = 0.9  # likelihood above which a track counts as an electron or muon
PION_MASS = 0.13957  # GeV: tracks are taken as pions for the visible mass

CUTS = [
    "2 or 4 tracks, thrust, missing pt",  # the preselection: first, as the API asks
    "zero charge",
    "lead track < 0.8 Ebeam",
    "1-1 or 1-3 topology",
    "lepton-pair veto",
]


@numba.njit(cache=True, nogil=True)
def _cheap(ntrk, thrust, missing_pt):
    keep = np.empty(len(ntrk), np.bool_)
    for i in range(len(ntrk)):
        n = ntrk[i]
        keep[i] = (
            ((n == 2) | (n == 4)) & (thrust[i] > THRUST_MIN) & (missing_pt[i] > MISSING_PT_MIN)
        )
    return keep


@numba.njit(cache=True, nogil=True)
def _cuts_passed(ntrk, thrust, missing_pt, ebeam, offsets, px, py, pz, p, charge, pid_e, pid_mu):
    """Per event, how many of CUTS it passes in a row (len(CUTS): selected). The first is
    the preselection again: select() gets whole clusters, not only preselected events."""
    passed = _cheap(ntrk, thrust, missing_pt).astype(np.int8)
    for i in range(len(ntrk)):
        if passed[i] == 0:
            continue
        first, n = offsets[i], ntrk[i]
        total_charge, lead = 0, first
        for j in range(first, first + n):
            total_charge += charge[j]
            lead = j if p[j] > p[lead] else lead
        if total_charge != 0:
            continue
        passed[i] = 2
        if p[lead] > LEAD_P_MAX * ebeam[i]:
            continue
        passed[i] = 3
        same = 0  # tracks in the leading track's hemisphere: 1 vs n-1
        for j in range(first, first + n):
            same += px[j] * px[lead] + py[j] * py[lead] + pz[j] * pz[lead] > 0.0
        if same != 1 and same != n - 1:
            continue
        passed[i] = 4
        if n == 2:  # veto e+e- and mu+mu- pairs
            ee = (pid_e[first] > LEPTON_ID) & (pid_e[first + 1] > LEPTON_ID)
            mm = (pid_mu[first] > LEPTON_ID) & (pid_mu[first + 1] > LEPTON_ID)
            if ee or mm:
                continue
        passed[i] = 5
    return passed


@numba.njit(cache=True, nogil=True)
def _fill_mass(offsets, px, py, pz, edges, counts):
    """The visible mass of each event's tracks (as pions), binned into ``counts``."""
    for i in range(len(offsets) - 1):
        e = sx = sy = sz = 0.0
        for j in range(offsets[i], offsets[i + 1]):
            e += np.sqrt(px[j] ** 2 + py[j] ** 2 + pz[j] ** 2 + PION_MASS**2)
            sx, sy, sz = sx + px[j], sy + py[j], sz + pz[j]
        mass = np.sqrt(max(e * e - sx * sx - sy * sy - sz * sz, 0.0))
        counts[hepstream.bin_index(edges, mass)] += 1


class Tau1NHists(hepstream.Selection):
    """1-prong tau-pair candidates: visible mass, thrust and lead-track histograms."""

    tree = "events"
    branches = [
        "ebeam", "thrust", "missing_pt", "ntrk",
        "trk_px", "trk_py", "trk_pz", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu",
    ]  # fmt: skip
    preselect = ["ntrk", "thrust", "missing_pt"]
    cuts = CUTS
    run_branch = None  # no conditions

    def book(self):
        return {
            "mass": hist.Hist.new.Reg(40, 0.0, 4.0, name="mass", label="visible mass [GeV]")
            .Int64(),
            "thrust": hist.Hist.new.Reg(30, 0.85, 1.0, name="thrust", label="thrust").Int64(),
            "lead_p": hist.Hist.new.Var(
                [0.0, 0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8], name="lead_p",
                label="lead track p / Ebeam",
            ).Weight(),
        }  # fmt: skip

    def preselect_mask(self, events):
        f = hepstream.flat
        return _cheap(f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"))

    def select(self, events):
        f, j = hepstream.flat, hepstream.jagged
        offsets, px = j(events, "trk_px")
        return _cuts_passed(
            f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"), f(events, "ebeam"),
            offsets, px, j(events, "trk_py")[1],
            j(events, "trk_pz")[1], j(events, "trk_p")[1], j(events, "trk_charge")[1],
            j(events, "trk_pid_e")[1], j(events, "trk_pid_mu")[1],
        )  # fmt: skip

    def fill_all(self, events):  # the preselected events, before the track-level cuts
        self.hists["thrust"].fill(hepstream.flat(events, "thrust"))

    def fill(self, events):
        j = hepstream.jagged
        offsets, px = j(events, "trk_px")
        mass = self.hists["mass"]
        _fill_mass(offsets, px, j(events, "trk_py")[1], j(events, "trk_pz")[1],
                   mass.edges(), mass.bins())  # fmt: skip
        offsets, p = j(events, "trk_p")
        # each selected event has 2 or 4 tracks: no empty range for reduceat
        lead = np.maximum.reduceat(p[: offsets[-1]], offsets[:-1]) if len(events) else p[:0]
        # weighted by the event's missing momentum: a Weight histogram, merged exactly
        self.hists["lead_p"].fill(
            lead / hepstream.flat(events, "ebeam"), weight=hepstream.flat(events, "missing_pt")
        )

    def output(self, events):
        return {"thrust": events.thrust, "missing_pt": events.missing_pt, "ntrk": events.ntrk}
