"""TTree baskets of numbers and lists of numbers, decoded by hepstream instead of uproot.

Most analysis branches are one number per entry (``float``, ``int``, ``bool``, ...) or a
list of numbers per entry (``float[n]``, ``std::vector<float>``, ``ROOT::RVec<float>``).
uproot reads each basket through a model object, a cursor and two executors: Python under
the GIL per basket, which for a job over many branches costs as much as inflating them.
Here a basket costs one ``struct`` unpack on the reader's side; inflating (libdeflate),
byte-swapping into the output and stripping vector headers (:mod:`hepstream.root.lists`)
run on the decompression threads with the GIL released.

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
from typing import Any, NamedTuple

import awkward as ak
import deflate
import numba
import numpy as np
import numpy.typing as npt
from uproot.interpretation.jagged import AsJagged
from uproot.interpretation.numerical import AsDtype

from hepstream.root.arrivals import decode_as_they_arrive
from hepstream.root.decompress import MAX_BUFFER, check_claim, decompress_blocks
from hepstream.root.lists import be16, be32, list_counts, swap_into, unpack_lists
from hepstream.root.native import (
    Int,
    bytes_at,
    free_inflater,
    inflate_at,
    libdeflate,
    new_inflater,
)

#: fNbytes, key version, fObjlen, fDatime, fKeylen, fCycle: the start of every TKey.
_KEY = struct.Struct(">ihiIhh")
#: fVersion, fBufferSize, fNevBufSize, fNevBuf, fLast (then one flag byte): the key's end.
_BASKET = struct.Struct(">Hiiii")
_BASKET_AT = _BASKET.size + 1  # bytes before the end of the key


@dataclass(frozen=True)
class BasketColumn:
    """How one branch's baskets decode: numbers (``header`` None) or lists of numbers."""

    name: str
    stored: np.dtype[Any]  # big-endian, as in the basket
    native: np.dtype[Any]
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
            branch.name,
            stored,
            native,
            header,
            entry_offsets=tuple(int(x) for x in branch.entry_offsets),
            seeks=tuple(int(x) for x in branch.member("fBasketSeek")[:n]),
            sizes=tuple(int(x) for x in branch.member("fBasketBytes")[:n]),
            counter=None if counter is None else counter.name,
            generated=generated,
        )

    def baskets(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """(basket, first entry, last entry + 1) of the baskets holding ``[start, stop)``."""
        edges = self.entry_offsets
        k = max(0, bisect.bisect_right(edges, start) - 1)
        out: list[tuple[int, int, int]] = []
        while k < len(edges) - 1 and edges[k] < stop:
            if edges[k + 1] > start:
                out.append((k, max(start, edges[k]), min(stop, edges[k + 1])))
            k += 1
        return out

    def range_of(self, basket: int) -> tuple[int, int]:
        """Basket ``basket``'s byte range in the file."""
        seek = self.seeks[basket]
        return seek, seek + self.sizes[basket]


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

    items: npt.NDArray[np.uint8]  # the payload's entry bytes, as stored


class _Payload(NamedTuple):
    """One basket, its key checked and its payload uncompressed."""

    data: npt.NDArray[np.uint8]
    keylen: int
    #: ``fLast - fKeylen``: where the entries' bytes end in ``data`` (their offsets follow).
    border: int
    nev: int
    #: The key's flag byte says the basket has no entry offsets (``kGenerateOffsetMap``).
    generated: bool


def _payload(
    column: BasketColumn, raw: npt.NDArray[np.uint8], chunk: Any, entries: int
) -> _Payload:
    """One basket's bytes ``raw``: its key and TBasket fields checked before anything is
    read by them, its payload decompressed, and its entries checked against ``entries``
    (what the branch's metadata says it holds)."""
    # numpy arrays are buffers: numpy's stubs say so only from Python 3.12 on
    buf = memoryview(raw)  # type: ignore[arg-type]
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
    data = decompress_blocks(buf[keylen:], objlen, chunk)
    if nev != entries:
        raise ValueError(f"branch {column.name}: a basket holds {nev} entries, {entries} expected")
    return _Payload(data, keylen, border, nev, buf[keylen - 1] >= _GENERATE_OFFSETS)


def _numbers(
    column: BasketColumn, payload: _Payload, lo: int, hi: int, out: npt.NDArray[Any]
) -> None:
    """Entries ``[lo, hi)`` (counted in the basket) of a basket of numbers into ``out``
    (their place in the chunk's array), in native byte order: the swap is their only copy."""
    itemsize = column.stored.itemsize
    if payload.border != payload.nev * itemsize:
        raise ValueError(f"branch {column.name}: basket entries are not {itemsize} bytes")
    out[...] = payload.data[lo * itemsize : hi * itemsize].view(column.stored)


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
def _decode_many(
    functions: npt.NDArray[np.intp],
    table: npt.NDArray[np.int64],
    info: npt.NDArray[np.int64],
    status: npt.NDArray[np.int64],
) -> npt.NDArray[np.uint8]:
    """Decode the baskets of ``table`` (one row each: see ``_ITEMSIZE`` ...), filling
    ``info`` (one row each: see ``_OFFSET`` ...; ``_DETAIL_*`` name what was wrong) and
    ``status`` (``_OK`` ...), and give back the buffer holding their payloads (lists' items
    are read from it when the chunk is built)."""
    n = table.shape[0]
    total: Int = 0
    for b in range(n):  # keys: sizes and where each payload goes
        raw = bytes_at(table[b, _ADDR], table[b, _LEN])
        if len(raw) < 37:  # the TKey's 18 bytes and the TBasket's 19
            status[b] = _SHORT_KEY
            continue
        nbytes, objlen, keylen = be32(raw, 0), be32(raw, 6), be16(raw, 14)
        if not (37 <= keylen <= nbytes and nbytes == len(raw)) or not 0 <= objlen <= MAX_BUFFER:
            status[b], info[b, _DETAIL_A], info[b, _DETAIL_B] = _BAD_KEY, nbytes, keylen
            continue
        nev, last = be32(raw, keylen - 9), be32(raw, keylen - 5)
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
        info[b, _OFFSET], info[b, _KEYLEN] = total, keylen
        info[b, _BORDER], info[b, _NEV] = border, nev
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
                functions,
                handle,
                table[b, _ADDR] + keylen + 9,
                len(raw) - keylen - 9,
                payloads.ctypes.data + at,
                objlen,
            )
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
            swap_into(data[lo * itemsize :], table[b, _DST], hi - lo, itemsize, table[b, _SWAP])
            info[b, _ITEMS] = hi - lo
            continue
        if objlen < border + 4 * (nev + 2):
            status[b] = _NO_OFFSETS
            continue
        counts = bytes_at(table[b, _DST], 8 * (hi - lo)).view(np.int64)
        items = list_counts(data, border, keylen, nev, lo, hi, header, itemsize, counts)
        if items < 0:
            status[b] = _BAD_OFFSETS
            continue
        info[b, _ITEMS] = items
        # the items, without headers, in native order, moved to the payload's start (or
        # left where they are, back to back): the chunk is built with one copy per basket
        first = be32(data, border + 4 + 4 * lo) - keylen
        if header == 0:
            info[b, _OFFSET] = at + first
        else:
            w, start = 0, first
            for i in range(lo, hi):
                stop = border if i + 1 == nev else be32(data, border + 4 + 4 * (i + 1)) - keylen
                for k in range(start + header, stop):
                    data[w] = data[k]
                    w += 1
                start = stop
            first = 0
        if table[b, _SWAP]:
            swap_into(data[first:], payloads.ctypes.data + at + first, items, itemsize, True)
    if handle != 0:
        free_inflater(functions, handle)
    return payloads


