import numpy as np
import pytest

from hepstream.io.budget import Budget
from hepstream.io.cache import ReadAheadCache


def test_hit_inside_a_segment_and_miss_outside():
    cache = ReadAheadCache(100)
    assert cache.put(10, bytes(range(50)))
    assert cache.get(20, 30) == bytes(range(10, 20))
    assert cache.get(55, 70) is None
    assert (cache.hits, cache.misses) == (1, 1)


def test_segment_larger_than_capacity_is_refused():
    cache = ReadAheadCache(10)
    assert not cache.put(0, b"x" * 11)
    assert cache.held == 0


def test_least_recently_used_goes_first():
    cache = ReadAheadCache(30)
    cache.put(0, b"a" * 10)
    cache.put(100, b"b" * 10)
    cache.get(0, 5)  # touch the first
    cache.put(200, b"c" * 15)  # evicts the second
    assert cache.get(0, 10) == b"a" * 10
    assert cache.get(100, 110) is None


def test_cache_shares_the_job_budget():
    """What the metadata cache holds counts against the job's one bound: a segment that
    does not fit beside what others hold is refused, and clear() gives its bytes back."""
    budget = Budget(40)
    assert budget.try_reserve(25)  # another file's planned span
    cache = ReadAheadCache(budget)
    assert cache.put(0, b"a" * 10)
    assert cache.put(100, b"b" * 10)  # 45 > 40: the older segment makes room
    assert cache.get(0, 10) is None
    assert not cache.put(200, b"c" * 20)  # 45 > 40 even with the cache empty: refused,
    assert cache.get(100, 110) == b"b" * 10  # and what was cached stays
    assert budget.held == 35
    cache.clear()
    assert budget.held == 25
    assert cache.held == 0


def test_pieces_copy_the_cached_parts_of_a_range():
    cache = ReadAheadCache(100)
    cache.put(0, bytes(range(20)))
    cache.put(50, bytes(range(50, 70)))
    assert cache.pieces(10, 60) == [(10, bytes(range(10, 20))), (50, bytes(range(50, 60)))]
    assert cache.pieces(25, 45) == []


@pytest.mark.parametrize("seed", range(10))
def test_bound_is_never_exceeded_and_data_is_exact(seed):
    rng = np.random.default_rng(seed)
    blob = rng.integers(0, 256, size=200_000, dtype=np.uint8).tobytes()
    cache = ReadAheadCache(16_384)
    for _ in range(2000):
        start = int(rng.integers(0, len(blob) - 1))
        stop = min(len(blob), start + int(rng.integers(1, 20_000)))
        if rng.random() < 0.5:
            cache.put(start, blob[start:stop])
        else:
            got = cache.get(start, stop)
            assert got is None or got == blob[start:stop]
        assert cache.held <= cache.capacity
    assert cache.peak <= cache.capacity
