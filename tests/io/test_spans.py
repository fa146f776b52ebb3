"""The exact read plan, driven directly: pure planning of spans and pages, and the
prefetcher carrying plans out over an in-memory byte store (no server, no uproot)."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from hepstream.io.budget import Budget
from hepstream.io.coalesce import plan_requests
from hepstream.io.prefetch import FileReads, Prefetcher
from hepstream.io.spans import holes, plan_reads
from hepstream.root.pagelists import ColumnPages, page_ranges

BLOB = bytes(random.Random(7).randrange(256) for _ in range(1 << 16))


class Store:
    """Serves vector reads from ``BLOB`` and logs every byte it hands out."""

    def __init__(self, pool: ThreadPoolExecutor | None = None, delay: float = 0.0) -> None:
        self.pool = pool
        self.delay = delay
        self.segments: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def _read(self, segments):
        if self.delay:
            time.sleep(random.random() * self.delay)
        with self.lock:
            self.segments.extend(segments)
        return [BLOB[a:b] for a, b in segments]

    def submit(self, segments) -> Future:
        if self.pool is not None:
            return self.pool.submit(self._read, segments)
        future: Future = Future()
        future.set_result(self._read(segments))
        return future

    @property
    def fetched(self) -> int:
        return sum(b - a for a, b in self.segments)

    def overlaps(self) -> int:
        """Bytes fetched more than once."""
        seen = bytearray(len(BLOB))
        twice = 0
        for a, b in self.segments:
            for i in range(a, b):
                twice += seen[i]
                seen[i] = 1
        return twice


def _reads(plan, store, budget, **kw) -> FileReads:
    return FileReads(plan, store.submit, budget=budget, max_request_bytes=kw.pop("max", 4096), **kw)


def _serve(reads: FileReads, start: int, stop: int) -> bytes:
    served = reads.serve(start, stop)
    assert served is not None, f"{start}-{stop} not planned"
    return bytes(served[0].result(timeout=10))


# -- pure planning --------------------------------------------------------------------------
def test_basket_shared_by_two_chunks_is_one_span_read_twice():
    plan = plan_reads(
        [[(0, 100, False), (100, 150, False)], [(100, 150, False), (150, 300, False)]]
    )
    assert [(s.start, s.stop, s.first_chunk, s.last_chunk, s.reads) for s in plan.spans] == [
        (0, 100, 0, 0, 1),
        (100, 150, 0, 1, 2),
        (150, 300, 1, 1, 1),
    ]
    assert plan.chunk_bytes == (150, 150)
    assert plan.needed_bytes == 300


def test_a_page_shared_by_several_columns_is_one_span_read_by_each():
    """ROOT writes identical pages once (e.g. the offsets of Muon_pt and Muon_eta): the
    locators of several columns point at one range, which uproot then reads per column."""
    plan = plan_reads([[(0, 50, False), (50, 80, False), (0, 50, False), (80, 90, False)]])
    assert [(s.start, s.reads) for s in plan.spans] == [(0, 2), (50, 1), (80, 1)]
    store = Store()
    budget = Budget(1000)
    reads = _reads(plan, store, budget)
    Prefetcher(budget).add(reads)
    for start, stop in [(0, 50), (50, 80), (0, 50), (80, 90)]:
        assert _serve(reads, start, stop) == BLOB[start:stop]
    assert store.fetched == 90
    assert budget.held == 0


def test_adjacent_ranges_stay_apart_and_overlapping_ones_merge():
    plan = plan_reads([[(0, 10, False), (10, 20, False), (15, 30, False), (40, 50, False)]])
    assert [(s.start, s.stop) for s in plan.spans] == [(0, 10), (10, 30), (40, 50)]
    assert plan.where[(15, 30)] == plan.where[(10, 20)] == 1


def test_empty_ranges_and_branches_need_nothing():
    plan = plan_reads([[], [(5, 5, False)], [(0, 8, False)]])
    assert [(s.start, s.stop, s.first_chunk) for s in plan.spans] == [(0, 8, 2)]
    assert plan.chunk_bytes == (0, 0, 8)


def test_order_is_chunk_then_eager_then_the_order_asked():
    plan = plan_reads([[(900, 950, True), (500, 600, False), (100, 200, False)], [(0, 50, False)]])
    assert [(s.start, s.lazy) for s in plan.spans] == [
        (500, False),
        (100, False),
        (900, True),
        (0, False),
    ]


def test_holes_are_what_is_not_covered():
    assert holes(0, 100, [(10, 20), (15, 30), (90, 120)]) == [(0, 10), (30, 90)]
    assert holes(0, 10, []) == [(0, 10)]
    assert holes(0, 10, [(0, 10)]) == []


def test_a_range_larger_than_one_request_is_split():
    requests = plan_requests([(0, 10_000)], gap=0, max_request_bytes=4096, max_element_bytes=3000)
    segments = [seg for req in requests for seg in req.segments]
    assert segments == [(0, 3000), (3000, 6000), (6000, 9000), (9000, 10_000)]
    assert all(req.nbytes <= 4096 or len(req.segments) == 1 for req in requests)


def test_rntuple_pages_of_a_suppressed_column_come_from_its_active_twin():
    # column 0 and 1 are two representations of one field; cluster 1 suppresses column 0
    # (a table: a row per cluster, a column per RNTuple column)
    links = [
        [ColumnPages(((100, 10), (110, 10))), ColumnPages(suppressed=True), ColumnPages(((200, 5),))],
        [ColumnPages(suppressed=True), ColumnPages(((300, 20),)), ColumnPages(((400, 5),))],
        [ColumnPages(((500, 10),)), ColumnPages(suppressed=True)],  # column 2 not written yet
    ]  # fmt: skip
    alternatives = {0: [0, 1], 1: [0, 1], 2: [2]}
    assert page_ranges([0, 2], range(3), links, alternatives) == [
        (100, 110),
        (110, 120),
        (300, 320),
        (500, 510),
        (200, 205),
        (400, 405),
    ]
    assert page_ranges([2], [1], links, alternatives) == [(400, 405)]


# -- carrying a plan out -------------------------------------------------------------------
def test_basket_larger_than_one_request_is_fetched_once_and_reassembled():
    store = Store()
    plan = plan_reads([[(1000, 21_000, False)]])
    reads = _reads(plan, store, Budget(1 << 16), max=4096)
    Prefetcher(reads._budget).add(reads)
    assert _serve(reads, 1000, 21_000) == BLOB[1000:21_000]
    assert store.fetched == 20_000
    assert len(store.segments) > 1
    assert store.overlaps() == 0


def test_shared_basket_is_held_until_the_second_chunk_read_it():
    store = Store()
    plan = plan_reads(
        [[(0, 100, False), (100, 200, False)], [(100, 200, False), (200, 300, False)]]
    )
    budget = Budget(1000)
    reads = _reads(plan, store, budget)
    Prefetcher(budget).add(reads)
    assert _serve(reads, 0, 100) == BLOB[0:100]
    assert _serve(reads, 100, 200) == BLOB[100:200]
    reads.advance(1)
    assert budget.held == 200  # the shared basket and chunk 1's own
    assert _serve(reads, 100, 200) == BLOB[100:200]
    assert _serve(reads, 200, 300) == BLOB[200:300]
    assert budget.held == 0
    assert store.overlaps() == 0


def test_a_span_is_a_view_of_its_segment_only_when_all_of_it_is_given_back_together():
    """A view keeps its whole segment in memory: where one segment holds spans of two
    chunks, its spans are copied out, so bytes given back to the budget with chunk 0 do
    not stay in memory until chunk 1 is read."""
    store = Store()
    plan = plan_reads(
        [[(0, 100, False), (100, 150, False), (500, 600, False)], [(600, 700, False)]]
    )
    budget = Budget(1000)
    reads = _reads(plan, store, budget)
    Prefetcher(budget).add(reads)
    assert sorted(store.segments) == [(0, 150), (500, 700)]  # adjacent spans join

    def backing(start: int, stop: int) -> int:
        served = reads.serve(start, stop)
        assert served is not None
        data = served[0].result(timeout=10)
        assert bytes(data) == BLOB[start:stop]
        return len(data.obj)

    assert backing(0, 100) == backing(100, 150) == 150  # both given back with chunk 0
    assert backing(500, 600) == 100  # copied: its segment-mate is chunk 1's
    reads.advance(1)
    assert backing(600, 700) == 100
    assert budget.held == 0
    assert store.overlaps() == 0


def test_a_chunk_larger_than_the_budget_streams_through_it_in_order():
    store = Store()
    ranges = [(i * 1000, i * 1000 + 1000, False) for i in range(20)]  # 20 kB, budget 3 kB
    plan = plan_reads([ranges])
    budget = Budget(3000)
    reads = _reads(plan, store, budget, max=1000)
    Prefetcher(budget).add(reads)
    for start, stop, _ in ranges:
        assert _serve(reads, start, stop) == BLOB[start:stop]
        assert budget.held <= 3000
    assert budget.peak <= 3000
    assert store.fetched == 20_000
    assert store.overlaps() == 0


def test_lazy_spans_are_reserved_fetched_on_demand_or_dropped():
    store = Store()
    plan = plan_reads([[(0, 100, False), (100, 200, True)], [(200, 300, False), (300, 400, True)]])
    budget = Budget(1000)
    reads = _reads(plan, store, budget)
    Prefetcher(budget).add(reads)
    assert budget.held == 400  # everything reserved, the lazy spans not fetched
    assert store.fetched == 200
    assert _serve(reads, 100, 200) == BLOB[100:200]  # a surviving cluster asks: fetched now
    reads.advance(1)  # chunk 0 done: what it held is given back
    assert budget.held == 200
    reads.advance(2)  # chunk 1 kept nothing past preselection: its spans are dropped
    assert budget.held == 0
    assert store.fetched == 300  # (300, 400) never fetched
    assert reads.serve(300, 400) is None  # past its chunk: a late read goes direct


def test_make_eager_fetches_the_reserved_lazy_spans():
    store = Store()
    plan = plan_reads([[(0, 100, False), (100, 200, True)]])
    budget = Budget(1000)
    reads = _reads(plan, store, budget)
    Prefetcher(budget).add(reads)
    reads.make_eager()
    assert store.fetched == 200


def test_bytes_already_in_memory_are_never_fetched_again():
    store = Store()
    plan = plan_reads([[(0, 100, False), (100, 300, False)]])
    budget = Budget(1000)
    assert budget.try_reserve(150)  # the source reserved the pre-filled pieces
    prefilled = {0: [(0, BLOB[0:100])], 1: [(100, BLOB[100:150])]}
    reads = _reads(plan, store, budget, prefilled=prefilled)
    Prefetcher(budget).add(reads)
    assert _serve(reads, 0, 100) == BLOB[0:100]
    assert _serve(reads, 100, 300) == BLOB[100:300]
    assert store.segments == [(150, 300)]
    assert budget.held == 0


def test_bytes_pre_filled_for_a_later_span_make_room_for_an_earlier_one():
    """The metadata read-ahead may have brought part of a basket read last: holding those
    bytes must not keep the first chunk's span from ever fitting."""
    store = Store()
    plan = plan_reads([[(0, 200, False)], [(1000, 1100, False)]])
    budget = Budget(250)
    assert budget.try_reserve(100)
    reads = _reads(plan, store, budget, prefilled={1: [(1000, BLOB[1000:1100])]})
    prefetcher = Prefetcher(budget, ahead=0)
    prefetcher.add(reads)
    assert _serve(reads, 0, 200) == BLOB[0:200]
    reads.advance(1)
    prefetcher.pump()
    assert _serve(reads, 1000, 1100) == BLOB[1000:1100]  # fetched again, correct
    assert budget.held == 0