@numba.njit(cache=True, nogil=True)
def _gather_lists(where: npt.NDArray[np.int64], into: npt.NDArray[np.uint8]) -> None:
    """Each basket's items (``where``: their address and byte count, one row per basket in
    entry order) back to back into ``into``."""
    pos = 0
    out = into.ctypes.data
    for b in range(where.shape[0]):
        address, nbytes = where[b, 0], where[b, 1]
        bytes_at(out + pos, nbytes)[:] = bytes_at(address, nbytes)
        pos += nbytes


def _address(array: npt.NDArray[Any]) -> int:
    """Where ``array``'s first element lies in memory."""
    address: int = array.__array_interface__["data"][0]
    return address


def _errors(column: BasketColumn, status: int, a: int, b: int, raw_len: int) -> Exception:
    """The error of a basket :func:`_decode_many` found wrong (the per-basket path's)."""
    name = column.name
    if status == _INFLATE and a == 1:
        return deflate.DeflateError(f"branch {name}: a basket of {b} bytes does not inflate")
    return ValueError(
        {
            _SHORT_KEY: f"basket of {raw_len} bytes is shorter than its key",
            _BAD_KEY: f"basket key is damaged (fNbytes {a}, fKeylen {b})",
            _BAD_HEADER: f"basket header is damaged (fLast {a}, {b} entries)",
            _TOO_FEW: f"branch {name}: a basket holds {a} entries, {b} expected",
            _NOT_ITEMS: f"branch {name}: basket entries are not {column.stored.itemsize} bytes",
            _NO_OFFSETS: f"branch {name}: a basket has no entry offsets",
            _BAD_OFFSETS: f"branch {name}: a basket's entry offsets are damaged",
            _INFLATE: f"branch {name}: a basket inflates to the wrong size",
        }[status]
    )


