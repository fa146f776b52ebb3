"""A tau1n-style selection with a per-run beam-energy calibration from the conditions DB.

The analyst's whole part: list the record in ``conditions``, name the run branch, and
ask ``self.payload("beam")`` inside ``select``/``output``. The runner resolves the IOV of
each event's run in the job's global tag, splits chunks where the IOV changes, and calls
``select`` once per piece with that piece's payload. The ``beam`` payload is a ``.npz``
with one 0-d array ``ebeam_scale``: the measured beam energy over the nominal one.

    hepstream run examples/tau1n_calib.py data/*.root -o out.root \\
        --conditions http://conditions.example:8080 --global-tag beam-v1

The cuts are tau1n.py's event-level ones plus its lead-track cut, here relative to the
calibrated beam energy (the numba kernels take the payload's array as it is).
"""

import numba
import numpy as np

import hepstream

THRUST_MIN = 0.85
MISSING_PT_MIN = 0.3  # GeV
LEAD_P_MAX = 0.8  # fraction of the calibrated beam energy


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
def _select(ntrk, thrust, missing_pt, ebeam, scale, offsets, p, charge):
    keep = _cheap(ntrk, thrust, missing_pt)
    for i in range(len(keep)):
        if keep[i]:
            total, lead = 0, 0.0
            for j in range(offsets[i], offsets[i + 1]):
                total += charge[j]
                lead = max(lead, p[j])
            keep[i] = (total == 0) & (lead <= LEAD_P_MAX * ebeam[i] * scale)
    return keep


class Tau1NCalib(hepstream.Selection):
    """1-prong tau-pair candidates, lead track below 80 % of the calibrated beam energy."""

    tree = "events"
    branches = ["run", "event", "ebeam", "thrust", "missing_pt", "ntrk", "trk_p", "trk_charge"]
    preselect = ["ntrk", "thrust", "missing_pt"]
    conditions = ["beam"]  # records this selection needs
    run_branch = "run"  # where each event's run number is (no sub-run: sub-run 0)

    def preselect_mask(self, events):
        f = hepstream.flat
        return _cheap(f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"))

    def select(self, events):
        f, j = hepstream.flat, hepstream.jagged
        scale = self.payload("beam")["ebeam_scale"][()]  # valid for every event given here
        offsets, p = j(events, "trk_p")
        return _select(
            f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"), f(events, "ebeam"),
            scale, offsets, p, j(events, "trk_charge")[1],
        )  # fmt: skip

    def output(self, events):
        scale = self.payload("beam")["ebeam_scale"][()]
        return {
            "run": events.run,
            "event": events.event,
            "thrust": events.thrust,
            "ebeam_cal": (hepstream.flat(events, "ebeam") * scale).astype(np.float32),
            "trk_p": events.trk_p,
        }
