"""TTree baskets of numbers and lists of numbers, decoded by hepstream instead of uproot.

Most analysis branches are one number per entry (``float``, ``int``, ``bool``, ...) or a
list of numbers per entry (``float[n]``, ``std::vector<float>``, ``ROOT::RVec<float>``).
uproot reads each basket through a model object, a cursor and two executors: about
0.3 ms of Python, under the GIL, per basket, which for a 13-branch job over 10k-entry
baskets costs as much as inflating them. Here a basket costs one ``struct`` unpack on the
reader's side; inflating (libdeflate), byte-swapping into the output and stripping vector
headers (:func:`hepstream.root.decode.unpack_lists`) run on the decompression threads with the
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

import numba
import numpy as np

from hepstream.root.decode import (
    MAX_BUFFER,
    _be16,
    _be32,
    _list_counts,
    _swap_into,
    check_claim,
    decode_as_they_arrive,
    decompress_blocks,
    unpack_lists,
)
from hepstream.root.native import bytes_at, free_inflater, inflate_at, libdeflate, new_inflater

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
    #: Lists: the branch that counts each entry's items (``nJet`` of ``Jet_pt[nJet]``).
    counter: str | None = None
    #: Lists written with ROOT's ``kGenerateOffsetMap``: baskets without entry offsets,
    #: which the counter's values give (the counter is read with the branch).
    generated: bool = False

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
        counter = branch.count_branch if header is not None else None
        generated = counter is not None and bool(_io_bits(branch) & _GENERATE_OFFSET_MAP)
        if generated and header != 0:
            return None  # items with headers and no offsets: uproot's (which refuses them)
        return cls(
            branch.name, stored, native, header,
            tuple(int(x) for x in branch.entry_offsets),
            tuple(int(x) for x in branch.member("fBasketSeek")[:n]),
            tuple(int(x) for x in branch.member("fBasketBytes")[:n]),
            None if counter is None else counter.name, generated,
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


def _key_length(raw: np.ndarray) -> int:
    """``fKeylen`` of a basket whose key :func:`_payload` checks."""
    return int(_KEY.unpack_from(memoryview(raw), 0)[4])  # type: ignore[arg-type]


def _io_bits(branch: Any) -> int:
    """The branch's ``TIOFeatures`` bits (0 for files written before ROOT had them)."""
    try:
        return int(branch.member("fIOFeatures").member("fIOBits"))
    except (KeyError, AttributeError, TypeError, ValueError):
        return 0


#: ``ROOT::TIOFeatures::kGenerateOffsetMap``.
_GENERATE_OFFSET_MAP = 1


@dataclass(frozen=True)
class _Generate:
    """A basket of a ``kGenerateOffsetMap`` list, inflated: its items, which its counter's
    values divide into entries when the chunk is built."""

    items: np.ndarray  # the payload's entry bytes (uint8), as stored


def _payload(raw: np.ndarray, chunk: Any) -> tuple[np.ndarray, int, int, int]:
    """One basket's uncompressed payload, its key length, border (``fLast - fKeylen``),
    and entries."""
    buf = memoryview(raw)  # type: ignore[arg-type]  # numpy arrays are buffers
    if len(buf) < _KEY.size:
        raise ValueError(f"basket of {len(buf)} bytes is shorter than its key")
    nbytes, _version, objlen, _datime, keylen, _cycle = _KEY.unpack_from(buf, 0)
    if not (_KEY.size + _BASKET_AT <= keylen <= nbytes == len(buf)) or objlen < 0:
        raise ValueError(f"basket key is damaged (fNbytes {nbytes}, fKeylen {keylen})")
    check_claim(objlen, "a basket")
    _, _, _, nev, last = _BASKET.unpack_from(buf, keylen - _BASKET_AT)
    border = last - keylen
    if not 0 <= border <= objlen or nev < 0:
        raise ValueError(f"basket header is damaged (fLast {last}, {nev} entries)")
    return decompress_blocks(buf[keylen:], objlen, chunk), keylen, border, nev


