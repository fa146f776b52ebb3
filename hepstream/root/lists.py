"""Compiled passes over a TTree basket's uncompressed payload: big-endian reads, byte swaps,
and lists of numbers unpacked with their entry offsets checked.

Lists (``float[n]``; ``std::vector<T>``, ``ROOT::RVec<T>`` with 10 bytes of byte count,
version and size before each entry's items) are unpacked by :func:`unpack_lists`: the entry
offsets checked and counted, the items copied without headers and byte-swapped in place,
with the GIL released. uproot builds a boolean mask as long as the basket and an index ten
times the number of entries; numpy's own checks, ``diff`` and ``astype`` cost a dozen calls
under the GIL per basket. The batch decoder of :mod:`hepstream.root.baskets` runs the same
passes inside its own compiled loop.

``tests/test_decode.py`` and ``tests/test_baskets.py`` compare with uproot's own arrays.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

from hepstream.root.native import Int, bytes_at

#: Bytes before a ``std::vector``'s or ``RVec``'s items in a basket: its byte count (with
#: ROOT's kByteCountMask bit), its class version, its size.
VECTOR_HEADER = 10


@numba.njit(cache=True, nogil=True)
def be32(data: npt.NDArray[np.uint8], at: Int) -> np.int64:
    """The big-endian int32 at byte ``at``."""
    value = (np.int64(data[at]) << 24) | (np.int64(data[at + 1]) << 16)
    value |= (np.int64(data[at + 2]) << 8) | np.int64(data[at + 3])
    return value - (np.int64(1) << 32) if value >= (np.int64(1) << 31) else value


@numba.njit(cache=True, nogil=True)
def be16(data: npt.NDArray[np.uint8], at: Int) -> np.int64:
    """The big-endian int16 at byte ``at``."""
    value = (np.int64(data[at]) << 8) | np.int64(data[at + 1])
    return value - 65536 if value >= 32768 else value


@numba.njit(cache=True, nogil=True)
def list_counts(
    data: npt.NDArray[np.uint8],
    border: Int,
    keylen: Int,
    nev: Int,
    lo: Int,
    hi: Int,
    header: Int,
    itemsize: Int,
    counts: npt.NDArray[np.int64],
) -> Int:
    """Items of entries ``[lo, hi)`` into ``counts``; their total, or -1 if the entry
    offsets are damaged (outside the entries, decreasing, shorter than the header, or not
    whole items) or disagree with a vector's own header (its byte count and size)."""
    table = border + 4
    total: Int = 0
    start: Int = be32(data, table + 4 * lo) - keylen
    for i in range(lo, hi):
        stop = border if i + 1 == nev else be32(data, table + 4 * (i + 1)) - keylen
        size = stop - start - header
        if start < 0 or stop > border or size < 0 or size % itemsize != 0:
            return -1
        if header == VECTOR_HEADER and (
            be32(data, start) & 0x3FFFFFFF != stop - start - 4
            or be32(data, start + 6) != size // itemsize
        ):
            return -1
        counts[i - lo] = size // itemsize
        total += size // itemsize
        start = stop
    return total


@numba.njit(cache=True, nogil=True)
def _list_items(
    data: npt.NDArray[np.uint8],
    border: Int,
    keylen: Int,
    nev: Int,
    lo: Int,
    hi: Int,
    header: Int,
    out: npt.NDArray[np.uint8],
) -> None:
    """The items of entries ``[lo, hi)`` without their headers, as stored, into ``out``."""
    table = border + 4
    pos = 0
    start: Int = be32(data, table + 4 * lo) - keylen
    for i in range(lo, hi):
        stop = border if i + 1 == nev else be32(data, table + 4 * (i + 1)) - keylen
        for k in range(start + header, stop):
            out[pos] = data[k]
            pos += 1
        start = stop


@numba.njit(cache=True, nogil=True)
def swap_into(
    src: npt.NDArray[np.uint8], dst_address: Int, n: Int, itemsize: Int, swap: bool
) -> None:
    """``n`` items of ``src`` (bytes) to ``dst_address``, each item's bytes reversed when
    ``swap``."""
    if itemsize == 1 or not swap:
        bytes_at(dst_address, n * itemsize)[:] = src[: n * itemsize]
    elif itemsize == 2:
        a = src[: 2 * n].view(np.uint16)
        b = bytes_at(dst_address, 2 * n).view(np.uint16)
        for i in range(n):
            x = a[i]
            b[i] = (x >> np.uint16(8)) | (x << np.uint16(8))
    elif itemsize == 4:
        a4 = src[: 4 * n].view(np.uint32)
        b4 = bytes_at(dst_address, 4 * n).view(np.uint32)
        for i in range(n):
            x = a4[i]
            b4[i] = (
                (x >> np.uint32(24))
                | ((x >> np.uint32(8)) & np.uint32(0xFF00))
                | ((x << np.uint32(8)) & np.uint32(0xFF0000))
                | (x << np.uint32(24))
            )
    else:
        a8 = src[: 8 * n].view(np.uint64)
        b8 = bytes_at(dst_address, 8 * n).view(np.uint64)
        for i in range(n):
            x = a8[i]
            y = (x >> np.uint64(56)) | (x << np.uint64(56))
            y |= ((x >> np.uint64(40)) & np.uint64(0xFF00)) | (
                (x << np.uint64(40)) & np.uint64(0xFF000000000000)
            )
            y |= ((x >> np.uint64(24)) & np.uint64(0xFF0000)) | (
                (x << np.uint64(24)) & np.uint64(0xFF0000000000)
            )
            y |= ((x >> np.uint64(8)) & np.uint64(0xFF000000)) | (
                (x << np.uint64(8)) & np.uint64(0xFF00000000)
            )
            b8[i] = y


def unpack_lists(
    data: npt.NDArray[np.uint8],
    border: int,
    keylen: int,
    nev: int,
    lo: int,
    hi: int,
    header: int,
    stored: np.dtype[np.generic],
) -> tuple[npt.NDArray[np.generic], npt.NDArray[np.int64]]:
    """Entries ``[lo, hi)`` of a basket of lists (``data``: its uncompressed payload, the
    entries' bytes up to ``border``, then an int32 and each entry's byte offset counted from
    the key's start, ``keylen`` before the payload): the items in native byte order, each
    entry's ``header`` bytes dropped (10 for ``std::vector`` and ``RVec``), and each entry's
    item count. Compiled passes, the GIL released; damaged offsets raise ValueError."""
    itemsize = stored.itemsize
    if len(data) < border + 4 * (nev + 2):
        raise ValueError("a basket has no entry offsets")
    counts = np.empty(hi - lo, np.int64)
    total = list_counts(data, border, keylen, nev, lo, hi, header, itemsize, counts)
    if total < 0:
        raise ValueError("a basket's entry offsets are damaged")
    if header == 0:  # ``float[n]``: the entries' items lie back to back, one pass
        first = be32(data, border + 4 + 4 * lo) - keylen
        items = data[first : first + total * itemsize].view(stored)
        return items.astype(stored.newbyteorder("=")), counts
    out = np.empty(total * itemsize, np.uint8)
    _list_items(data, border, keylen, nev, lo, hi, header, out)
    if itemsize > 1 and not stored.isnative:
        swap_into(out, out.__array_interface__["data"][0], total, itemsize, True)
    return out.view(stored.newbyteorder("=")), counts
