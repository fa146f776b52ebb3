"""TTree baskets of numbers and lists of numbers, decoded by hepstream instead of uproot.

Most analysis branches are one number per entry (``float``, ``int``, ``bool``, ...) or a
list of numbers per entry (``float[n]``, ``std::vector<float>``, ``ROOT::RVec<float>``).
uproot reads each basket through a model object, a cursor and two executors: about
0.3 ms of Python, under the GIL, per basket, which for a 13-branch job over 10k-entry
baskets costs as much as inflating them. Here a basket costs one ``struct`` unpack on the
reader's side; inflating (libdeflate), byte-swapping into the output and stripping vector
headers (:func:`hepstream.decode.unpack_lists`) run on the decompression threads with the
GIL released.

A basket on disk is a TKey (its header gives the stored and the uncompressed size and the
key's length), whose last 19 bytes are the TBasket's own fields (entries, ``fLast``), then
the payload, compressed in blocks of up to 16 MiB. Uncompressed, the payload is the entries'
bytes up to ``fLast - fKeylen`` and, when entries differ in size, their byte offsets.

Branches of any other kind (strings, objects, fixed-size arrays, baskets kept inside the
TTree's metadata) are left to uproot. :class:`BasketColumn` decides; ``tests/test_baskets.py``
checks the arrays against uproot's own on files ROOT and uproot wrote.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from hepstream.decode import decode_as_they_arrive, decompress_blocks, unpack_lists

#: fNbytes, key version, fObjlen, fDatime, fKeylen, fCycle: the start of every TKey.
_KEY = struct.Struct(">ihiIhh")
#: fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast (then one flag byte): the key's end.
_BASKET = struct.Struct(">Hiiii")
_BASKET_AT = _BASKET.size + 1  # bytes before the end of the key


@dataclass(frozen=True)
class BasketColumn:
    """How one branch's baskets decode: numbers (``header`` None) or lists of numbers."""

    name: str
    stored: np.dtype  # big-endian, as in the basket
    native: np.dtype
    #: Bytes before each list's items (10 for std::vector and RVec); None: not a list.
    header: int | None
    #: Entry at which each basket starts, and the total (uproot's ``entry_offsets``).
    #: Plain ints, not numpy arrays: the reader looks baskets up with ``bisect`` because a
    #: numpy call that lets go of the GIL (``searchsorted``) costs the reader thread a wait
    #: of up to the switch interval (5 ms) to get it back from the decompression threads.
    entry_offsets: tuple[int, ...]
    #: Each basket's byte range in the file (``fBasketSeek``, ``+ fBasketBytes``).
    seeks: tuple[int, ...]
    sizes: tuple[int, ...]

    @classmethod
    def of(cls, branch: Any) -> BasketColumn | None:
        """The decoder of ``branch``, or None when uproot should read it."""
        from uproot.interpretation.jagged import AsJagged
        from uproot.interpretation.numerical import AsDtype

        interp = branch.interpretation
        header: int | None = None
        if type(interp) is AsJagged and type(interp.content) is AsDtype:
            header, interp = interp.header_bytes, interp.content
        elif type(interp) is not AsDtype:
            return None
        stored, native = np.dtype(interp.from_dtype), np.dtype(interp.to_dtype)
        if stored.shape != () or native.shape != () or stored.kind not in "biuf":
            return None
        if native.kind != stored.kind or (stored.kind == "b" and header is not None):
            return None
        n = branch.num_baskets
        if len(branch.embedded_baskets or ()) or (n == 0 and branch.num_entries):
            return None  # baskets kept in the TTree's metadata: uproot's
        return cls(
            branch.name, stored, native, header,
            tuple(int(x) for x in branch.entry_offsets),
            tuple(int(x) for x in branch.member("fBasketSeek")[:n]),
            tuple(int(x) for x in branch.member("fBasketBytes")[:n]),
        )  # fmt: skip

    def baskets(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(basket, first entry, last entry + 1) of the baskets holding ``[start, stop)``."""
        edges = self.entry_offsets
        k = max(0, bisect.bisect_right(edges, start) - 1)
        out = []
        while k < len(edges) - 1 and edges[k] < stop:
            if edges[k + 1] > start:
                out.append((k, max(start, edges[k]), min(stop, edges[k + 1])))
            k += 1
        return out

    def range_of(self, basket: int) -> tuple[int, int]:
        seek = self.seeks[basket]
        return seek, seek + self.sizes[basket]


def _payload(raw: np.ndarray, chunk: Any) -> tuple[np.ndarray, int, int, int]:
    """One basket's uncompressed payload, its key length, border (``fLast - fKeylen``),
    and entries."""
    buf = memoryview(raw)  # type: ignore[arg-type]  # numpy arrays are buffers
    if len(buf) < _KEY.size:
        raise ValueError(f"basket of {len(buf)} bytes is shorter than its key")
    nbytes, _version, objlen, _datime, keylen, _cycle = _KEY.unpack_from(buf, 0)
    if not (_KEY.size + _BASKET_AT <= keylen <= nbytes == len(buf)) or objlen < 0:
        raise ValueError(f"basket key is damaged (fNbytes {nbytes}, fKeylen {keylen})")
    _, _, _, nev, last = _BASKET.unpack_from(buf, keylen - _BASKET_AT)
    border = last - keylen
    if not 0 <= border <= objlen or nev < 0:
        raise ValueError(f"basket header is damaged (fLast {last}, {nev} entries)")
    return decompress_blocks(buf[keylen:], objlen, chunk), keylen, border, nev


def decode_basket(column: BasketColumn, raw: np.ndarray, chunk: Any, lo: int, hi: int,
                  out: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Entries ``[lo, hi)`` (counted in the basket) of one basket's bytes ``raw``: values
    in native byte order, and for lists the item count of each entry. Numbers are written
    into ``out`` (``hi - lo`` long, their place in the chunk's array): the byte swap is
    their only copy; lists (``out`` None) are returned."""
    data, keylen, border, nev = _payload(raw, chunk)
    if hi > nev:
        raise ValueError(f"branch {column.name}: a basket holds {nev} entries, {hi} expected")
    itemsize = column.stored.itemsize
    if column.header is None:
        if border != nev * itemsize:
            raise ValueError(f"branch {column.name}: basket entries are not {itemsize} bytes")
        assert out is not None, "numbers are decoded into the chunk's array"
        out[...] = data[lo * itemsize : hi * itemsize].view(column.stored)
        return out, None
    try:  # lists
        return unpack_lists(data, border, keylen, nev, lo, hi, column.header, column.stored)
    except ValueError as err:
        raise ValueError(f"branch {column.name}: {err}") from None


def start_columns(columns: list[BasketColumn], source: Any, start: int, stop: int,
                  executor: Executor) -> Callable[[], dict[str, Any]]:  # fmt: skip
    """Start reading entries ``[start, stop)`` of ``columns``; the function that waits for
    them and gives them as awkward layouts, by branch name.

    The baskets' byte ranges are asked of ``source`` (any uproot source; hepstream's serves
    them from the read plan) now, branch by branch in basket order, the order the plan was
    made in; each basket is decoded on ``executor`` as soon as its bytes are there.
    """
    jobs: list[tuple[BasketColumn, int, int, np.ndarray | None]] = []
    ranges: list[tuple[int, int]] = []
    flats: dict[str, np.ndarray] = {}
    for column in columns:
        if column.header is None:
            flats[column.name] = np.empty(stop - start, column.native)
        for k, first, end in column.baskets(start, stop):
            b0 = column.entry_offsets[k]
            out = flats[column.name][first - start : end - start] if column.header is None else None
            ranges.append(column.range_of(k))
            jobs.append((column, first - b0, end - b0, out))

    def decode(i: int, chunk: Any) -> tuple[np.ndarray, np.ndarray | None]:
        column, lo, hi, out = jobs[i]
        return decode_basket(column, chunk.raw_data, chunk, lo, hi, out)

    arrivals = decode_as_they_arrive(source, ranges, executor, decode)

    def finish() -> dict[str, Any]:
        import awkward as ak

        decoded = arrivals.results()
        layouts: dict[str, Any] = {}
        for column in columns:
            if column.header is None:
                layouts[column.name] = ak.contents.NumpyArray(flats[column.name])
                continue
            mine = [d for (c, *_), d in zip(jobs, decoded, strict=True) if c is column]
            offsets = np.zeros(stop - start + 1, np.int64)
            if mine:
                np.cumsum(np.concatenate([counts for _, counts in mine]), out=offsets[1:])
                content = np.concatenate([values for values, _ in mine])
            else:
                content = np.empty(0, column.native)
            layouts[column.name] = ak.contents.ListOffsetArray(
                ak.index.Index64(offsets), ak.contents.NumpyArray(content)
            )
        return layouts

    return finish