def decode_basket(column: BasketColumn, raw: np.ndarray, chunk: Any, lo: int, hi: int,
                  out: np.ndarray | None, entries: int | None = None,
                  ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """Entries ``[lo, hi)`` (counted in the basket) of one basket's bytes ``raw``: values
    in native byte order, and for lists the item count of each entry. Numbers are written
    into ``out`` (``hi - lo`` long, their place in the chunk's array): the byte swap is
    their only copy; lists (``out`` None) are returned. A basket holds ``entries`` (what
    the branch's metadata says; at least ``hi`` if not given)."""
    data, keylen, border, nev = _payload(raw, chunk)
    if nev != entries if entries is not None else hi > nev:
        expected = hi if entries is None else entries
        raise ValueError(f"branch {column.name}: a basket holds {nev} entries, {expected} expected")
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


# -- many baskets in one compiled call ---------------------------------------------------
# A chunk's baskets that are there when it starts (all of them once the plan fetches
# ahead) are decoded a few batches at a time, each batch one call with the GIL released:
# keys parsed, zlib inflated by libdeflate, numbers byte-swapped into their place in the
# chunk's arrays, each list entry's item count written, by address. Per basket Python
# only finds the address of its bytes. Lists' items are gathered into one array per branch
# when the chunk is built (:func:`_gather_lists`): nothing is concatenated.

#: Columns of the per-basket table handed to :func:`_decode_many` (``_ENTRIES``: the
#: entries the branch's metadata gives the basket).
_ITEMSIZE, _HEADER, _SWAP, _LO, _HI, _DST, _ENTRIES, _ADDR, _LEN = range(9)
#: What :func:`_decode_many` tells of each basket: done, or why not.
_OK, _SHORT_KEY, _BAD_KEY, _BAD_HEADER, _TOO_FEW, _NOT_ITEMS, _NO_OFFSETS, _BAD_OFFSETS = range(8)
_INFLATE, _OTHER_CODEC, _GENERATED = 8, 9, 10
#: The flag byte at the end of a basket's key, from which on the basket has no entry
#: offsets: the branch was written with ``kGenerateOffsetMap`` (ROOT's TBasket::Streamer).
_GENERATE_OFFSETS = 80

#: Where each basket's payload lies in the batch's buffer, and what it holds.
_OFFSET, _KEYLEN, _BORDER, _NEV, _ITEMS, _DETAIL_A, _DETAIL_B = range(7)


@numba.njit(cache=True, nogil=True)
def _decode_many(functions, table, info, status):
    """Decode the baskets of ``table`` (one row each: see ``_ITEMSIZE`` ...), filling
    ``info`` (one row each: see ``_OFFSET`` ...; ``_DETAIL_*`` name what was wrong) and
    ``status`` (``_OK`` ...), and give back the buffer holding their payloads (lists' items
    are read from it when the chunk is built)."""
    n = table.shape[0]
    total = 0
    for b in range(n):  # keys: sizes and where each payload goes
        raw = bytes_at(table[b, _ADDR], table[b, _LEN])
        if len(raw) < 37:  # the TKey's 18 bytes and the TBasket's 19
            status[b] = _SHORT_KEY
            continue
        nbytes, objlen, keylen = _be32(raw, 0), _be32(raw, 6), _be16(raw, 14)
        if not (37 <= keylen <= nbytes and nbytes == len(raw)) or not 0 <= objlen <= MAX_BUFFER:
            status[b], info[b, _DETAIL_A], info[b, _DETAIL_B] = _BAD_KEY, nbytes, keylen
            continue
        nev, last = _be32(raw, keylen - 9), _be32(raw, keylen - 5)
        border = last - keylen
        if not 0 <= border <= objlen or nev < 0:
            status[b], info[b, _DETAIL_A], info[b, _DETAIL_B] = _BAD_HEADER, last, nev
            continue
        body = raw[keylen:]
        single = len(body) >= 9 and 9 + (
            np.int64(body[3]) | (np.int64(body[4]) << 8) | (np.int64(body[5]) << 16)
        ) == len(body)
        zlib = single and body[0] == 90 and body[1] == 76 and functions[0] != 0  # "ZL"
        if len(body) != objlen and not zlib:
            status[b] = _OTHER_CODEC
            continue
        info[b, _OFFSET], info[b, _KEYLEN], info[b, _BORDER], info[b, _NEV] = (
            total, keylen, border, nev
        )  # fmt: skip
        info[b, _ITEMS] = objlen  # until decoded: the payload's size
        total += (objlen + 7) // 8 * 8
    payloads = np.empty(total, np.uint8)
    handle = new_inflater(functions) if functions[1] != 0 else 0
    for b in range(n):
        if status[b] != _OK:
            continue
        keylen, objlen, at = info[b, _KEYLEN], info[b, _ITEMS], info[b, _OFFSET]
        raw = bytes_at(table[b, _ADDR], table[b, _LEN])
        data = payloads[at : at + objlen]
        if len(raw) - keylen == objlen:  # stored as it is (ROOT keeps what would not shrink)
            data[:] = raw[keylen:]
        else:
            if handle == 0:
                status[b], info[b, _DETAIL_A] = _INFLATE, 3
                continue
            code = inflate_at(
                functions, handle, table[b, _ADDR] + keylen + 9, len(raw) - keylen - 9,
                payloads.ctypes.data + at, objlen,
            )  # fmt: skip
            if code != 0:
                status[b], info[b, _DETAIL_A], info[b, _DETAIL_B] = _INFLATE, code, len(raw)
                continue
        itemsize, header, lo, hi = (
            table[b, _ITEMSIZE],
            table[b, _HEADER],
            table[b, _LO],
            table[b, _HI],
        )
        nev, border = info[b, _NEV], info[b, _BORDER]
        if nev != table[b, _ENTRIES]:
            status[b], info[b, _DETAIL_A], info[b, _DETAIL_B] = _TOO_FEW, nev, table[b, _ENTRIES]
            continue
        if header >= 0 and raw[keylen - 1] >= _GENERATE_OFFSETS:
            status[b] = _GENERATED  # no entry offsets: the counter's values give them
            continue
        if header < 0:  # numbers: into their place in the chunk's array
            if border != nev * itemsize:
                status[b] = _NOT_ITEMS
                continue
            _swap_into(data[lo * itemsize :], table[b, _DST], hi - lo, itemsize, table[b, _SWAP])
            info[b, _ITEMS] = hi - lo
            continue
        if objlen < border + 4 * (nev + 2):
            status[b] = _NO_OFFSETS
            continue
        counts = bytes_at(table[b, _DST], 8 * (hi - lo)).view(np.int64)
        items = _list_counts(data, border, keylen, nev, lo, hi, header, itemsize, counts)
        if items < 0:
            status[b] = _BAD_OFFSETS
            continue
        info[b, _ITEMS] = items
        # the items, without headers, in native order, moved to the payload's start (or
        # left where they are, back to back): the chunk is built with one copy per basket
        first = _be32(data, border + 4 + 4 * lo) - keylen
        if header == 0:
            info[b, _OFFSET] = at + first
        else:
            w, start = 0, first
            for i in range(lo, hi):
                stop = border if i + 1 == nev else _be32(data, border + 4 + 4 * (i + 1)) - keylen
                for k in range(start + header, stop):
                    data[w] = data[k]
                    w += 1
                start = stop
            first = 0
        if table[b, _SWAP]:
            _swap_into(data[first:], payloads.ctypes.data + at + first, items, itemsize, True)
    if handle != 0:
        free_inflater(functions, handle)
    return payloads


@numba.njit(cache=True, nogil=True)
def _gather_lists(where, into):
    """Each basket's items (``where``: their address and byte count, one row per basket in
    entry order) back to back into ``into``."""
    pos = 0
    out = into.ctypes.data
    for b in range(where.shape[0]):
        address, nbytes = where[b, 0], where[b, 1]
        bytes_at(out + pos, nbytes)[:] = bytes_at(address, nbytes)
        pos += nbytes


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def _errors(column: BasketColumn, status: int, a: int, b: int, raw_len: int) -> Exception:
    """The error of a basket :func:`_decode_many` found wrong (the per-basket path's)."""
    import deflate

    name = column.name
    return {
        _SHORT_KEY: lambda: ValueError(f"basket of {raw_len} bytes is shorter than its key"),
        _BAD_KEY: lambda: ValueError(f"basket key is damaged (fNbytes {a}, fKeylen {b})"),
        _BAD_HEADER: lambda: ValueError(f"basket header is damaged (fLast {a}, {b} entries)"),
        _TOO_FEW: lambda: ValueError(f"branch {name}: a basket holds {a} entries, {b} expected"),
        _NOT_ITEMS: lambda: ValueError(
            f"branch {name}: basket entries are not {column.stored.itemsize} bytes"
        ),
        _NO_OFFSETS: lambda: ValueError(f"branch {name}: a basket has no entry offsets"),
        _BAD_OFFSETS: lambda: ValueError(f"branch {name}: a basket's entry offsets are damaged"),
        _INFLATE: lambda: (
            deflate.DeflateError(f"branch {name}: a basket of {b} bytes does not inflate")
            if a == 1
            else ValueError(f"branch {name}: a basket inflates to the wrong size")
        ),
    }[status]()


def start_columns(columns: list[BasketColumn], source: Any, start: int, stop: int,
                  executor: Executor) -> Callable[[], dict[str, Any]]:  # fmt: skip
    """Start reading entries ``[start, stop)`` of ``columns``; the function that waits for
    them and gives them as awkward layouts, by branch name.

    The baskets' byte ranges are asked of ``source`` (any uproot source; hepstream's serves
    them from the read plan) now, branch by branch in basket order, the order the plan was
    made in; the baskets already there are decoded in a few batches on ``executor``, the
    others each as soon as its bytes are there.
    """
    n = stop - start
    ranges: list[tuple[int, int]] = []
    owner: list[BasketColumn] = []  # each basket's column
    rows: list[tuple[int, int, int, int, int, int, int]] = []
    arrays: dict[str, np.ndarray] = {}  # numbers: the values; lists: each entry's item count
    jobs_of: dict[str, list[int]] = {}
    for column in columns:
        array = arrays[column.name] = np.empty(
            n, column.native if column.header is None else np.int64
        )
        base, width = _address(array), array.itemsize
        stored = column.stored
        swap = int(stored.itemsize > 1 and not stored.isnative)
        header = -1 if column.header is None else column.header
        jobs_of[column.name] = mine = []
        for k, first, end in column.baskets(start, stop):
            b0 = column.entry_offsets[k]
            mine.append(len(rows))
            ranges.append(column.range_of(k))
            owner.append(column)
            rows.append((stored.itemsize, header, swap, first - b0, end - b0,
                         base + (first - start) * width, column.entry_offsets[k + 1] - b0))  # fmt: skip
    table = np.zeros((len(rows), 9), np.int64)
    if rows:
        table[:, :7] = rows
    functions = np.array(libdeflate(), np.intp)

    def decode_many(batch: list[tuple[int, Any]]) -> list[Any]:
        keep = [chunk.raw_data for _, chunk in batch]  # alive until decoded
        which = [i for i, _ in batch]
        mine = table[which]
        mine[:, _ADDR] = [_address(raw) for raw in keep]
        mine[:, _LEN] = [len(raw) for raw in keep]
        info = np.zeros((len(batch), 7), np.int64)
        statuses = np.zeros(len(batch), np.int64)
        payloads = _decode_many(functions, mine, info, statuses)
        base = _address(payloads)
        results: list[Any] = []
        for row, (i, chunk), raw in zip(range(len(batch)), batch, keep, strict=True):
            column, status = owner[i], statuses[row]
            if status == _OTHER_CODEC:
                results.append(_decode_one(column, raw, chunk, table[i], arrays[column.name]))
            elif status == _GENERATED:
                at = info[row, _OFFSET]
                results.append(_Generate(payloads[at : at + info[row, _BORDER]]))
            elif status != _OK:
                raise _errors(column, status, info[row, _DETAIL_A], info[row, _DETAIL_B], len(raw))
            elif column.header is None:
                results.append(None)
            else:  # where the items are: copied when the chunk is built
                results.append((payloads, base + info[row, _OFFSET],
                                info[row, _ITEMS] * column.stored.itemsize))  # fmt: skip
        return results

    def decode(i: int, chunk: Any) -> Any:
        return decode_many([(i, chunk)])[0]

    arrivals = decode_as_they_arrive(source, ranges, executor, decode, decode_many)

    def finish() -> dict[str, Any]:
        import awkward as ak

        decoded = arrivals.results()
        layouts: dict[str, Any] = {}
        for column in columns:
            array = arrays[column.name]
            if column.header is None:
                layouts[column.name] = ak.contents.NumpyArray(array)
                continue
            for i in jobs_of[column.name]:
                if isinstance(decoded[i], _Generate):
                    decoded[i] = _generated(column, decoded[i], table[i], array, arrays)
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(array, out=offsets[1:])
            content = np.empty(int(offsets[-1]), column.native)
            where = np.array([decoded[i][1:] for i in jobs_of[column.name]], np.int64)
            where = where.reshape(-1, 2)
            if int(where[:, 1].sum()) != content.nbytes:  # written by address: never past it
                raise ValueError(f"branch {column.name}: item counts and items disagree")
            _gather_lists(where, content.view(np.uint8))
            layouts[column.name] = ak.contents.ListOffsetArray(
                ak.index.Index64(offsets), ak.contents.NumpyArray(content)
            )
            counted = arrays.get(column.counter) if column.counter is not None else None
            if counted is not None and not np.array_equal(counted, array):
                wrong = int(np.flatnonzero(counted != array)[0]) + start
                raise ValueError(
                    f"branch {column.name}: entry {wrong} holds {int(array[wrong - start])} "
                    f"items, its counter {column.counter} says {int(counted[wrong - start])}"
                )
        return layouts

    return finish


def _generated(column: BasketColumn, basket: _Generate, row: np.ndarray, array: np.ndarray,
               arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, int, int]:  # fmt: skip
    """A ``kGenerateOffsetMap`` basket's items divided by its counter's values (written
    into the chunk's ``array`` of item counts), as a :func:`_gather_lists` row. The chunk
    holds the whole basket: such a branch's chunks are never cut inside a cluster."""
    lo, hi, entries = int(row[_LO]), int(row[_HI]), int(row[_ENTRIES])
    at = (int(row[_DST]) - _address(array)) // array.itemsize
    counter = arrays.get(column.counter or "")
    if lo != 0 or hi != entries or counter is None:
        raise ValueError(f"branch {column.name}: a basket without entry offsets is cut")
    counts = counter[at : at + hi - lo].astype(np.int64)
    itemsize = column.stored.itemsize
    if (counts < 0).any() or int(counts.sum()) * itemsize != len(basket.items):
        raise ValueError(
            f"branch {column.name}: a basket of {len(basket.items):,} bytes without entry "
            f"offsets does not hold the items its counter {column.counter} gives"
        )
    array[at : at + hi - lo] = counts
    items = basket.items.view(column.stored).astype(column.native)
    return (items, _address(items), items.nbytes)


def _decode_one(column: BasketColumn, raw: np.ndarray, chunk: Any, row: np.ndarray,
                array: np.ndarray) -> Any:  # fmt: skip
    """A basket of another codec than zlib, or of several blocks: by the per-basket path,
    into the chunk's arrays; for lists, its items (native) as a :func:`_gather_lists` row."""
    lo, hi, entries = int(row[_LO]), int(row[_HI]), int(row[_ENTRIES])
    at = (int(row[_DST]) - _address(array)) // array.itemsize
    if column.generated and np.asarray(raw)[_key_length(raw) - 1] >= _GENERATE_OFFSETS:
        data, _keylen, border, nev = _payload(raw, chunk)
        if nev != entries:
            raise ValueError(
                f"branch {column.name}: a basket holds {nev} entries, {entries} expected"
            )
        return _Generate(data[:border])
    if column.header is None:
        decode_basket(column, raw, chunk, lo, hi, array[at : at + hi - lo], entries)
        return None
    items, counts = decode_basket(column, raw, chunk, lo, hi, None, entries)
    array[at : at + hi - lo] = counts
    return (items, _address(items), items.nbytes)
