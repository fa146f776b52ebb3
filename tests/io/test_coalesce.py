import numpy as np
import pytest

from hepstream.io.coalesce import merge_ranges, plan_requests


def test_merge_joins_close_and_overlapping_ranges():
    assert merge_ranges([(100, 200), (0, 10), (15, 20), (190, 250)], gap=5) == [
        (0, 20),
        (100, 250),
    ]
    assert merge_ranges([(0, 10), (20, 30)], gap=0) == [(0, 10), (20, 30)]


@pytest.mark.parametrize("seed", range(20))
def test_plan_covers_every_byte_within_protocol_limits(seed):
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.integers(0, 50_000_000, size=rng.integers(1, 3000)))
    ranges = [(int(s), int(s + rng.integers(1, 3_000_000))) for s in starts]
    requests = plan_requests(
        ranges, gap=4096, max_request_bytes=8 << 20, max_elements=64, max_element_bytes=1 << 20
    )
    segments = [seg for req in requests for seg in req.segments]
    assert all(len(req.segments) <= 64 for req in requests)
    assert all(stop - start <= 1 << 20 for start, stop in segments)
    assert segments == sorted(segments)
    # every wanted range lies inside the union of planned segments
    merged = merge_ranges(segments, gap=0)
    for start, stop in ranges:
        assert any(m0 <= start and stop <= m1 for m0, m1 in merged)
    # requests stay near the byte budget: only a lone element may exceed it
    for req in requests:
        assert req.nbytes <= 8 << 20 or len(req.segments) == 1


def test_plan_of_nothing_is_empty():
    assert plan_requests([], gap=0, max_request_bytes=1) == []


def test_plan_hands_out_plain_ints_for_numpy_input():
    ranges = [(np.int64(10), np.int64(20)), (np.int64(5_000_000), np.int64(5_000_100))]
    for request in plan_requests(ranges, gap=0, max_request_bytes=1 << 20):
        for start, stop in request.segments:
            assert type(start) is int
            assert type(stop) is int
