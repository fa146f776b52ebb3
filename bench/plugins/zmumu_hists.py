"""Z -> mu mu (``zmumu.py``'s selection, imported) filling three histograms, for the fill-cost
bench of issue 26 (``bench/test_fill_cost.py``).

The histograms: the dimuon mass (1D, regular bins), the leading muon's pt against its eta
(2D, regular) and the sub-leading muon's pt (variable bins). ``FILL`` says how they are
filled; the bench writes one copy of this file per value (the constant replaced), so each
copy is a plain plugin that defines only the methods its way of filling needs:

    selected          fill(): ``Histogram.fill`` on numpy arrays of the selected events
    selected-weighted the same with a per-event weight (Weight storage: exact sums)
    all               fill_all(): every event read, before selection
    all-weighted      the same with weights
    numba-selected    inside select()'s kernel: ``bins()`` + ``hepstream.bin_index``
    numba-all         the same for every event
    selected-computed computes what "selected" fills, books and fills nothing
    all-computed      computes what "all" fills, books and fills nothing

Every event filled gets one entry in each histogram; a quantity an event lacks (no second
muon, say) is put below its axis (underflow), so "all" fills one entry per event read.
``fill_all`` sees the events that pass ``preselect_mask``; the copies that fill every event
therefore have no preselection, as an analyst's would. The "computed" copies split a
variant's cost into computing the values (the analysis's own work: the dimuon mass of every
event with two muons, for "all") and filling them.

Written as an analyst minding the job's speed would: the dimuon mass of the selected events
is computed once (fill() keeps it for output() of the same events; the numba path fills
with the mass its cut computed).
The kernels of the selection are ``zmumu.py``'s, imported (``bench`` is importable wherever
the bench runs): the same selection at the same cost (the smoke test checks both keep the
same events).
"""


import hist
import numba
import numpy as np

import hepstream
from bench.plugins.zmumu import (  # the selection itself: the same kernels, the same cost
    ETA_MAX,
    MASS_HI,
    MASS_LO,
    PT_LEAD,
    PT_SUB,
    _cheap,
    _masses,
    _mll,
    _zmumu,
)

FILL = "selected"
WEIGHTED = FILL.endswith("weighted")
EVERY = FILL in ("all", "all-weighted", "numba-all", "all-computed")
BOOKED = not FILL.endswith("computed")

#: Below every axis: what an event without that muon (or pair) is filled with.
MISSING = -10.0
#: ``hepstream.bin_index``: a numba function, called from the kernel below.
bin_index = hepstream.bin_index
SUB_PT_EDGES = [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0, 50.0, 60.0, 80.0,
                100.0, 150.0, 250.0]  # fmt: skip


# -- what the histograms are filled with ------------------------------------------------------


@numba.njit(cache=True, nogil=True, inline="always")
def _scale_factor(pt, eta):
    """A muon efficiency scale factor (0.95-1.0), the kind of weight an analysis applies."""
    return 0.96 + 0.03 * min(np.float64(pt), 100.0) / 100.0 - 0.01 * abs(np.float64(eta)) / 2.4


@numba.njit(cache=True, nogil=True, inline="always")
def _event(i, offsets, pt, eta, phi, mass):
    """Event ``i``'s dimuon mass, leading pt and eta, sub-leading pt and weight."""
    a, n = offsets[i], offsets[i + 1] - offsets[i]
    mll = pt1 = eta1 = pt2 = MISSING
    w = 1.0
    if n >= 1:
        pt1, eta1 = np.float64(pt[a]), np.float64(eta[a])
        w = _scale_factor(pt[a], eta[a])
    if n >= 2:
        pt2 = np.float64(pt[a + 1])
        mll = _mll(a, a + 1, pt, eta, phi, mass)
        w *= _scale_factor(pt[a + 1], eta[a + 1])
    return mll, pt1, eta1, pt2, w


@numba.njit(cache=True, nogil=True)
def _quantities(offsets, pt, eta, phi, mass):
    """Per event: dimuon mass, leading pt, leading eta, sub-leading pt, weight (arrays)."""
    n = len(offsets) - 1
    out = np.empty((5, n), np.float64)
    for i in range(n):
        out[0, i], out[1, i], out[2, i], out[3, i], out[4, i] = _event(
            i, offsets, pt, eta, phi, mass
        )
    return out


