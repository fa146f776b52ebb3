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


@numba.njit(cache=True, nogil=True)
def add_regular_index(
    x: np.ndarray, lower: float, delta: float, bins: int, offset: int, extent: int,
    stride: int, flat: np.ndarray, keep: np.ndarray,
) -> None:  # fmt: skip
    """``flat += stride * (bin of x)`` on a regular axis, as boost-histogram computes it
    (``z = (x - lower) / delta``, bin ``int(z * bins)``, NaN above); ``keep`` False where
    the bin is a flow bin the axis does not have. ``offset`` is 1 with an underflow bin,
    ``extent`` the bins with flow."""
    for i in range(len(x)):
        z = (x[i] - lower) / delta
        # z < 1 is False for NaN: overflow, as boost puts it
        b = offset + ((int(z * bins) if z >= 0.0 else -1) if z < 1.0 else bins)
        if b < 0 or b >= extent:
            keep[i] = False
            b = 0
        flat[i] += b * stride


@numba.njit(cache=True, nogil=True)
def add_variable_index(
    x: np.ndarray, edges: np.ndarray, offset: int, extent: int, stride: int,
    flat: np.ndarray, keep: np.ndarray,
) -> None:  # fmt: skip
    """As :func:`add_regular_index` for a variable axis (boost: ``upper_bound - 1``)."""
    for i in range(len(x)):
        b = bin_index(edges, x[i]) - 1 + offset
        if b < 0 or b >= extent:
            keep[i] = False
            b = 0
        flat[i] += b * stride
