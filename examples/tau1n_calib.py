"""tau1n.py with a per-run beam-energy calibration from the conditions database.

The analyst's whole part: list the record in ``conditions``, name the run branch, and
ask ``self.payload("beam")`` inside ``select``/``output``. The runner resolves the IOV of
each event's run in the job's global tag, splits chunks where the IOV changes, and calls
``select`` once per piece with that piece's payload. The ``beam`` payload is a ``.npz``
with one 0-d array ``ebeam_scale``: the measured beam energy over the nominal one.

    hepstream run examples/tau1n_calib.py data/*.root -o out.root \\
        --conditions http://conditions.example:8080 --global-tag beam-v1
"""

from pathlib import Path

import numpy as np

import hepstream

# The cuts and kernels are tau1n.py's, loaded the way jobs load plugins (own numba cache).
_tau1n = hepstream.load_plugin(Path(__file__).with_name("tau1n.py"))
_kernels = __import__("sys").modules[type(_tau1n).__module__]


class Tau1NCalib(type(_tau1n)):
    """Tau1N with the lead-track cut relative to the calibrated beam energy of each run."""

    conditions = ["beam"]
    run_branch = "run"

    def _ebeam(self, events):
        scale = self.payload("beam")["ebeam_scale"]
        return (hepstream.flat(events, "ebeam") * scale).astype(np.float32)

    def select(self, events):
        f, j = hepstream.flat, hepstream.jagged
        offsets, p = j(events, "trk_p")
        return _kernels._tau1n(
            f(events, "ntrk"), f(events, "thrust"), f(events, "missing_pt"), self._ebeam(events),
            offsets, j(events, "trk_px")[1], j(events, "trk_py")[1], j(events, "trk_pz")[1], p,
            j(events, "trk_charge")[1], j(events, "trk_pid_e")[1], j(events, "trk_pid_mu")[1],
        )  # fmt: skip

    def output(self, events):
        return {**super().output(events), "ebeam_cal": self._ebeam(events)}