def test_files_are_admitted_in_job_order_whichever_is_planned_first():
    store = Store()
    budget = Budget(250)
    prefetcher = Prefetcher(budget, ahead=None)
    second = _reads(plan_reads([[(1000, 1200, False)]]), store, budget)
    prefetcher.add(second, 1)
    assert store.fetched == 0  # file 0 is not planned yet: file 1 waits
    first = _reads(plan_reads([[(0, 200, False)]]), store, budget)
    prefetcher.add(first, 0)
    assert store.segments == [(0, 200)]  # file 1 does not fit beside it yet
    assert _serve(first, 0, 200) == BLOB[0:200]
    assert store.segments == [(0, 200), (1000, 1200)]
    prefetcher.remove(first)
    assert _serve(second, 1000, 1200) == BLOB[1000:1200]


def test_look_ahead_is_counted_across_file_edges():
    store = Store()
    budget = Budget(1 << 20)
    prefetcher = Prefetcher(budget, ahead=2)
    one = _reads(plan_reads([[(0, 10, False)], [(10, 20, False)]]), store, budget)
    two = _reads(plan_reads([[(100, 110, False)], [(110, 120, False)]]), store, budget)
    prefetcher.add(one, 0)
    prefetcher.add(two, 1)
    # reading chunk 0 of file 0: two more chunks may be in flight, file 0's second and
    # file 1's first (touching spans go out as one segment)
    assert sorted(store.segments) == [(0, 20), (100, 110)]


