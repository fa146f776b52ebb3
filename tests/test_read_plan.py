"""hepstream.root.chunks, the pure read planning: chunks from cluster edges, chunk size from bytes,
preselection spans, cache size from the basket layout. (tests/cloud/test_plan.py covers the
cloud shim's planner; pytest needs distinct basenames.)"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

import numpy as np
import pytest

from hepstream.root.chunks import (
    AUTO_CACHE_MAX,
    cache_for_layout,
    entries_for_bytes,
    passing_spans,
    plan_chunks,
)


def test_chunks_end_on_cluster_edges() -> None:
    edges = [0, 10, 20, 30, 40, 50, 60]
    assert plan_chunks(edges, 25) == [(0, 30), (30, 60)]
    assert plan_chunks(edges, 10) == list(itertools.pairwise(edges))


def test_short_tail_becomes_its_own_chunk() -> None:
    assert plan_chunks([0, 10, 20, 25], 20) == [(0, 20), (20, 25)]


def test_oversized_cluster_is_cut_in_equal_parts() -> None:
    chunks = plan_chunks([0, 5, 105], 20)
    assert chunks == [(0, 17), (17, 35), (35, 52), (52, 70), (70, 87), (87, 105)]


def test_no_clusters_no_chunks() -> None:
    assert plan_chunks([0], 10) == []
    assert plan_chunks([], 10) == []
    with pytest.raises(ValueError, match="entries_per_chunk"):
        plan_chunks([0, 10], 0)


def test_chunks_tile_the_entries_whatever_the_layout() -> None:
    rng = random.Random(11)
    for _ in range(300):
        edges = [0]
        for _ in range(rng.randint(1, 30)):
            edges.append(edges[-1] + rng.choice([1, 7, 100, 1000, 25_000]))
        target = rng.choice([1, 50, 5_000, 40_000])
        chunks = plan_chunks(edges, target)
        assert chunks[0][0] == 0
        assert chunks[-1][1] == edges[-1]
        for (_, stop), (start, _) in itertools.pairwise(chunks):
            assert stop == start  # contiguous, no entry twice or never
        for start, stop in chunks:
            assert 0 < stop - start <= 2 * target  # memory per chunk stays bounded
        if target > max(b - a for a, b in itertools.pairwise(edges)):
            assert {a for a, _ in chunks} <= set(edges)  # no cluster too big: whole clusters


def test_entries_for_bytes_stays_in_range() -> None:
    assert entries_for_bytes(8 << 20, 200.0, 1_000_000) == (8 << 20) // 200
    assert entries_for_bytes(8 << 20, 200.0, 1_000) == 1_000
    assert entries_for_bytes(10, 1e9, 1_000) == 1
    assert entries_for_bytes(10, 0.0, 500) == 500


def test_passing_spans_merge_neighbouring_live_clusters() -> None:
    boundaries = [100, 110, 120, 130, 140]
    mask = np.zeros(40, bool)
    mask[[3, 15, 35]] = True  # clusters 0, 1 and 3 alive
    assert passing_spans(boundaries, mask) == [(100, 120), (130, 140)]
    assert passing_spans(boundaries, np.zeros(40, bool)) == []
    assert passing_spans(boundaries, np.ones(40, bool)) == [(100, 140)]


@dataclass(frozen=True)
class _Stream:
    cache: int = 10 << 20
    readahead: int = 1 << 20


def test_cache_holds_the_chunk_read_those_fetched_ahead_and_the_metadata() -> None:
    chunks = [7 << 20, 8 << 20, 3 << 20]
    assert cache_for_layout(chunks, _Stream(), ahead=1) == 2 * (8 << 20) + (2 << 20)
    assert cache_for_layout(chunks, _Stream(), ahead=2) == 3 * (8 << 20) + (2 << 20)


def test_cache_never_below_the_configured_nor_above_the_cap() -> None:
    assert cache_for_layout([1000], _Stream()) == 10 << 20
    assert cache_for_layout([], _Stream()) == 10 << 20
    assert cache_for_layout([1 << 30], _Stream(), ahead=2) == AUTO_CACHE_MAX
