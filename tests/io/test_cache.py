import numpy as np
import pytest

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


def test_data_read_once_makes_room_before_data_still_to_be_read():
    """A streaming job reads each basket once: consumed segments leave first, so a new
    prefetch does not evict the next chunk it was fetched ahead of."""
    cache = ReadAheadCache(30)
    cache.put(0, b"a" * 10)  # the chunk being read
    cache.put(100, b"b" * 10)  # the next chunk, prefetched
    assert cache.get(0, 4, once=True) == b"a" * 4  # partly read: keeps its place
    assert cache.get(4, 10, once=True) == b"a" * 6  # read to its end: first to go
    cache.put(200, b"c" * 15)  # the chunk after, prefetched
    assert cache.get(100, 110, once=True) == b"b" * 10
    assert cache.get(0, 10) is None


def test_partly_read_segment_is_not_promoted():
    cache = ReadAheadCache(30)
    cache.put(0, b"a" * 10)
    cache.put(100, b"b" * 10)
    cache.get(0, 5, once=True)  # unlike a plain get, no promotion
    cache.put(200, b"c" * 15)
    assert cache.get(0, 10) is None
    assert cache.get(100, 110) == b"b" * 10


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
            got = cache.get(start, stop, once=bool(rng.random() < 0.5))
            assert got is None or got == blob[start:stop]
        assert cache.held <= cache.capacity
    assert cache.peak <= cache.capacity