def start_columns(
    columns: list[BasketColumn], source: Any, start: int, stop: int, executor: Executor
) -> Callable[[], dict[str, Any]]:
    """Start reading entries ``[start, stop)`` of ``columns``; the function that waits for
    them and gives them as awkward layouts, by branch name.

    The baskets' byte ranges are asked of ``source`` (any uproot source; hepstream's serves
    them from the read plan) now, branch by branch in basket order, the order the plan was
    made in; the baskets already there are decoded in a few batches on ``executor``, the
    others each as soon as its bytes are there.
    """
    baskets = _ChunkBaskets(columns, start, stop)
    arrivals = decode_as_they_arrive(
        source, baskets.ranges, executor, baskets.decode, baskets.decode_many
    )
    return lambda: baskets.layouts(arrivals.results())


#: A basket's list items, decoded: the array that holds them (kept alive until they are
#: gathered), their address and their byte count.
_Items = tuple[npt.NDArray[Any], int, int]
#: What a basket decodes to: numbers are already in the chunk's array (None); lists give
#: their items, or (``kGenerateOffsetMap``) the items their counter divides later.
_Decoded = _Items | _Generate | None


class _ChunkBaskets:
    """The baskets of one chunk of some columns: where each one's values go in the chunk's
    arrays (a row of the table :func:`_decode_many` reads), their decoding, and the
    awkward layouts built from them."""

    def __init__(self, columns: list[BasketColumn], start: int, stop: int) -> None:
        self.columns, self.start, self.n = columns, start, stop - start
        self.ranges: list[tuple[int, int]] = []
        self.owner: list[BasketColumn] = []  # each basket's column
        #: Numbers: the values; lists: each entry's item count.
        self.arrays: dict[str, npt.NDArray[Any]] = {}
        self.baskets_of: dict[str, list[int]] = {}  # each column's baskets, in entry order
        rows: list[tuple[int, int, int, int, int, int, int]] = []
        for column in columns:
            rows += self._place(column, start, stop)
        self.table = np.zeros((len(rows), 9), np.int64)
        if rows:
            self.table[:, :7] = rows
        self.functions = np.array(libdeflate(), np.intp)

    def _place(
        self, column: BasketColumn, start: int, stop: int
    ) -> list[tuple[int, int, int, int, int, int, int]]:
        """``column``'s array for the chunk, and the table rows of its baskets: where each
        one's entries ``[lo, hi)`` go in that array, how they are stored."""
        array = self.arrays[column.name] = np.empty(
            self.n, column.native if column.header is None else np.int64
        )
        base, width = _address(array), array.itemsize
        stored = column.stored
        swap = int(stored.itemsize > 1 and not stored.isnative)
        header = -1 if column.header is None else column.header
        mine = self.baskets_of[column.name] = []
        rows = []
        for k, first, end in column.baskets(start, stop):
            b0 = column.entry_offsets[k]
            mine.append(len(self.owner))
            self.ranges.append(column.range_of(k))
            self.owner.append(column)
            rows.append(
                (
                    stored.itemsize,
                    header,
                    swap,
                    first - b0,
                    end - b0,
                    base + (first - start) * width,
                    column.entry_offsets[k + 1] - b0,
                )
            )
        return rows

    def decode_many(self, batch: list[tuple[int, Any]]) -> list[_Decoded]:
        """The baskets of ``batch`` (their index and uproot's chunk of their bytes) in one
        compiled call; those it leaves (other codecs) one by one."""
        keep = [chunk.raw_data for _, chunk in batch]  # alive until decoded
        which = [i for i, _ in batch]
        mine = self.table[which]
        mine[:, _ADDR] = [_address(raw) for raw in keep]
        mine[:, _LEN] = [len(raw) for raw in keep]
        info = np.zeros((len(batch), 7), np.int64)
        statuses = np.zeros(len(batch), np.int64)
        payloads = _decode_many(self.functions, mine, info, statuses)
        base = _address(payloads)
        results: list[_Decoded] = []
        for row, (i, chunk), raw in zip(range(len(batch)), batch, keep, strict=True):
            column, status = self.owner[i], statuses[row]
            if status == _OTHER_CODEC:
                array = self.arrays[column.name]
                results.append(_decode_one(column, raw, chunk, self.table[i], array))
            elif status == _GENERATED:
                at = info[row, _OFFSET]
                results.append(_Generate(payloads[at : at + info[row, _BORDER]]))
            elif status != _OK:
                raise _errors(column, status, info[row, _DETAIL_A], info[row, _DETAIL_B], len(raw))
            elif column.header is None:
                results.append(None)
            else:  # where the items are: copied when the chunk is built
                nbytes = info[row, _ITEMS] * column.stored.itemsize
                results.append((payloads, base + info[row, _OFFSET], nbytes))
        return results

    def decode(self, i: int, chunk: Any) -> _Decoded:
        """Basket ``i`` alone (its bytes came after the others')."""
        return self.decode_many([(i, chunk)])[0]

    def layouts(self, decoded: list[_Decoded]) -> dict[str, Any]:
        """The chunk's awkward layout of every column, once every basket is ``decoded``."""
        layouts: dict[str, Any] = {}
        for column in self.columns:
            if column.header is None:
                layouts[column.name] = ak.contents.NumpyArray(self.arrays[column.name])
            else:
                layouts[column.name] = self._list_layout(column, decoded)
                self._check_counter(column)
        return layouts

    def _list_layout(self, column: BasketColumn, decoded: list[_Decoded]) -> Any:
        """A list column's layout: its item counts made offsets, its baskets' items
        gathered into one array."""
        array, baskets = self.arrays[column.name], self.baskets_of[column.name]
        for i in baskets:
            basket = decoded[i]
            if isinstance(basket, _Generate):
                decoded[i] = _generated(column, basket, self.table[i], array, self.arrays)
        offsets = np.zeros(self.n + 1, np.int64)
        np.cumsum(array, out=offsets[1:])
        content = np.empty(int(offsets[-1]), column.native)
        where = np.array([_where(decoded[i]) for i in baskets], np.int64).reshape(-1, 2)
        if int(where[:, 1].sum()) != content.nbytes:  # written by address: never past it
            raise ValueError(f"branch {column.name}: item counts and items disagree")
        _gather_lists(where, content.view(np.uint8))
        return ak.contents.ListOffsetArray(
            ak.index.Index64(offsets), ak.contents.NumpyArray(content)
        )

    def _check_counter(self, column: BasketColumn) -> None:
        """A list's item counts are its counter branch's values, where both are read."""
        array = self.arrays[column.name]
        counted = self.arrays.get(column.counter) if column.counter is not None else None
        if counted is not None and not np.array_equal(counted, array):
            wrong = int(np.flatnonzero(counted != array)[0]) + self.start
            raise ValueError(
                f"branch {column.name}: entry {wrong} holds {int(array[wrong - self.start])} "
                f"items, its counter {column.counter} says {int(counted[wrong - self.start])}"
            )


