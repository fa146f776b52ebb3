"""Sums of weights that do not depend on the order they are added in.

Floating-point addition is not associative: a histogram filled by two workers and merged,
or by a dataset's jobs and merged by ``collect``, would differ in its last bits from one job
over all inputs. Here every weight is placed, exactly, on a fixed-point grid (a multiple of
``2**-GRID``) and added as integers into :data:`LIMBS` 32-bit limbs per bin. Integer sums
are associative, so any split and any merge order give the same limbs, and the float shown
to the user is the correctly rounded value of that exact sum.

What the grid costs: weights are truncated at ``2**-128`` (about 3e-39; squared weights
too), and a weight of magnitude ``2**90`` or more is refused (``2**180`` when squares are
not kept). A fill adds three limbs per weight and per squared weight: ~10 ns.
"""

from __future__ import annotations

import numba
import numpy as np

#: 32-bit limbs per exact sum; limb ``i`` holds bits ``32 i`` to ``32 i + 31`` of the sum in
#: units of ``2**-GRID``; the last limb is signed and takes every carry.
LIMBS = 10
GRID = 128
#: Every value added is below ``2**MAX_EXPONENT`` (the highest limb a value reaches, limb
#: ``LIMBS - 1``, then still has room for every carry): weights below ``2**180``, and below
#: ``2**90`` where their squares are summed too.
MAX_EXPONENT = 180
_MASK = (1 << 32) - 1
#: Fills added before the limbs are normalized: each fill adds < 2**33 to a limb, so an
#: int64 limb has room for 2**30 of them.
_NORMALIZE_EVERY = 1 << 28


_FRACTION = (1 << 52) - 1


@numba.njit(cache=True, nogil=True, inline="always")
def _add(limbs: np.ndarray, row: int, bits: int) -> bool:
    """Add the float64 whose IEEE bits are ``bits``, truncated to the grid, to
    ``limbs[row]``; False if it is not finite or out of range. Reading the bits directly
    (not ``frexp``) halves the cost of a weighted fill."""
    exponent = (bits >> 52) & 0x7FF
    if exponent == 0x7FF:  # inf or NaN
        return False
    mant = bits & _FRACTION
    if exponent:
        mant |= 1 << 52
    else:  # subnormal
        exponent = 1
    if mant == 0:
        return True
    p = exponent - 1075 + GRID  # the grid position of mant's lowest bit
    if p + 53 > GRID + MAX_EXPONENT:
        return False
    if p < 0:
        mant = mant >> -p if -p < 63 else 0
        p = 0
    sign = -1 if bits < 0 else 1
    k, s = p // 32, p % 32
    lo = (mant & _MASK) << s  # < 2**63
    hi = (mant >> 32) << s  # < 2**53
    limbs[row, k] += sign * (lo & _MASK)
    limbs[row, k + 1] += sign * ((lo >> 32) + (hi & _MASK))
    limbs[row, k + 2] += sign * (hi >> 32)
    return True


@numba.njit(cache=True, nogil=True)
def normalize(limbs: np.ndarray) -> None:
    """Carry every limb but the last into ``[0, 2**32)``: one representation per sum."""
    for row in range(limbs.shape[0]):
        for i in range(limbs.shape[1] - 1):
            carry = limbs[row, i] >> 32  # arithmetic shift: floor, also for negative limbs
            limbs[row, i] -= carry << 32
            limbs[row, i + 1] += carry


@numba.njit(cache=True, nogil=True)
def fill_counts(index: np.ndarray, counts: np.ndarray) -> None:
    """One entry in ``counts[index[i]]`` per ``i`` (the flat, flow-included bin)."""
    for i in range(len(index)):
        counts[index[i]] += 1


@numba.njit(cache=True, nogil=True)
def fill_weights(
    index: np.ndarray,
    weights: np.ndarray,
    wcounts: np.ndarray,
    sumw: np.ndarray,
    sumw2: np.ndarray,
    squares: bool,
) -> int:
    """Add each weight (and its square, when ``squares``) to its bin's exact sums; the
    position of the first weight out of range, or -1."""
    bits = weights.view(np.int64)
    square = np.empty(1, np.float64)  # w * w, read back as its bits
    square_bits = square.view(np.int64)
    for i in range(len(index)):
        b = index[i]
        wcounts[b] += 1
        if not _add(sumw, b, bits[i]):
            return i
        if squares:
            square[0] = weights[i] * weights[i]
            if not _add(sumw2, b, square_bits[0]):
                return i
        if (i + 1) % _NORMALIZE_EVERY == 0:
            normalize(sumw)
            normalize(sumw2)
    normalize(sumw)
    normalize(sumw2)
    return -1


def zeros(bins: int) -> np.ndarray:
    """Exact sums for ``bins`` bins, all zero."""
    return np.zeros((bins, LIMBS), dtype=np.int64)


def add(into: np.ndarray, other: np.ndarray) -> None:
    """``into += other``, both exact sums of the same shape; exact and order-free."""
    into += other
    normalize(into)


def to_float(limbs: np.ndarray) -> np.ndarray:
    """The correctly rounded float64 of each exact sum.

    Each non-zero sum becomes one Python integer (its normalized low limbs read as bytes,
    the signed top limb shifted in) divided by ``2**GRID``: int / int is correctly rounded
    in Python. Empty bins cost nothing."""
    limbs = limbs.copy()
    normalize(limbs)
    out = np.zeros(len(limbs), dtype=np.float64)
    rows = np.flatnonzero(limbs.any(axis=1))
    width, shift, scale = 4 * (LIMBS - 1), 32 * (LIMBS - 1), 1 << GRID
    low = limbs[rows, :-1].astype("<u4").tobytes()  # every low limb is in [0, 2**32)
    for j, (row, top) in enumerate(zip(rows.tolist(), limbs[rows, -1].tolist(), strict=True)):
        value = int.from_bytes(low[j * width : (j + 1) * width], "little") + (top << shift)
        out[row] = value / scale
    return out
