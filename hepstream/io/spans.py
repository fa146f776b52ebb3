"""The exact read plan of one file (pure): which bytes each chunk needs, fetched once.

The reader knows, from a file's metadata, the byte range of every basket (TTree) or page
(RNTuple) that each chunk of the job will ask for. :func:`plan_reads` turns those lists into
*spans*: distinct byte intervals, overlapping ranges merged, each fetched once and held until
the last chunk that needs it was served, in the order the job will consume them. Nothing
here does I/O; the prefetcher (:mod:`hepstream.io.prefetch`) carries a plan out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
    merged = _merged(_distinct(chunks))
    # admission order: by first chunk, eager first, then the order the chunk asks
    merged.sort(key=lambda item: item[:3])
    spans = tuple(item[3] for item in merged)
    where = {key: index for index, item in enumerate(merged) for key in item[4]}
    chunk_bytes = [0] * len(chunks)
    for span in spans:
        chunk_bytes[span.first_chunk] += span.size
    return FilePlan(spans, where, tuple(chunk_bytes))


#: A distinct range's bookkeeping: ``[first_chunk, last_chunk, lazy, reads, position]``
#: (lazy: every read of it is; position: where it was first asked for, over all chunks).
_Seen = list[int]
#: A span with its admission key (first chunk, lazy, position) and the ranges it holds.
_Merged = tuple[int, bool, int, Span, list[tuple[int, int]]]


def _distinct(chunks: Sequence[Iterable[Wanted]]) -> dict[tuple[int, int], _Seen]:
    """Every distinct non-empty range the ``chunks`` want, with the chunks that read it and
    the position it was first asked for."""
    info: dict[tuple[int, int], _Seen] = {}
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
    return info


def _merged(info: dict[tuple[int, int], _Seen]) -> list[_Merged]:
    """The spans of the distinct ranges ``info``: overlapping ranges merge into one span
    (file order), combining their bookkeeping."""
    groups: list[list[tuple[int, int]]] = []
    reach = -1
    for key in sorted(info):
        if groups and key[0] < reach:
            groups[-1].append(key)
            reach = max(reach, key[1])
        else:
            groups.append([key])
            reach = key[1]
    merged: list[_Merged] = []
    for group in groups:
        if len(group) == 1:  # the common case: a range no other range overlaps
            key = group[0]
            first, last, lazy, reads, pos = info[key]
            span = Span(key[0], key[1], first, last, bool(lazy), reads)
            merged.append((first, span.lazy, pos, span, group))
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
    return merged


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
