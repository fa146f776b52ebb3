"""Compiled gathers of selected entries (GIL released), for :func:`hepstream.plugin.take.take`.

numpy's fancy indexing and ``repeat`` hold the GIL, which the reader's decompression
threads need while the selection gathers what it kept.
"""

from __future__ import annotations

import numba
import numpy as np

#: Item types these kernels are compiled for (numba has no float16).
KINDS = frozenset(
    np.dtype(t) for t in ("?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8")
)


@numba.njit(cache=True, nogil=True)
def _gather(values: np.ndarray, index: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(index)):
        out[i] = values[index[i]]


@numba.njit(cache=True, nogil=True)
def _list_offsets(offsets: np.ndarray, index: np.ndarray, new: np.ndarray) -> None:
    new[0] = 0
    for i in range(len(index)):
        k = index[i]
        new[i + 1] = new[i] + (offsets[k + 1] - offsets[k])


@numba.njit(cache=True, nogil=True)
def _gather_items(
    offsets: np.ndarray, content: np.ndarray, index: np.ndarray, new: np.ndarray, out: np.ndarray
) -> None:
    for i in range(len(index)):
        start = offsets[index[i]]
        at = new[i]
        for j in range(new[i + 1] - at):
            out[at + j] = content[start + j]


def gather(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``values[index]``, in an array of its own (numpy's, not numba's: the writer keeps
    arrays that own their memory as they are)."""
    out = np.empty(len(index), values.dtype)
    _gather(values, index, out)
    return out


def gather_lists(
    offsets: np.ndarray, content: np.ndarray, index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Lists ``index`` of (``offsets``, ``content``), packed: new offsets (from 0), items."""
    new = np.empty(len(index) + 1, np.int64)
    _list_offsets(offsets, index, new)
    out = np.empty(int(new[-1]), content.dtype)
    _gather_items(offsets, content, index, new, out)
    return new, out
