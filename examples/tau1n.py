"""Reference plugin: 1-prong tau-pair selection (1-1 and 1-3 topologies).

Cuts run in one numba kernel, cheapest first, so most background leaves after a
couple of integer and float comparisons: track multiplicity, thrust and missing
transverse momentum; only survivors loop over their tracks (charge, momentum,
hemisphere topology, Bhabha / mu-pair veto). Branches reach the kernel as plain numpy
arrays (``hepstream.flat``, ``hepstream.jagged``), so a call costs microseconds.
"""

import numba
import numpy as np

import hepstream

THRUST_MIN = 0.85  # tau pairs are back to back
MISSING_PT_MIN = 0.3  # GeV: neutrinos carry momentum away
LEAD_P_MAX = 0.8  # fraction of the beam energy: rejects Bhabha and mu pairs
LEPTON_ID = 0.9  # likelihood above which a track counts as an electron or muon


@numba.njit(cache=True, nogil=True)
def _cheap(ntrk, thrust, missing_pt):
    """Preselection on flat branches only: multiplicity, shape, missing momentum.

    ``&`` rather than ``and``: the loop has no branches, so it vectorizes.
    """
    keep = np.empty(len(ntrk), np.bool_)
    for i in range(len(ntrk)):
        n = ntrk[i]
        keep[i] = (
            ((n == 2) | (n == 4)) & (thrust[i] > THRUST_MIN) & (missing_pt[i] > MISSING_PT_MIN)
        )
    return keep


@numba.njit(inline="always")
def _is_tau1n(i, n, ebeam, offsets, px, py, pz, p, charge, pid_e, pid_mu):
    """Track-level cuts of event ``i`` with ``n`` tracks. Most candidates pass, so every
    cut is evaluated without early exits: no mispredicted branches per track."""
    first = offsets[i]
    total_charge = 0
    lead = first
    for j in range(first, first + n):
        total_charge += charge[j]
        lead = j if p[j] > p[lead] else lead
    # hemisphere topology around the leading track: 1 vs n-1 tracks
    same = 0
    for j in range(first, first + n):
        same += px[j] * px[lead] + py[j] * py[lead] + pz[j] * pz[lead] > 0.0
    ok = (total_charge == 0) & (p[lead] <= LEAD_P_MAX * ebeam[i]) & ((same == 1) | (same == n - 1))
    if n == 2:  # veto e+e- and mu+mu- pairs
        ee = (pid_e[first] > LEPTON_ID) & (pid_e[first + 1] > LEPTON_ID)
        mm = (pid_mu[first] > LEPTON_ID) & (pid_mu[first + 1] > LEPTON_ID)
        ok = ok & ~(ee | mm)
    return ok


@numba.njit(cache=True, nogil=True)
def _tau1n(ntrk, thrust, missing_pt, ebeam, offsets, px, py, pz, p, charge, pid_e, pid_mu):
    keep = _cheap(ntrk, thrust, missing_pt)
    for i in range(len(keep)):
        if not keep[i]:
            continue
        # 2 or 4 tracks: each call below has a constant trip count, unrolled by the compiler
        if ntrk[i] == 2:
            keep[i] = _is_tau1n(i, 2, ebeam, offsets, px, py, pz, p, charge, pid_e, pid_mu)
        else:
            keep[i] = _is_tau1n(i, 4, ebeam, offsets, px, py, pz, p, charge, pid_e, pid_mu)
    return keep


class Tau1N(hepstream.Selection):
    """Keep 1-prong tau-pair candidates; write a compact ntuple of them."""

    tree = "events"
    branches = [
        "run", "event", "ebeam", "thrust", "missing_pt", "ntrk",
        "trk_px", "trk_py", "trk_pz", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu",
    ]  # fmt: skip
    preselect = ["ntrk", "thrust", "missing_pt"]

    def preselect_mask(self, events):
        f = hepstream.flat
        return _cheap(f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"))

    def select(self, events):
        f, j = hepstream.flat, hepstream.jagged
        offsets, p = j(events, "trk_p")
        return _tau1n(
            f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"), f(events, "ebeam"),
            offsets, j(events, "trk_px")[1], j(events, "trk_py")[1], j(events, "trk_pz")[1], p,
            j(events, "trk_charge")[1], j(events, "trk_pid_e")[1], j(events, "trk_pid_mu")[1],
        )  # fmt: skip

    def output(self, events):
        return {
            "run": events.run,
            "event": events.event,
            "thrust": events.thrust,
            "missing_pt": events.missing_pt,
            "trk_p": events.trk_p,
            "trk_charge": events.trk_charge,
            "trk_pid_e": events.trk_pid_e,
            "trk_pid_mu": events.trk_pid_mu,
        }
