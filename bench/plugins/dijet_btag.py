"""A hadronic selection on the small-basket layout: jet HT and one b-tagged jet.

Jets with pt > 30 GeV and |eta| < 2.4 count; HT (their scalar pt sum, float64) must
exceed 200 GeV and one of them must pass the b-tag working point. Four branches.
"""

import numba
import numpy as np

import hepstream

JET_PT, JET_ETA = 30.0, 2.4  # GeV, |eta|
HT_MIN = 200.0  # GeV
BTAG_WP = 0.7


@numba.njit(cache=True, nogil=True)
def _ht(offsets, pt, eta):
    ht = np.zeros(len(offsets) - 1, np.float64)
    for i in range(len(ht)):
        for k in range(offsets[i], offsets[i + 1]):
            if (np.float64(pt[k]) > JET_PT) & (abs(np.float64(eta[k])) < JET_ETA):
                ht[i] += np.float64(pt[k])
    return ht


@numba.njit(cache=True, nogil=True)
def _keep(offsets, pt, eta, btag):
    ht = _ht(offsets, pt, eta)
    keep = np.empty(len(ht), np.bool_)
    for i in range(len(ht)):
        tagged = False
        for k in range(offsets[i], offsets[i + 1]):
            good = (np.float64(pt[k]) > JET_PT) & (abs(np.float64(eta[k])) < JET_ETA)
            tagged |= good & (np.float64(btag[k]) > BTAG_WP)
        keep[i] = (ht[i] > HT_MIN) & tagged
    return keep


class DijetBtag(hepstream.Selection):
    """Keep events with HT > 200 GeV and a b-tagged central jet; write HT and the jets."""

    tree = "Events"
    branches = ["nJet", "Jet_pt", "Jet_eta", "Jet_btagDeepFlavB"]

    def select(self, events):
        j = hepstream.jagged
        offsets, pt = j(events, "Jet_pt")
        return _keep(offsets, pt, j(events, "Jet_eta")[1], j(events, "Jet_btagDeepFlavB")[1])

    def output(self, events):
        offsets, pt = hepstream.jagged(events, "Jet_pt")
        return {
            "HT": _ht(offsets, pt, hepstream.jagged(events, "Jet_eta")[1]),
            "Jet_pt": events.Jet_pt,
            "Jet_btagDeepFlavB": events.Jet_btagDeepFlavB,
        }
