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
import xxhash

from hepstream.io.spans import PAGE_CHECKSUM, ColumnPages
from hepstream.root.decode import check_claim, decode_as_they_arrive, decompress_blocks

#: RNTuple column types hepstream decodes (ROOT's numbering, as in uproot.const): bits,
#: plain and split integers, 32- and 64-bit floats, and 32- and 64-bit offsets.
_TYPES = {
    0: "?", 1: "u1", 2: "u1", 3: "i1", 4: "u1", 5: "i2", 6: "u2", 7: "i4", 8: "u4", 9: "i8", 10: "u8",
    12: "f4", 13: "f8", 14: "i4", 15: "i8",
    17: "i2", 18: "u2", 19: "i4", 20: "u4", 21: "i8", 22: "u8", 24: "f4", 25: "f8",
    26: "i4", 27: "i8",
}  # fmt: skip
_SPLIT = frozenset(range(17, 28))
_ZIGZAG = frozenset((17, 19, 21))
_DELTA = frozenset((26, 27))
_OFFSETS = frozenset((14, 15, 26, 27))


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
        if len(ntuple._column_records_dict[record.field_id]) != 1:
            return None  # several representations: uproot picks the active one per cluster
        dtype = np.dtype(_TYPES[kind]).newbyteorder("<")
        if int(record.nbits) != (1 if kind == 0 else 8 * dtype.itemsize):
            return None
        return cls(index, dtype, kind in _SPLIT, kind in _ZIGZAG, kind in _DELTA,
                   kind in _OFFSETS, field_path(ntuple, record.field_id))  # fmt: skip


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
def _unsplit2(src, dst):
    n = len(src) // 2
    for i in range(n):
        dst[2 * i] = src[i]
        dst[2 * i + 1] = src[n + i]


@numba.njit(cache=True, nogil=True)
def _unsplit4(src, dst):
    n = len(src) // 4
    for i in range(n):
        j = 4 * i
        dst[j] = src[i]
        dst[j + 1] = src[n + i]
        dst[j + 2] = src[2 * n + i]
        dst[j + 3] = src[3 * n + i]


@numba.njit(cache=True, nogil=True)
def _unsplit8(src, dst):
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
def _undelta(values):
    """Running sum in place: a page of offsets stored as differences (from 0)."""
    for i in range(1, len(values)):
        values[i] += values[i - 1]


def _unzigzag(values: np.ndarray) -> None:
    """Zigzag-encoded integers in place: ``0, 1, 2, 3, ...`` stand for ``0, -1, 1, -2, ...``."""
    unsigned = values.view(values.dtype.str.replace("i", "u"))
    values[...] = (unsigned >> 1).view(values.dtype) ^ -(unsigned & 1).view(values.dtype)


@numba.njit(cache=True, nogil=True)
def _offsets_fault(values, expected):
    """Where one cluster's offsets ``values`` (each entry's end) break: the first one below
    the one before it (or below 0), ``len(values)`` if the last is not ``expected`` (the
    items the cluster's page lists give), -1 if none."""
    before = 0
    for i in range(len(values)):
        if values[i] < before:
            return i
        before = values[i]
    return -1 if before == expected else len(values)


def decode_page(column: PageColumn, raw: Any, chunk: Any, out: np.ndarray,
                checksum: bool = False) -> None:  # fmt: skip
    """One page's stored bytes ``raw`` decoded into ``out`` (its elements' place in the
    chunk's array, of ``column.dtype``); with ``checksum``, ``raw`` ends with the page's
    xxhash3, checked first."""
    body = memoryview(raw)
    if checksum:
        if len(body) < PAGE_CHECKSUM:
            raise ValueError(f"field {column.name}: a page of {len(body)} bytes has no checksum")
        body, (stored,) = body[:-PAGE_CHECKSUM], _U64.unpack_from(body, len(body) - PAGE_CHECKSUM)
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


