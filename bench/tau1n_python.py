"""The tau1n selection as plain Python loops over lists: the no-numba, no-numpy baseline.

Same cuts, same order and the same float64 comparisons as ``examples/tau1n.py``; the
kernel benchmark compares the numba kernel with this and with ``examples/tau1n_awkward.py``.
"""

from __future__ import annotations

from typing import Any

THRUST_MIN = 0.85
MISSING_PT_MIN = 0.3
LEAD_P_MAX = 0.8
LEPTON_ID = 0.9

#: Branches the cuts read, in the order ``tau1n_mask_python`` takes them.
FIELDS = (
    "ntrk", "thrust", "missing_pt", "ebeam", "trk_px", "trk_py", "trk_pz", "trk_p",
    "trk_charge", "trk_pid_e", "trk_pid_mu",
)  # fmt: skip


def to_python(events: Any) -> dict[str, list]:
    """Columns of an awkward record array as Python lists (floats widen to float64 exactly)."""
    import awkward as ak

    return {name: ak.to_list(events[name]) for name in FIELDS}


def tau1n_mask_python(columns: dict[str, list]) -> list[bool]:
    """One bool per event: the 1-prong tau-pair candidates."""
    ntrk, thrust, missing_pt, ebeam = (columns[k] for k in FIELDS[:4])
    px, py, pz, p, charge, pid_e, pid_mu = (columns[k] for k in FIELDS[4:])
    keep = []
    for i in range(len(ntrk)):
        n = ntrk[i]
        if not ((n == 2 or n == 4) and thrust[i] > THRUST_MIN and missing_pt[i] > MISSING_PT_MIN):
            keep.append(False)
            continue
        tracks_p = p[i]
        total_charge = 0
        lead = 0
        for j in range(n):
            total_charge += charge[i][j]
            if tracks_p[j] > tracks_p[lead]:
                lead = j
        if total_charge != 0 or tracks_p[lead] > LEAD_P_MAX * ebeam[i]:
            keep.append(False)
            continue
        x, y, z = px[i], py[i], pz[i]
        ax, ay, az = x[lead], y[lead], z[lead]
        same = 0
        for j in range(n):
            if x[j] * ax + y[j] * ay + z[j] * az > 0.0:
                same += 1
        if not (same == 1 or same == n - 1):
            keep.append(False)
            continue
        if n == 2:  # veto e+e- and mu+mu- pairs
            e, mu = pid_e[i], pid_mu[i]
            if (e[0] > LEPTON_ID and e[1] > LEPTON_ID) or (mu[0] > LEPTON_ID and mu[1] > LEPTON_ID):
                keep.append(False)
                continue
        keep.append(True)
    return keep
