"""RNTuple pages of numbers, bits and offsets, decoded by hepstream instead of uproot.

An RNTuple column is a sequence of pages per cluster; each page holds a run of elements
of one type, compressed in ROOT's blocks. Most analysis fields are one number per entry, or
a list of numbers (an offsets column and an items column). Before compression ROOT may
*split* a page (every element's first byte, then every second byte, ...), and encode
integers as zigzag (signed) or offsets as deltas within the page.

uproot reads a column page by page in Python (a source call, a decompress, an unsplit
and a cumsum with numpy's strided copies), cluster by cluster, under the GIL. Here each
page is one task on the decompression threads: zstd (cramjam) or zlib (libdeflate) with
the GIL released, then one compiled pass that unsplits and undoes the integer encoding
straight into the chunk's array. The arrays are then built by the same
``awkward.from_buffers`` call on uproot's own form, so they are identical to uproot's
(``tests/test_pages.py``).

Bits are unpacked too. Columns of any other kind are left to uproot: half-precision and
truncated or quantized floats, variant switches, fields of more than one column (strings;
a field stored in several representations), and columns added to the schema after the
first entry. :meth:`PageColumn.of` decides.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import xxhash

from hepstream.root.arrivals import decode_as_they_arrive
from hepstream.root.decompress import check_claim, decompress_blocks
from hepstream.root.native import Int
from hepstream.root.pagelists import PAGE_CHECKSUM, ColumnPages
from hepstream.root.uproot_internals import field_columns

#: RNTuple column types hepstream decodes (ROOT's numbering, as in uproot.const): bits,
#: plain and split integers, 32- and 64-bit floats, and 32- and 64-bit offsets (a table,
#: left as written: ROOT's numbering in order).
_TYPES = {
    0: "?", 1: "u1", 2: "u1", 3: "i1", 4: "u1", 5: "i2", 6: "u2", 7: "i4", 8: "u4",
    9: "i8", 10: "u8", 12: "f4", 13: "f8", 14: "i4", 15: "i8",
    17: "i2", 18: "u2", 19: "i4", 20: "u4", 21: "i8", 22: "u8", 24: "f4", 25: "f8",
    26: "i4", 27: "i8",
}  # fmt: skip
_SPLIT = frozenset(range(17, 28))
_ZIGZAG = frozenset((17, 19, 21))
_DELTA = frozenset((26, 27))
_OFFSETS = frozenset((14, 15, 26, 27))
#: The xxhash3 of a page written with checksums, after the page.
_CHECKSUM = struct.Struct("<Q")


@dataclass(frozen=True)
class PageColumn:
    """How one RNTuple column's pages decode."""

    index: int
    dtype: np.dtype  # the element type (little-endian, as stored)
    split: bool
    zigzag: bool
    delta: bool
    #: An offsets column: uproot's array starts with a 0 and each cluster continues
    #: from the end of the one before.
    offsets: bool
    name: str = ""  # the field's path, for error lines

    @property
    def bits(self) -> bool:
        """Booleans, stored 8 to a byte (first in the lowest bit)."""
        return self.dtype.kind == "b"

    @classmethod
    def of(cls, ntuple: Any, index: int) -> PageColumn | None:
        """The decoder of column ``index`` of uproot's ``ntuple``, or None for uproot's."""
        record = ntuple.column_records[index]
        kind = int(record.type)
        if kind not in _TYPES or int(record.first_element_index) != 0:
            return None
        if len(field_columns(ntuple)[record.field_id]) != 1:
            return None  # several representations: uproot picks the active one per cluster
        dtype = np.dtype(_TYPES[kind]).newbyteorder("<")
        if int(record.nbits) != (1 if kind == 0 else 8 * dtype.itemsize):
            return None
        return cls(
            index,
            dtype,
            split=kind in _SPLIT,
            zigzag=kind in _ZIGZAG,
            delta=kind in _DELTA,
            offsets=kind in _OFFSETS,
            name=field_path(ntuple, record.field_id),
        )


def field_path(ntuple: Any, field: int) -> str:
    """The dotted name of field ``field`` of uproot's ``ntuple`` (``Jet.pt``)."""
    records = ntuple.field_records
    names: list[str] = []
    while 0 <= field < len(records) and len(names) < len(records):
        names.append(records[field].field_name)
        parent = int(records[field].parent_field_id)
        if parent == field:
            break
        field = parent
    return ".".join(reversed(names))


