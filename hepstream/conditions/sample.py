"""A small conditions database for the demo, tests and benches: per-run beam energy.

One ``beam`` IOV per run, each an ``.npz`` with ``ebeam_scale`` (a 0-d float64), the
calibration ``examples/tau1n_calib.py`` reads.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hepstream.conditions.store import Store


def beam_scale(run: int) -> float:
    """A fixed, run-dependent calibration within +-0.4 % of nominal."""
    return 1.0 + 0.002 * ((run * 7919) % 5 - 2)


def build_beam_db(
    db: str | Path,
    runs: Iterable[int],
    global_tag: str = "beam-v1",
    lock: bool = True,
    payloads: str | Path | None = None,
) -> Store:
    """Create ``global_tag`` in ``db`` with one ``beam`` IOV per run in ``runs``."""
    store = Store(db, payloads, create=True)
    store.create(global_tag)
    with tempfile.TemporaryDirectory(prefix="hepstream-beam-") as tmp:
        for run in sorted(runs):
            path = Path(tmp) / f"beam_{run}.npz"
            np.savez(path, ebeam_scale=np.float64(beam_scale(run)))
            store.add(global_tag, "beam", path, (run, 0))
    if lock:
        store.lock(global_tag)
    return store
