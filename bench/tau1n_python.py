"""The tau1n selection in plain Python: no numba, no numpy in the loop.

Same cuts, same order and the same float64 comparisons as ``examples/tau1n.py``, written
the way that kernel is (tracks found through offsets), so the two differ only in who runs
the loop. ``select_python`` is what a plain-Python plugin's ``select()`` costs: it starts
from the awkward arrays the job hands over, like the numba plugin does.
"""

from __future__ import annotations

from typing import Any

import hepstream

THRUST_MIN = 0.85
MISSING_PT_MIN = 0.3
LEAD_P_MAX = 0.8
LEPTON_ID = 0.9

FLAT = ("ntrk", "thrust", "missing_pt", "ebeam")
TRACKS = ("trk_px", "trk_py", "trk_pz", "trk_p", "trk_charge", "trk_pid_e", "trk_pid_mu")


def to_python(events: Any) -> dict[str, list]:
    """The branches as Python lists (numpy's ``tolist``, the fastest way there): flat ones
    whole, track ones as one content list each plus the shared ``offsets``."""
    columns = {name: hepstream.flat(events, name).tolist() for name in FLAT}
    offsets, _ = hepstream.jagged(events, "trk_p")
    columns["offsets"] = offsets.tolist()
    for name in TRACKS:
        columns[name] = hepstream.jagged(events, name)[1].tolist()
    return columns


def tau1n_mask_python(columns: dict[str, list]) -> list[bool]:
    """One bool per event: the 1-prong tau-pair candidates, from ``to_python`` lists."""
    ntrk, thrust, missing_pt, ebeam = (columns[k] for k in FLAT)
    offsets = columns["offsets"]
    px, py, pz, p, charge, pid_e, pid_mu = (columns[k] for k in TRACKS)
    keep = []
    for i in range(len(ntrk)):
        n = ntrk[i]
        if not ((n == 2 or n == 4) and thrust[i] > THRUST_MIN and missing_pt[i] > MISSING_PT_MIN):
            keep.append(False)
            continue
        first = offsets[i]
        total_charge = 0
        lead = first
        for j in range(first, first + n):
            total_charge += charge[j]
            if p[j] > p[lead]:
                lead = j
        if total_charge != 0 or p[lead] > LEAD_P_MAX * ebeam[i]:
            keep.append(False)
            continue
        ax, ay, az = px[lead], py[lead], pz[lead]
        same = 0
        for j in range(first, first + n):
            if px[j] * ax + py[j] * ay + pz[j] * az > 0.0:
                same += 1
        if not (same == 1 or same == n - 1):
            keep.append(False)
            continue
        if n == 2 and (
            (pid_e[first] > LEPTON_ID and pid_e[first + 1] > LEPTON_ID)
            or (pid_mu[first] > LEPTON_ID and pid_mu[first + 1] > LEPTON_ID)
        ):  # an e+e- or mu+mu- pair
            keep.append(False)
            continue
        keep.append(True)
    return keep


def select_python(events: Any) -> list[bool]:
    """A plain-Python plugin's ``select()``: the job's arrays to lists, then the loop."""
    return tau1n_mask_python(to_python(events))
