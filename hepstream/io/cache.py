"""Metadata read-ahead cache: the windows fetched around small reads that no read plan
holds (a file's metadata, which the format reader walks before it knows what to read),
least recently used first out. Planned spans never go through it: the read plan fetches
those exactly.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from hepstream.io.budget import Budget


class ReadAheadCache:
    """Fetched byte segments of one file; what it holds is reserved from ``budget``.

    A lookup hits when one cached segment covers the whole wanted range. A segment the
    budget has no room for is not stored (the read it came with is served all the same).
    """

    def __init__(self, budget: Budget | int) -> None:
        self._budget = budget if isinstance(budget, Budget) else Budget(budget)
        self._segments: OrderedDict[int, bytes] = OrderedDict()
        self._starts: list[int] = []
        self._held = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes currently cached."""
        return self._held

    @property
    def capacity(self) -> int:
        """The bound it shares (its budget's limit)."""
        return self._budget.limit

    @property
    def peak(self) -> int:
        """Most bytes its budget ever held."""
        return self._budget.peak

    def get(self, start: int, stop: int) -> memoryview | None:
        """The bytes ``[start, stop)`` (a zero-copy view) if a segment covers them, else None."""
        with self._lock:
            found = self._find(start, stop)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            self._segments.move_to_end(found)
            data = self._segments[found]
            return memoryview(data)[start - found : stop - found]

    def _find(self, start: int, stop: int) -> int | None:
        index = bisect.bisect_right(self._starts, start) - 1
        while index >= 0:  # segments may overlap: look back for one that covers the range
            seg_start = self._starts[index]
            if seg_start + len(self._segments[seg_start]) >= stop:
                return seg_start
            index -= 1
        return None

    def pieces(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        """Copies of the cached parts of ``[start, stop)``, as (offset, bytes), no overlaps."""
        out: list[tuple[int, bytes]] = []
        with self._lock:
            for seg_start in self._starts:
                data = self._segments[seg_start]
                lo, hi = max(start, seg_start), min(stop, seg_start + len(data))
                if lo >= hi:
                    continue
                if out and lo < out[-1][0] + len(out[-1][1]):  # overlapping segments
                    lo = out[-1][0] + len(out[-1][1])
                    if lo >= hi:
                        continue
                out.append((lo, bytes(memoryview(data)[lo - seg_start : hi - seg_start])))
        return out

    def put(self, start: int, data: bytes) -> bool:
        """Store a segment, evicting least recently used ones; False if it cannot fit."""
        size = len(data)
        if size == 0:
            return False
        with self._lock:
            if start in self._segments:
                return True
            if size > self._budget.limit - (self._budget.held - self._held):
                return False  # would not fit even alone: keep what is cached
            while not self._budget.try_reserve(size):
                if not self._segments:
                    return False
                self._evict_one()
            self._segments[start] = data
            bisect.insort(self._starts, start)
            self._held += size
            return True

    def _evict_one(self) -> None:
        victim, data = self._segments.popitem(last=False)
        del self._starts[bisect.bisect_left(self._starts, victim)]
        self._held -= len(data)
        self._budget.release(len(data))

    def clear(self) -> None:
        """Drop every segment and give its bytes back to the budget."""
        with self._lock:
            held = self._held
            self._segments.clear()
            self._starts.clear()
            self._held = 0
        self._budget.release(held)