@pytest.mark.parametrize("seed", range(16))
def test_random_layouts_under_threads_are_exact_bounded_and_fetched_once(seed):
    """Random basket layouts, budgets down to the largest span, a threaded store with
    random delays, read as uproot does: a TTree chunk's baskets asked for at once, an
    RNTuple's pages one at a time. Every byte served is right, each fetched once, the
    bound holds, nothing waits forever."""
    rng = random.Random(seed)
    sequential = rng.random() < 0.5  # RNTuple: page after page, no page in two chunks
    pool = ThreadPoolExecutor(4)
    store = Store(pool, delay=0.002)
    cursor, chunks = 0, []
    for _ in range(rng.randint(1, 6)):
        ranges = []
        for _ in range(rng.randint(0, 8)):
            size = rng.randint(1, 3000)
            ranges.append((cursor, cursor + size, False))
            cursor += size + rng.choice([0, 0, 7, 300])
        if not sequential and chunks and chunks[-1] and rng.random() < 0.3:
            ranges.insert(0, chunks[-1][-1])  # a basket straddling the chunk edge
        rng.shuffle(ranges)
        chunks.append(ranges)
    plan = plan_reads(chunks)
    budget = Budget(max(plan.largest_span, 1) + rng.randint(0, 6000))
    reads = _reads(plan, store, budget, max=rng.choice([512, 2048, 1 << 20]))
    prefetcher = Prefetcher(budget, ahead=rng.choice([None, 0, 1, 2]))
    prefetcher.add(reads)
    try:
        for number, ranges in enumerate(chunks):
            reads.advance(number)
            prefetcher.pump()
            if sequential:
                for start, stop, _ in ranges:
                    assert _serve(reads, start, stop) == BLOB[start:stop]
                    assert budget.held <= budget.limit
            else:
                served = [(start, stop, reads.serve(start, stop)) for start, stop, _ in ranges]
                for start, stop, got in served:
                    if got is None:  # given up to make room: the source reads it directly
                        assert reads.given_up
                        continue
                    assert bytes(got[0].result(timeout=10)) == BLOB[start:stop]
        reads.advance(len(chunks))
        prefetcher.remove(reads)
    finally:
        pool.shutdown(wait=True)
    assert budget.held == 0
    assert budget.peak <= budget.limit
    if not reads.given_up:  # the budget held every chunk beside what later chunks share
        assert store.overlaps() == 0
        assert store.fetched == plan.needed_bytes


