"""The tau1n selection written with vectorized awkward operations, no numba.

Same cuts as ``tau1n.py``; used by the tests as an independent computation and by
the benchmarks as the vectorized baseline the numba kernel is compared with.
"""

import awkward as ak
import numpy as np

import hepstream

THRUST_MIN = 0.85
MISSING_PT_MIN = 0.3
LEAD_P_MAX = 0.8
LEPTON_ID = 0.9


def tau1n_mask(events) -> np.ndarray:
    """Boolean mask of 1-prong tau-pair candidates (float64 comparisons, like numba's)."""
    f64 = np.float64
    n = ak.to_numpy(events.ntrk)
    cheap = (
        ((n == 2) | (n == 4))
        & (ak.to_numpy(events.thrust).astype(f64) > THRUST_MIN)
        & (ak.to_numpy(events.missing_pt).astype(f64) > MISSING_PT_MIN)
    )
    p = events.trk_p
    lead = ak.argmax(p, axis=1, keepdims=True)
    lead_p = ak.to_numpy(ak.fill_none(ak.firsts(p[lead]), 0.0)).astype(f64)
    charge = ak.to_numpy(ak.sum(events.trk_charge, axis=1))
    ebeam = ak.to_numpy(events.ebeam).astype(f64)
    ax, ay, az = (
        ak.fill_none(ak.firsts(events[name][lead]), 0.0) for name in ("trk_px", "trk_py", "trk_pz")
    )
    dot = events.trk_px * ax + events.trk_py * ay + events.trk_pz * az
    same = ak.to_numpy(ak.sum(dot > 0.0, axis=1))
    topology = (same == 1) | (same == n - 1)
    two = n == 2
    ee = two & ak.to_numpy(ak.all(events.trk_pid_e > LEPTON_ID, axis=1))
    mm = two & ak.to_numpy(ak.all(events.trk_pid_mu > LEPTON_ID, axis=1))
    return cheap & (charge == 0) & (lead_p <= LEAD_P_MAX * ebeam) & topology & ~ee & ~mm


class Tau1NAwkward(hepstream.Selection):
    """tau1n with awkward array programming instead of a numba kernel."""

    tree = "events"
    branches = [
        "run", "event", "ebeam", "thrust", "missing_pt", "ntrk",
        "trk_px", "trk_py", "trk_pz", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu",
    ]  # fmt: skip

    def select(self, events):
        return tau1n_mask(events)
