"""Plan requests: turn many wanted byte ranges into few vector reads (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from hepstream.io.config import XRD_MAX_VECTOR_ELEMENT_BYTES, XRD_MAX_VECTOR_ELEMENTS


@dataclass(frozen=True)
class Request:
    """One backend request: the byte segments of one vector read, in file order."""

    segments: tuple[tuple[int, int], ...]

    @property
    def nbytes(self) -> int:
        return sum(stop - start for start, stop in self.segments)


def merge_ranges(ranges: Iterable[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Sorted, merged segments covering ``ranges``; neighbours closer than ``gap`` join."""
    merged: list[tuple[int, int]] = []
    # plain ints: ranges often come from numpy arrays, and the XRootD bindings take only int
    for start, stop in sorted((int(a), int(b)) for a, b in ranges):
        if merged and start <= merged[-1][1] + gap:
            if stop > merged[-1][1]:
                merged[-1] = (merged[-1][0], stop)
        else:
            merged.append((start, stop))
    return merged


def _split(segment: tuple[int, int], limit: int) -> list[tuple[int, int]]:
    start, stop = segment
    return [(s, min(s + limit, stop)) for s in range(start, stop, limit)]


def plan_requests(
    ranges: Sequence[tuple[int, int]],
    *,
    gap: int,
    max_request_bytes: int,
    max_elements: int = XRD_MAX_VECTOR_ELEMENTS,
    max_element_bytes: int = XRD_MAX_VECTOR_ELEMENT_BYTES,
) -> list[Request]:
    """Group wanted ranges into vector-read requests within the protocol's limits.

    Every wanted byte is covered by exactly one request's segments; each request has
    at most ``max_elements`` segments of at most ``max_element_bytes`` each and holds
    about ``max_request_bytes`` at most (a single segment may be larger).
    """
    requests: list[Request] = []
    current: list[tuple[int, int]] = []
    size = 0
    for merged in merge_ranges(ranges, gap):
        for piece in _split(merged, max_element_bytes):
            piece_size = piece[1] - piece[0]
            if current and (len(current) >= max_elements or size + piece_size > max_request_bytes):
                requests.append(Request(tuple(current)))
                current, size = [], 0
            current.append(piece)
            size += piece_size
    if current:
        requests.append(Request(tuple(current)))
    return requests
