"""What a plugin's numba kernel calls to fill :meth:`Histogram.bins` itself."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def bin_index(edges: np.ndarray, x: float) -> int:
    """The flow-included bin of ``x`` on an axis with these ``edges`` (and both flow bins):
    ``0`` below ``edges[0]``, ``len(edges)`` at or above ``edges[-1]`` or NaN, else
    ``1 + i`` for ``edges[i] <= x < edges[i + 1]``. Binary search: for any binning.

    In a kernel: ``counts[bin_index(edges, mass[i])] += 1`` with ``counts =
    self.hists["mass"].bins()`` and ``edges = self.hists["mass"].edges()``.
    """
    n = len(edges)
    if not x >= edges[0]:  # NaN goes above, as boost-histogram puts it in overflow
        return n if x != x else 0
    if x >= edges[n - 1]:
        return n
    lo, hi = 0, n - 1  # edges[lo] <= x < edges[hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if x >= edges[mid]:
            lo = mid
        else:
            hi = mid
    return lo + 1
