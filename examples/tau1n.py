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
    """Preselection on flat branches only: multiplicity, shape, missing momentum."""
    keep = np.zeros(len(ntrk), np.bool_)
    for i in range(len(ntrk)):
        n = ntrk[i]
        keep[i] = (n == 2 or n == 4) and thrust[i] > THRUST_MIN and missing_pt[i] > MISSING_PT_MIN
    return keep


@numba.njit(cache=True, nogil=True)
def _tau1n(ntrk, thrust, missing_pt, ebeam, offsets, px, py, pz, p, charge, pid_e, pid_mu):
    keep = _cheap(ntrk, thrust, missing_pt)
    for i in range(len(keep)):
        if not keep[i]:
            continue
        first, n = offsets[i], offsets[i + 1] - offsets[i]
        total_charge = 0
        lead = first
        for j in range(first, first + n):
            total_charge += charge[j]
            if p[j] > p[lead]:
                lead = j
        if total_charge != 0 or p[lead] > LEAD_P_MAX * ebeam[i]:
            keep[i] = False
            continue
        # hemisphere topology around the leading track: 1 vs n-1 tracks
        same = 0
        for j in range(first, first + n):
            if px[j] * px[lead] + py[j] * py[lead] + pz[j] * pz[lead] > 0.0:
                same += 1
        if not (same == 1 or same == n - 1):
            keep[i] = False
            continue
        if n == 2:  # veto e+e- and mu+mu- pairs
            ee = pid_e[first] > LEPTON_ID and pid_e[first + 1] > LEPTON_ID
            mm = pid_mu[first] > LEPTON_ID and pid_mu[first + 1] > LEPTON_ID
            if ee or mm:
                keep[i] = False
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
        return _cheap(f(events.ntrk), f(events.thrust), f(events.missing_pt))

    def select(self, events):
        f = hepstream.flat
        offsets, p = hepstream.jagged(events.trk_p)
        tracks = [hepstream.jagged(events[name])[1] for name in
                  ("trk_px", "trk_py", "trk_pz")]  # fmt: skip
        charge, pid_e, pid_mu = (
            hepstream.jagged(events[name])[1] for name in ("trk_charge", "trk_pid_e", "trk_pid_mu")
        )
        return _tau1n(
            f(events.ntrk), f(events.thrust), f(events.missing_pt), f(events.ebeam),
            offsets, *tracks, p, charge, pid_e, pid_mu,
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
