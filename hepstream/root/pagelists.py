"""RNTuple page lists: where each column's pages lie in each cluster, as plain data, and
the byte ranges a read of some columns and clusters asks for.

An RNTuple's footer points to page list envelopes, one per cluster group: the clusters'
first entries and sizes, then for every cluster and column the pages' element counts and
locators. :func:`page_lists` parses them (:func:`read_page_lists`; uproot's own parse where
an envelope holds what that does not read) into :class:`ColumnPages`;
:func:`page_ranges` turns them into the ranges the read plan and the page decoder share.
"""

from __future__ import annotations

import struct
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xxhash

from hepstream.root.decompress import decompress_blocks

#: Bytes of the xxhash3 checksum that follows an RNTuple page written with checksums (the
#: page's locator does not count them).
PAGE_CHECKSUM = 8


@dataclass(frozen=True)
class ColumnPages:
    """One RNTuple column in one cluster: its pages' ``(offset, nbytes)`` and element
    counts, or suppressed (another representation of the same field holds the data in
    that cluster); ``checksums``: which pages are followed by their checksum (empty: none)."""

    pages: tuple[tuple[int, int], ...] = ()
    suppressed: bool = False
    elements: tuple[int, ...] = ()
    checksums: tuple[bool, ...] = ()


def page_ranges(
    columns: Sequence[int],
    clusters: Iterable[int],
    links: Sequence[Sequence[ColumnPages]],
    alternatives: Mapping[int, Sequence[int]],
    checked: Container[int] = (),
) -> list[tuple[int, int]]:
    """Byte ranges of the RNTuple pages that hold ``columns`` in ``clusters``, in the order
    uproot reads them: column by column, cluster by cluster, page by page.

    ``links[cluster][column]`` describes a column's pages in a cluster (a cluster may list
    fewer columns than the header: a column added later has none there);
    ``alternatives[column]`` lists the columns of the same field, in order, one of which
    is active where ``column`` is suppressed. The pages of ``checked`` columns are read
    with the checksum that follows them, where they have one.
    """
    clusters = list(clusters)
    out: list[tuple[int, int]] = []
    for column in columns:
        check = column in checked
        for cluster in clusters:
            pages = active_pages(column, links[cluster], alternatives)
            if pages is None:
                continue
            if check and pages.checksums:
                out.extend(
                    (offset, offset + size + PAGE_CHECKSUM * summed)
                    for (offset, size), summed in zip(pages.pages, pages.checksums, strict=True)
                )
            else:
                out.extend((offset, offset + size) for offset, size in pages.pages)
    return out


def active_pages(
    column: int, row: Sequence[ColumnPages], alternatives: Mapping[int, Sequence[int]]
) -> ColumnPages | None:
    """The pages that hold ``column`` in one cluster (``row``): its own, or those of the
    field's representation active where it is suppressed; None where it has none."""
    if column < len(row) and row[column].suppressed:
        column = next(
            c for c in alternatives.get(column, ()) if c < len(row) and not row[c].suppressed
        )
    return row[column] if column < len(row) else None


# -- parsing ------------------------------------------------------------------------------

#: A page's description in a page list: elements (negative: a checksum follows the page),
#: then a standard locator (size, offset).
_PAGE = np.dtype([("elements", "<i4"), ("nbytes", "<i4"), ("offset", "<u8")])
_LIST = struct.Struct("<qI")  # a list frame: its size (negative), its items
_I64 = struct.Struct("<q")
_U64 = struct.Struct("<Q")
_SUMMARY = struct.Struct("<qQQ")  # a record frame's size; first entry; entries | flags << 56
_PAGE_LIST_ENVELOPE = 3
_SHARDED = 0x01

#: The first entry of every cluster (and the end), and every column's pages per cluster.
PageLists = tuple[list[int], list[list[ColumnPages]]]


def page_lists(ntuple: Any) -> PageLists:
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


def read_page_lists(ntuple: Any) -> PageLists | None:
    """:func:`page_lists` from the page list envelopes: one ``struct`` unpack per column
    and cluster, the pages as one numpy view (uproot builds a Python object per page and
    per locator). None when a page list holds what this does not read (large locators,
    sharded clusters)."""
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
        if len(body) < size:  # compressed
            # numpy arrays are buffers: numpy's stubs say so only from Python 3.12 on
            body = memoryview(decompress_blocks(body, size, chunk))  # type: ignore[arg-type]
        parsed = _parse_page_list(body[:size])
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
        summaries = _summaries(buf, at + _LIST.size, count)
        rows = None if summaries is None else _clusters(buf, at - frame)
    except (struct.error, ValueError) as err:
        raise ValueError(f"the RNTuple page list is damaged ({err})") from None
    if summaries is None or rows is None:
        return None
    if len(summaries) != len(rows):
        raise ValueError("the RNTuple page list is damaged (clusters and summaries differ)")
    return summaries, rows


def _summaries(buf: memoryview, pos: int, count: int) -> list[tuple[int, int]] | None:
    """The ``count`` cluster summaries from ``pos`` on: each cluster's first entry and
    entries; None if a cluster is sharded (not read here)."""
    summaries = []
    for _ in range(count):
        size, first, entries = _SUMMARY.unpack_from(buf, pos)
        if size < _SUMMARY.size:
            raise ValueError(f"a cluster summary of {size} bytes")
        if entries >> 56 & _SHARDED:
            return None
        summaries.append((first, entries & 0xFFFFFFFFFFFFFF))
        pos += size
    return summaries


def _clusters(buf: memoryview, at: int) -> list[list[ColumnPages]] | None:
    """The clusters' list frame at ``at``: every column's pages in every cluster; None if
    a page has a large locator (not read here)."""
    _, clusters = _list_frame(buf, at)
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
            row.append(
                ColumnPages(
                    tuple(zip(items["offset"].tolist(), items["nbytes"].tolist(), strict=True)),
                    element_offset < 0,
                    tuple(np.abs(elements.astype(np.int64)).tolist()),
                    tuple((elements < 0).tolist()) if pages and elements.min() < 0 else (),
                )
            )
            column_at -= column_frame
        rows.append(row)
        cluster_at -= cluster_frame
    return rows