@numba.njit(cache=True, nogil=True)
def _select_and_fill(n_muon, met, offsets, pt, eta, phi, charge, mass, every,
                     h_mass, e_mass, h_lead, e_pt, e_eta, h_sub, e_sub):  # fmt: skip
    """``_zmumu``'s selection, and one entry per kept event (every event, with ``every``) in
    each histogram's ``bins()``: the numba path. The mass is computed once per event."""
    keep = _cheap(n_muon, met)
    for i in range(len(keep)):
        if not (every or keep[i]):
            continue
        a, n = offsets[i], n_muon[i]
        if keep[i]:
            b = a + 1
            keep[i] = (
                (np.float64(pt[a]) > PT_LEAD)
                & (np.float64(pt[b]) > PT_SUB)
                & (abs(np.float64(eta[a])) < ETA_MAX)
                & (abs(np.float64(eta[b])) < ETA_MAX)
                & (charge[a] * charge[b] < 0)
            )
        mll = MISSING
        if n >= 2 and (every or keep[i]):
            mll = _mll(a, a + 1, pt, eta, phi, mass)
        if keep[i]:
            keep[i] = (mll > MASS_LO) & (mll < MASS_HI)
        if not (every or keep[i]):
            continue
        pt1 = np.float64(pt[a]) if n >= 1 else MISSING
        eta1 = np.float64(eta[a]) if n >= 1 else MISSING
        pt2 = np.float64(pt[a + 1]) if n >= 2 else MISSING
        h_mass[bin_index(e_mass, mll)] += 1
        h_lead[bin_index(e_pt, pt1), bin_index(e_eta, eta1)] += 1
        h_sub[bin_index(e_sub, pt2)] += 1
    return keep


class ZMuMuHists(hepstream.Selection):
    """Keep Z -> mu mu candidates, write ``zmumu.py``'s columns, fill three histograms."""

    tree = "Events"
    branches = ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "Muon_mass", "MET_pt"]
    preselect = [] if EVERY else ["nMuon", "MET_pt"]

    def book(self):
        if not BOOKED:
            return {}

        def storage(h):
            return h.Weight() if WEIGHTED else h.Int64()

        return {
            "mll": storage(hist.Hist.new.Reg(60, 60.0, 120.0, name="mll", label="m_μμ [GeV]")),
            "lead": storage(
                hist.Hist.new.Reg(50, 0.0, 200.0, name="pt", label="leading μ pt [GeV]").Reg(
                    48, -2.4, 2.4, name="eta", label="leading μ η"
                )
            ),
            "sub_pt": storage(
                hist.Hist.new.Var(SUB_PT_EDGES, name="pt", label="sub-leading μ pt [GeV]")
            ),
        }

    def preselect_mask(self, events):
        f = hepstream.flat
        return _cheap(f(events, "nMuon"), f(events, "MET_pt"))

    def _kinematics(self, events):
        j = hepstream.jagged
        offsets, pt = j(events, "Muon_pt")
        return offsets, pt, j(events, "Muon_eta")[1], j(events, "Muon_phi")[1]

    def _fill(self, events):
        offsets, pt, eta, phi = self._kinematics(events)
        mll, pt1, eta1, pt2, w = _quantities(
            offsets, pt, eta, phi, hepstream.jagged(events, "Muon_mass")[1]
        )
        self._masses_of = (events, mll)  # output() of the same events writes this mass
        if not BOOKED:
            return
        weight = w if WEIGHTED else None
        self.hists["mll"].fill(mll, weight=weight)
        self.hists["lead"].fill(pt1, eta1, weight=weight)
        self.hists["sub_pt"].fill(pt2, weight=weight)

    if FILL.startswith("numba"):

        def select(self, events):
            f, j = hepstream.flat, hepstream.jagged
            offsets, pt, eta, phi = self._kinematics(events)
            h = self.hists
            return _select_and_fill(
                f(events, "nMuon"), f(events, "MET_pt"), offsets, pt, eta, phi,
                j(events, "Muon_charge")[1], j(events, "Muon_mass")[1], EVERY,
                h["mll"].bins(), h["mll"].edges(), h["lead"].bins(), h["lead"].edges(0),
                h["lead"].edges(1), h["sub_pt"].bins(), h["sub_pt"].edges(),
            )  # fmt: skip

    else:

        def select(self, events):
            f, j = hepstream.flat, hepstream.jagged
            offsets, pt, eta, phi = self._kinematics(events)
            return _zmumu(
                f(events, "nMuon"), f(events, "MET_pt"), offsets, pt, eta, phi,
                j(events, "Muon_charge")[1], j(events, "Muon_mass")[1],
            )  # fmt: skip

    if FILL in ("selected", "selected-weighted", "selected-computed"):

        def fill(self, events):
            self._fill(events)

    if FILL in ("all", "all-weighted", "all-computed"):

        def fill_all(self, events):
            self._fill(events)

    _masses_of = (None, None)

    def output(self, events):
        filled, mll = self._masses_of
        if filled is not events:
            offsets, pt, eta, phi = self._kinematics(events)
            mll = _masses(offsets, pt, eta, phi, hepstream.jagged(events, "Muon_mass")[1])
        self._masses_of = (None, None)
        return {
            "mll": mll,
            "MET_pt": events.MET_pt,
            "Muon_pt": events.Muon_pt,
            "Muon_eta": events.Muon_eta,
            "Muon_charge": events.Muon_charge,
        }