def _where(basket: _Decoded) -> tuple[int, int]:
    """A list basket's items' address and byte count (a :func:`_gather_lists` row)."""
    assert isinstance(basket, tuple), "every list basket is decoded before it is gathered"
    return basket[1], basket[2]


def _generated(
    column: BasketColumn,
    basket: _Generate,
    row: npt.NDArray[np.int64],
    array: npt.NDArray[Any],
    arrays: dict[str, npt.NDArray[Any]],
) -> _Items:
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


def _decode_one(
    column: BasketColumn,
    raw: npt.NDArray[np.uint8],
    chunk: Any,
    row: npt.NDArray[np.int64],
    array: npt.NDArray[Any],
) -> _Decoded:
    """A basket of another codec than zlib, or of several blocks, by the per-basket path
    into the chunk's ``array``: numbers into their place; lists' item counts into their
    place and their items (native) as a :func:`_gather_lists` row."""
    lo, hi, entries = int(row[_LO]), int(row[_HI]), int(row[_ENTRIES])
    at = (int(row[_DST]) - _address(array)) // array.itemsize
    payload = _payload(column, raw, chunk, entries)
    data, keylen, border, nev, generated = payload
    if column.generated and generated:
        return _Generate(data[:border])
    if column.header is None:
        _numbers(column, payload, lo, hi, array[at : at + hi - lo])
        return None
    try:
        items, counts = unpack_lists(
            data, border, keylen, nev, lo, hi, column.header, column.stored
        )
    except ValueError as err:
        raise ValueError(f"branch {column.name}: {err}") from None
    array[at : at + hi - lo] = counts
    return (items, _address(items), items.nbytes)
