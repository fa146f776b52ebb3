"""Z -> mu mu on the NanoAOD-like layouts (TTree ``Events`` or the RNTuple ``Events``).

Seven branches: the two leading muons (pt-ordered, as NanoAOD stores them) must be in the
tracker, opposite in charge, hard enough and make a dimuon mass near the Z; low missing
transverse momentum. The mass is computed in float64 from the float32 inputs.
"""

import math

import numba
import numpy as np

import hepstream

PT_LEAD, PT_SUB, ETA_MAX = 25.0, 15.0, 2.4  # GeV, GeV, |eta|
MASS_LO, MASS_HI = 70.0, 110.0  # GeV, around the Z
MET_MAX = 60.0  # GeV


@numba.njit(cache=True, nogil=True)
def _cheap(n_muon, met):
    keep = np.empty(len(n_muon), np.bool_)
    for i in range(len(n_muon)):
        keep[i] = (n_muon[i] >= 2) & (met[i] < MET_MAX)
    return keep


@numba.njit(cache=True, nogil=True)
def _mll(a, b, pt, eta, phi, mass):
    """Invariant mass of muons ``a`` and ``b`` (indices into the flat content), in float64."""
    f = np.float64
    pta, etaa, phia, ma = f(pt[a]), f(eta[a]), f(phi[a]), f(mass[a])
    ptb, etab, phib, mb = f(pt[b]), f(eta[b]), f(phi[b]), f(mass[b])
    px = pta * math.cos(phia) + ptb * math.cos(phib)
    py = pta * math.sin(phia) + ptb * math.sin(phib)
    pz = pta * math.sinh(etaa) + ptb * math.sinh(etab)
    ea = math.sqrt((pta * math.cosh(etaa)) ** 2 + ma**2)
    eb = math.sqrt((ptb * math.cosh(etab)) ** 2 + mb**2)
    m2 = (ea + eb) ** 2 - px**2 - py**2 - pz**2
    return math.sqrt(max(m2, 0.0))


@numba.njit(cache=True, nogil=True)
def _zmumu(n_muon, met, offsets, pt, eta, phi, charge, mass):
    keep = _cheap(n_muon, met)
    for i in range(len(keep)):
        if not keep[i]:
            continue
        a, b = offsets[i], offsets[i] + 1
        keep[i] = (
            (np.float64(pt[a]) > PT_LEAD)
            & (np.float64(pt[b]) > PT_SUB)
            & (abs(np.float64(eta[a])) < ETA_MAX)
            & (abs(np.float64(eta[b])) < ETA_MAX)
            & (charge[a] * charge[b] < 0)
        )
        if keep[i]:
            m = _mll(a, b, pt, eta, phi, mass)
            keep[i] = (m > MASS_LO) & (m < MASS_HI)
    return keep


@numba.njit(cache=True, nogil=True)
def _masses(offsets, pt, eta, phi, mass):
    out = np.empty(len(offsets) - 1, np.float64)
    for i in range(len(out)):
        out[i] = _mll(offsets[i], offsets[i] + 1, pt, eta, phi, mass)
    return out


class ZMuMu(hepstream.Selection):
    """Keep Z -> mu mu candidates; write the dimuon mass and the muons."""

    tree = "Events"
    branches = ["nMuon", "Muon_pt", "Muon_eta", "Muon_phi", "Muon_charge", "Muon_mass", "MET_pt"]
    preselect = ["nMuon", "MET_pt"]

    def preselect_mask(self, events):
        f = hepstream.flat
        return _cheap(f(events, "nMuon"), f(events, "MET_pt"))

    def _kinematics(self, events):
        j = hepstream.jagged
        offsets, pt = j(events, "Muon_pt")
        return offsets, pt, j(events, "Muon_eta")[1], j(events, "Muon_phi")[1]

    def select(self, events):
        f, j = hepstream.flat, hepstream.jagged
        offsets, pt, eta, phi = self._kinematics(events)
        return _zmumu(
            f(events, "nMuon"), f(events, "MET_pt"), offsets, pt, eta, phi,
            j(events, "Muon_charge")[1], j(events, "Muon_mass")[1],
        )  # fmt: skip

    def output(self, events):
        offsets, pt, eta, phi = self._kinematics(events)
        mass = hepstream.jagged(events, "Muon_mass")[1]
        return {
            "mll": _masses(offsets, pt, eta, phi, mass),
            "MET_pt": events.MET_pt,
            "Muon_pt": events.Muon_pt,
            "Muon_eta": events.Muon_eta,
            "Muon_charge": events.Muon_charge,
        }
