"""Pure planning of a job's reads: which entry ranges make a chunk."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from hepstream.io.config import StreamConfig


def plan_chunks(
    cluster_offsets: Sequence[int], entries_per_chunk: int, *, cut: bool = True
) -> list[tuple[int, int]]:
    """Entry ranges built from whole clusters, each about ``entries_per_chunk`` long.

    Chunks end on cluster boundaries so every basket is read once and decompressed
    once; with ``cut``, a single cluster much larger than the target is cut in equal parts
    so a chunk's memory stays bounded (an RNTuple's are not: uproot decodes whole clusters).
    """
    if entries_per_chunk < 1:
        raise ValueError("entries_per_chunk must be >= 1")
    chunks: list[tuple[int, int]] = []
    start = cluster_offsets[0] if len(cluster_offsets) else 0
    for stop in cluster_offsets[1:]:
        if stop - start >= entries_per_chunk:
            span = stop - start
            if cut and span > 2 * entries_per_chunk:  # an oversized cluster: cut it
                pieces = -(-span // entries_per_chunk)
                edges = [start + span * i // pieces for i in range(pieces + 1)]
                chunks.extend(itertools.pairwise(edges))
            else:
                chunks.append((start, stop))
            start = stop
    if len(cluster_offsets) and start < cluster_offsets[-1]:
        chunks.append((start, cluster_offsets[-1]))
    return chunks


def entries_for_bytes(target_bytes: int, bytes_per_entry: float, limit: int) -> int:
    """Entries per chunk that hold about ``target_bytes`` uncompressed, within [1, limit]."""
    if bytes_per_entry <= 0:
        return max(1, limit)
    return int(max(1, min(limit, target_bytes // bytes_per_entry)))


def passing_spans(boundaries: Sequence[int], mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Entry ranges of the clusters that hold at least one passing event, merged.

    ``boundaries`` are the cluster edges of one chunk (absolute entries, first to last);
    ``mask`` has one value per entry of the chunk. Clusters with no passing event are
    never read beyond the preselection branches.
    """
    origin = boundaries[0]
    spans: list[tuple[int, int]] = []
    for lo, hi in itertools.pairwise(boundaries):
        if mask[lo - origin : hi - origin].any():
            if spans and spans[-1][1] == lo:
                spans[-1] = (spans[-1][0], hi)
            else:
                spans.append((lo, hi))
    return spans


#: An automatically sized cache never grows past this, whatever the layout.
AUTO_CACHE_MAX = 256 << 20


def cache_for_layout(chunk_bytes: Sequence[int], base: StreamConfig, ahead: int = 1) -> int:
    """The automatically sized budget: the chunk being read plus the ``ahead`` ones in
    flight, and the next file's first read (its head and tail read-ahead windows).

    ``chunk_bytes`` are the compressed basket bytes of each planned chunk; the bound
    never drops below ``base.cache`` nor exceeds :data:`AUTO_CACHE_MAX`.
    """
    biggest = max(chunk_bytes, default=0)
    wanted = (1 + ahead) * biggest + 2 * base.readahead
    return int(min(AUTO_CACHE_MAX, max(base.cache, wanted)))


def clip_chunks(
    chunks: Sequence[tuple[int, int]], entry_range: tuple[int, int | None] | None
) -> list[tuple[int, int]]:
    """The chunks of a file restricted to ``entry_range`` ``[start, stop)`` (None: all).

    How the reader applies ``JobSpec.entry_ranges``: a dataset job that reads part of a big
    file plans the whole file's chunks as usual, then keeps the part inside its range.
    Ranges from the splitter fall on cluster edges, so no basket is read twice by two jobs.
    """
    if entry_range is None:
        return list(chunks)
    start, stop = entry_range
    out = []
    for lo, hi in chunks:
        lo, hi = max(lo, start), hi if stop is None else min(hi, stop)
        if lo < hi:
            out.append((lo, hi))
    return out