def test_a_waiting_read_takes_the_room_of_lazy_spans_nobody_asked_for():
    """Preselecting on a chunk larger than the budget: the lazy spans of a dead cluster
    hold the room a surviving cluster's span needs; they give it up instead of waiting."""
    store = Store()
    lazy = [(i * 100, i * 100 + 100, True) for i in range(6)]
    plan = plan_reads([lazy])
    budget = Budget(300)
    reads = _reads(plan, store, budget)
    Prefetcher(budget).add(reads)
    assert budget.held == 300  # three reserved, three waiting for room
    assert _serve(reads, 500, 600) == BLOB[500:600]  # the last cluster survives
    assert store.segments == [(500, 600)]
    assert reads.serve(0, 100) is None  # given up: a late read would go direct
    assert reads.given_up == 3  # the three reserved first; 3 and 4 fit beside it


def test_a_span_held_for_a_later_chunk_makes_room_when_the_budget_is_too_small():
    store = Store()
    shared = (0, 100, False)
    plan = plan_reads([[shared, (100, 200, False)], [shared, (200, 400, False)], [shared]])
    budget = Budget(250)  # 100 held for chunk 2 + 200 for chunk 1's own span do not fit
    reads = _reads(plan, store, budget)
    Prefetcher(budget, ahead=0).add(reads)
    assert _serve(reads, 0, 100) == BLOB[0:100]
    assert _serve(reads, 100, 200) == BLOB[100:200]
    reads.advance(1)
    got = [reads.serve(0, 100), reads.serve(200, 400)]
    assert bytes(got[1][0].result(timeout=10)) == BLOB[200:400]
    assert bytes(got[0][0].result(timeout=10)) == BLOB[0:100]  # handed out before giving up
    reads.advance(2)
    assert reads.serve(0, 100) is None  # chunk 2 reads it directly
    assert reads.given_up == 1
    assert budget.peak <= 250
