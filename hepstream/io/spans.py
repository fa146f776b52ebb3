"""The exact read plan of one file (pure): which bytes each chunk needs, fetched once.

The reader knows, from a file's metadata, the byte range of every basket (TTree) or page
(RNTuple) that each chunk of the job will ask for. :func:`plan_reads` turns those lists into
*spans*: distinct byte intervals, overlapping ranges merged, each fetched once and held until
the last chunk that needs it was served, in the order the job will consume them. Nothing
here does I/O; the prefetcher (:mod:`hepstream.io.prefetch`) carries a plan out.
"""

from __future__ import annotations

from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass

#: One wanted byte range of a chunk: ``(start, stop, lazy)``. ``lazy`` ranges (branches a
#: preselection may make unnecessary) are reserved in the budget but fetched only on demand.
Wanted = tuple[int, int, bool]


@dataclass(frozen=True)
class Span:
    """A distinct byte interval of the file, fetched once."""

    start: int
    stop: int
    #: First chunk that reads it: spans are admitted in chunk order.
    first_chunk: int
    #: Last chunk that reads it: it is held until served there, or dropped once past it.
    last_chunk: int
    #: True when every range in it is lazy (fetched only when asked for).
    lazy: bool
    #: How many reads (one per chunk and range) it will serve at most.
    reads: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class FilePlan:
    """A file's spans in admission order, and where each wanted range lives."""

    spans: tuple[Span, ...]
    #: ``(start, stop)`` of every wanted range -> index of the span that holds it.
    where: dict[tuple[int, int], int]
    #: Bytes each chunk needs that no earlier chunk already brought (eager and lazy).
    chunk_bytes: tuple[int, ...]

    @property
    def needed_bytes(self) -> int:
        return sum(span.size for span in self.spans)

    @property
    def largest_span(self) -> int:
        return max((span.size for span in self.spans), default=0)


def plan_reads(chunks: Sequence[Iterable[Wanted]]) -> FilePlan:
    """The spans of a file from the ranges each chunk wants, in the order it asks for them.

    A range asked for several times (a basket straddling a chunk edge; an RNTuple page that
    ROOT wrote once for several columns with identical content) becomes one span, read each
    time; overlapping ranges merge into one span; touching ranges stay apart (each is a
    read of its own); empty ranges need no bytes and are left out. Spans are ordered by the
    first chunk that reads them, eager before lazy, then in the order that chunk asks.
    """
    # 1. every distinct non-empty range, with the chunks that read it and its first position
    info: dict[tuple[int, int], list] = {}  # range -> [first_chunk, last_chunk, lazy, reads, pos]
    position = 0
    for number, wanted in enumerate(chunks):
        for start, stop, lazy in wanted:
            key = (int(start), int(stop))
            if key[1] <= key[0]:
                continue
            entry = info.get(key)
            if entry is None:
                info[key] = [number, number, lazy, 1, position]
                position += 1
            else:
                entry[1] = number
                entry[2] = entry[2] and lazy
                entry[3] += 1
    # 2. overlapping ranges merge into one span (file order), combining their bookkeeping
    groups: list[list[tuple[int, int]]] = []
    reach = -1
    for key in sorted(info):
        if groups and key[0] < reach:
            groups[-1].append(key)
            reach = max(reach, key[1])
        else:
            groups.append([key])
            reach = key[1]
    merged = []
    for group in groups:
        if len(group) == 1:  # the common case: a range no other range overlaps
            key = group[0]
            first, last, lazy, reads, pos = info[key]
            span = Span(key[0], key[1], first, last, lazy, reads)
            merged.append((first, lazy, pos, span, group))
            continue
        entries = [info[key] for key in group]
        first = min(e[0] for e in entries)
        span = Span(
            start=group[0][0],
            stop=max(key[1] for key in group),
            first_chunk=first,
            last_chunk=max(e[1] for e in entries),
            lazy=all(e[2] for e in entries),
            reads=sum(e[3] for e in entries),
        )
        merged.append((first, span.lazy, min(e[4] for e in entries), span, group))
    # 3. admission order: by first chunk, eager first, then the order the chunk asks
    merged.sort(key=lambda item: item[:3])
    spans = tuple(item[3] for item in merged)
    where = {key: index for index, item in enumerate(merged) for key in item[4]}
    chunk_bytes = [0] * len(chunks)
    for span in spans:
        chunk_bytes[span.first_chunk] += span.size
    return FilePlan(spans, where, tuple(chunk_bytes))


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


def holes(start: int, stop: int, covered: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[start, stop)`` not inside any of the ``covered`` intervals."""
    out: list[tuple[int, int]] = []
    cursor = start
    for lo, hi in sorted(covered):
        if hi <= cursor or lo >= stop:
            continue
        if lo > cursor:
            out.append((cursor, lo))
        cursor = max(cursor, hi)
        if cursor >= stop:
            break
    if cursor < stop:
        out.append((cursor, stop))
    return out