# -- compiled passes (GIL released) ------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _unsplit2(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> None:
    n = len(src) // 2
    for i in range(n):
        dst[2 * i] = src[i]
        dst[2 * i + 1] = src[n + i]


@numba.njit(cache=True, nogil=True)
def _unsplit4(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> None:
    n = len(src) // 4
    for i in range(n):
        j = 4 * i
        dst[j] = src[i]
        dst[j + 1] = src[n + i]
        dst[j + 2] = src[2 * n + i]
        dst[j + 3] = src[3 * n + i]


@numba.njit(cache=True, nogil=True)
def _unsplit8(src: npt.NDArray[np.uint8], dst: npt.NDArray[np.uint8]) -> None:
    n = len(src) // 8
    for i in range(n):
        j = 8 * i
        dst[j] = src[i]
        dst[j + 1] = src[n + i]
        dst[j + 2] = src[2 * n + i]
        dst[j + 3] = src[3 * n + i]
        dst[j + 4] = src[4 * n + i]
        dst[j + 5] = src[5 * n + i]
        dst[j + 6] = src[6 * n + i]
        dst[j + 7] = src[7 * n + i]


_UNSPLIT = {2: _unsplit2, 4: _unsplit4, 8: _unsplit8}


@numba.njit(cache=True, nogil=True)
def _undelta(values: npt.NDArray[np.integer[Any]]) -> None:
    """Running sum in place: a page of offsets stored as differences (from 0)."""
    for i in range(1, len(values)):
        values[i] += values[i - 1]


def _unzigzag(values: npt.NDArray[np.integer[Any]]) -> None:
    """Zigzag-encoded integers in place: ``0, 1, 2, 3, ...`` stand for ``0, -1, 1, -2, ...``."""
    unsigned = values.view(values.dtype.str.replace("i", "u"))
    values[...] = (unsigned >> 1).view(values.dtype) ^ -(unsigned & 1).view(values.dtype)


@numba.njit(cache=True, nogil=True)
def _offsets_fault(values: npt.NDArray[np.integer[Any]], expected: Int) -> int:
    """Where one cluster's offsets ``values`` (each entry's end) break: the first one below
    the one before it (or below 0), ``len(values)`` if the last is not ``expected`` (the
    items the cluster's page lists give), -1 if none."""
    before = 0
    for i in range(len(values)):
        if values[i] < before:
            return i
        before = values[i]
    return -1 if before == expected else len(values)


def decode_page(
    column: PageColumn, raw: Any, chunk: Any, out: npt.NDArray[Any], checksum: bool = False
) -> None:
    """One page's stored bytes ``raw`` decoded into ``out`` (its elements' place in the
    chunk's array, of ``column.dtype``); with ``checksum``, ``raw`` ends with the page's
    xxhash3, checked first."""
    body = memoryview(raw)
    if checksum:
        if len(body) < PAGE_CHECKSUM:
            raise ValueError(f"field {column.name}: a page of {len(body)} bytes has no checksum")
        (stored,) = _CHECKSUM.unpack_from(body, len(body) - PAGE_CHECKSUM)
        body = body[:-PAGE_CHECKSUM]
        if xxhash.xxh3_64_intdigest(body) != stored:
            raise ValueError(
                f"field {column.name}: the page at byte {chunk.start:,} ({len(body):,} bytes) "
                f"fails its checksum"
            )
    if column.bits:
        data = decompress_blocks(body, (len(out) + 7) // 8, chunk, head=checksum)
        out.view(np.uint8)[...] = np.unpackbits(data, count=len(out), bitorder="little")
        return
    target = out.view(np.uint8)
    data = decompress_blocks(
        body, out.nbytes, chunk, None if column.split else target, head=checksum
    )
    if column.split and column.dtype.itemsize > 1:
        _UNSPLIT[column.dtype.itemsize](data, target)
    elif data is not target:
        target[...] = data
    if column.zigzag:
        _unzigzag(out)
    elif column.delta:
        _undelta(out)


#: One page to decode: its column, where its elements go, whether a checksum follows it.
_Job = tuple[PageColumn, npt.NDArray[Any], bool]


def start_pages(
    columns: list[PageColumn],
    links: list[list[ColumnPages]],
    clusters: range,
    source: Any,
    executor: Executor,
    items: dict[int, list[int | None]],
) -> Callable[[], dict[int, npt.NDArray[Any]]]:
    """Start reading ``clusters`` of ``columns``; the function that waits for them and
    gives each column's elements as uproot's ``read_cluster_range`` gives them (offsets: a
    leading 0, continued across clusters), by column index.

    The pages' byte ranges are asked of ``source`` now, column by column, cluster by
    cluster, page by page: the order of the read plan
    (:func:`hepstream.root.pagelists.page_ranges`, these columns ``checked``), a page
    listed for several columns once for each. Each page is decoded on ``executor`` as soon
    as its bytes are there, its checksum checked first where it has one.

    ``items[column]``, for offsets columns, gives the items each cluster's page lists hold
    under them (None: not known): each cluster's offsets must rise from 0 to that, or
    the lists would point outside their items.
    """
    ranges: list[tuple[int, int]] = []
    jobs: list[_Job] = []
    out: dict[int, npt.NDArray[Any]] = {}
    edges: dict[int, list[int]] = {}  # offsets columns: where each cluster's elements start
    for column in columns:
        rows = [links[c][column.index] for c in clusters if column.index < len(links[c])]
        out[column.index], edges[column.index] = _place_pages(column, rows, clusters, ranges, jobs)

    def decode(i: int, chunk: Any) -> None:
        column, target, check = jobs[i]
        decode_page(column, chunk.raw_data, chunk, target, check)

    arrivals = decode_as_they_arrive(source, ranges, executor, decode)

    def finish() -> dict[int, npt.NDArray[Any]]:
        arrivals.results()
        for column in columns:
            if column.offsets:
                expected = items.get(column.index, [])
                _join_offsets(column, out[column.index], edges[column.index], expected, clusters)
        return out

    return finish


def _place_pages(
    column: PageColumn,
    rows: list[ColumnPages],
    clusters: range,
    ranges: list[tuple[int, int]],
    jobs: list[_Job],
) -> tuple[npt.NDArray[Any], list[int]]:
    """The array of ``column``'s elements in ``rows`` (its pages in each cluster; offsets:
    a leading 0) and where each cluster's elements start in it; each page's byte range
    appended to ``ranges``, and to ``jobs`` where its elements go. Sizes no ROOT buffer
    holds are refused before anything is allocated."""
    lead = 1 if column.offsets else 0
    size = column.dtype.itemsize
    for row in rows:
        for n in row.elements:
            check_claim((n + 7) // 8 if column.bits else n * size, f"a page of {column.name}")
    total = lead + sum(sum(row.elements) for row in rows)
    check_claim(total * size, f"field {column.name} in entries of clusters {clusters}")
    values = np.empty(total, column.dtype)
    values[:lead] = 0
    at = lead
    starts = []
    for row in rows:
        starts.append(at)
        summed = row.checksums or (False,) * len(row.pages)
        for (offset, nbytes), n, check in zip(row.pages, row.elements, summed, strict=True):
            ranges.append((offset, offset + nbytes + PAGE_CHECKSUM * check))
            jobs.append((column, values[at : at + n], check))
            at += n
    return values, starts


def _join_offsets(
    column: PageColumn,
    values: npt.NDArray[Any],
    starts: list[int],
    expected: list[int | None],
    clusters: range,
) -> None:
    """An offsets column decoded cluster by cluster (``starts``: where each cluster's
    offsets begin in ``values``), each from 0: checked against the items the page lists
    give (``expected``, per cluster), then continued from the end of the cluster before."""
    for k in range(len(starts)):
        stop = starts[k + 1] if k + 1 < len(starts) else len(values)
        within = values[starts[k] : stop]
        items = expected[k] if k < len(expected) else None
        if items is not None:
            bad = _offsets_fault(within, items)
            if bad >= 0:
                raise ValueError(
                    f"field {column.name}: the list offsets of cluster {clusters[k]} are "
                    f"damaged (entry {bad} of {len(within)}; {items:,} items)"
                )
        if k:
            within += values[starts[k] - 1]