def start_pages(columns: list[PageColumn], links: list[list[ColumnPages]], clusters: range,
                source: Any, executor: Executor, items: dict[int, list[int | None]],
                ) -> Callable[[], dict[int, np.ndarray]]:  # fmt: skip
    """Start reading ``clusters`` of ``columns``; the function that waits for them and
    gives each column's elements as uproot's ``read_cluster_range`` gives them (offsets: a
    leading 0, continued across clusters), by column index.

    The pages' byte ranges are asked of ``source`` now, column by column, cluster by
    cluster, page by page: the order of the read plan
    (:func:`hepstream.io.spans.page_ranges`, these columns ``checked``), a page listed
    for several columns once for each. Each page is decoded on ``executor`` as soon as its
    bytes are there, its checksum checked first where it has one.

    ``items[column]``, for offsets columns, gives the items each cluster's page lists hold
    under them (None: not known): each cluster's offsets must rise from 0 to that, or
    the lists would point outside their items.
    """
    ranges: list[tuple[int, int]] = []
    jobs: list[tuple[PageColumn, np.ndarray, bool]] = []
    out: dict[int, np.ndarray] = {}
    edges: dict[int, list[int]] = {}  # offsets columns: where each cluster's elements start
    for column in columns:
        rows = [links[c][column.index] for c in clusters if column.index < len(links[c])]
        lead = 1 if column.offsets else 0
        size = column.dtype.itemsize
        for row in rows:
            for n in row.elements:
                check_claim((n + 7) // 8 if column.bits else n * size, f"a page of {column.name}")
        total = lead + sum(sum(row.elements) for row in rows)
        check_claim(total * size, f"field {column.name} in entries of clusters {clusters}")
        values = out[column.index] = np.empty(total, column.dtype)
        values[:lead] = 0
        at = lead
        edges[column.index] = []
        for row in rows:
            edges[column.index].append(at)
            summed = row.checksums or (False,) * len(row.pages)
            for (offset, nbytes), n, check in zip(row.pages, row.elements, summed, strict=True):
                ranges.append((offset, offset + nbytes + PAGE_CHECKSUM * check))
                jobs.append((column, values[at : at + n], check))
                at += n

    def decode(i: int, chunk: Any) -> None:
        column, target, check = jobs[i]
        decode_page(column, chunk.raw_data, chunk, target, check)

    arrivals = decode_as_they_arrive(source, ranges, executor, decode)

    def finish() -> dict[int, np.ndarray]:
        arrivals.results()
        for column in columns:
            if column.offsets:  # each cluster's offsets start from 0: continue the one before
                values, starts = out[column.index], edges[column.index]
                expected = items.get(column.index, [])
                for k in range(len(starts)):
                    stop = starts[k + 1] if k + 1 < len(starts) else len(values)
                    within = values[starts[k] : stop]
                    if k < len(expected) and expected[k] is not None:
                        bad = _offsets_fault(within, expected[k])
                        if bad >= 0:
                            raise ValueError(
                                f"field {column.name}: the list offsets of cluster "
                                f"{clusters[k]} are damaged (entry {bad} of {len(within)}; "
                                f"{expected[k]:,} items)"
                            )
                    if k:
                        within += values[starts[k] - 1]
        return out

    return finish


# -- page lists ---------------------------------------------------------------------------

#: A page's description in a page list: elements (negative: a checksum follows the page),
#: then a standard locator (size, offset).
_PAGE = np.dtype([("elements", "<i4"), ("nbytes", "<i4"), ("offset", "<u8")])
_LIST = struct.Struct("<qI")  # a list frame: its size (negative), its items
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_SUMMARY = struct.Struct("<qQQ")  # a record frame's size; first entry; entries | flags << 56
_PAGE_LIST_ENVELOPE = 3
_SHARDED = 0x01


def page_lists(ntuple: Any) -> tuple[list[int], list[list[ColumnPages]]]:
    """The first entry of every cluster (and the end), and every column's pages in every
    cluster, of uproot's ``ntuple``: parsed here, or by uproot where a page list holds
    what :func:`read_page_lists` does not read."""
    parsed = read_page_lists(ntuple)
    if parsed is not None:
        return parsed
    clusters = ntuple.cluster_summaries
    offsets = [int(c.num_first_entry) for c in clusters]
    offsets.append(offsets[-1] + int(clusters[-1].num_entries) if clusters else 0)
    links = [[_column_pages(c) for c in cluster] for cluster in ntuple.page_link_list]
    return offsets, links


def _column_pages(column: Any) -> ColumnPages:
    """uproot's description of one column's pages in one cluster, as plain data."""
    pages = column.pages
    checksums = tuple(bool(p.has_checksum) for p in pages)
    return ColumnPages(
        tuple((int(p.locator.offset), int(p.locator.num_bytes)) for p in pages),
        bool(column.suppressed),
        tuple(int(p.num_elements) for p in pages),
        checksums if any(checksums) else (),
    )


def read_page_lists(ntuple: Any) -> tuple[list[int], list[list[ColumnPages]]] | None:
    """:func:`page_lists` from the page list envelopes: one ``struct`` unpack per column
    and cluster, the pages as one numpy view (uproot builds a Python object per page and
    per locator: about 25 ms for a 140-column file). None when a page list holds what
    this does not read (large locators, sharded clusters)."""
    offsets: list[int] = []
    links: list[list[ColumnPages]] = []
    end = 0
    for group in ntuple.footer.cluster_group_records:
        link = group.page_list_link
        locator = link.locator
        if int(locator.type) != 0:  # not a standard locator
            return None
        start, size = int(locator.offset), int(link.env_uncomp_size)
        chunk = ntuple.file.source.chunk(start, start + int(locator.num_bytes))
        body = memoryview(chunk.raw_data)
        data = body if len(body) >= size else memoryview(decompress_blocks(body, size, chunk))  # type: ignore[arg-type]
        parsed = _parse_page_list(data[:size])
        if parsed is None:
            return None
        summaries, rows = parsed
        for first, entries in summaries:
            offsets.append(first)
            end = first + entries
        links.extend(rows)
    offsets.append(end)
    return offsets, links


def _list_frame(buf: memoryview, at: int) -> tuple[int, int]:
    """A list frame's size (negative) and item count at ``at``, if both fit in ``buf``: a
    frame that claims no bytes or more items than bytes would have the parser loop in place
    for up to 2**32 items."""
    frame, count = _LIST.unpack_from(buf, at)
    if -frame < _LIST.size or -frame > len(buf) - at or count > len(buf):
        raise ValueError(f"a list frame of {-frame} bytes and {count} items at byte {at}")
    return frame, count


def _parse_page_list(
    buf: memoryview,
) -> tuple[list[tuple[int, int]], list[list[ColumnPages]]] | None:
    """Cluster summaries and page locations of one page list envelope (RNTuple 1.0)."""
    try:
        (head,) = _U64.unpack_from(buf, 0)
        if head & 0xFFFF != _PAGE_LIST_ENVELOPE or head >> 16 != len(buf):
            raise ValueError(f"not a page list envelope of {len(buf)} bytes")
        (checksum,) = _U64.unpack_from(buf, len(buf) - 8)
        if xxhash.xxh3_64_intdigest(buf[:-8]) != checksum:
            raise ValueError("its checksum does not match")
        at = 16  # after the header's checksum
        frame, count = _list_frame(buf, at)
        summaries = []
        pos = at + _LIST.size
        for _ in range(count):
            size, first, entries = _SUMMARY.unpack_from(buf, pos)
            if size < _SUMMARY.size:
                raise ValueError(f"a cluster summary of {size} bytes")
            if entries >> 56 & _SHARDED:
                return None
            summaries.append((first, entries & 0xFFFFFFFFFFFFFF))
            pos += size
        at -= frame
        frame, clusters = _list_frame(buf, at)
        rows: list[list[ColumnPages]] = []
        cluster_at = at + _LIST.size
        for _ in range(clusters):
            cluster_frame, columns = _list_frame(buf, cluster_at)
            row = []
            column_at = cluster_at + _LIST.size
            for _ in range(columns):
                column_frame, pages = _list_frame(buf, column_at)
                items = np.frombuffer(buf, _PAGE, pages, column_at + _LIST.size)
                if pages and int(items["nbytes"].min()) < 0:
                    return None  # a large locator: uproot reads those
                (element_offset,) = _I64.unpack_from(buf, column_at + _LIST.size + 16 * pages)
                elements = items["elements"]
                row.append(ColumnPages(
                    tuple(zip(items["offset"].tolist(), items["nbytes"].tolist(), strict=True)),
                    element_offset < 0,
                    tuple(np.abs(elements.astype(np.int64)).tolist()),
                    tuple((elements < 0).tolist()) if pages and elements.min() < 0 else (),
                ))  # fmt: skip
                column_at -= column_frame
            rows.append(row)
            cluster_at -= cluster_frame
    except (struct.error, ValueError) as err:
        raise ValueError(f"the RNTuple page list is damaged ({err})") from None
    if len(summaries) != len(rows):
        raise ValueError("the RNTuple page list is damaged (clusters and summaries differ)")
    return summaries, rows
