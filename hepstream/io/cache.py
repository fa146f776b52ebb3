"""Bounded read-ahead cache of byte segments, least recently used first out."""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict


class ReadAheadCache:
    """Holds fetched byte segments of one file; the total never exceeds ``capacity``.

    A lookup hits when one cached segment covers the whole wanted range. Segments
    larger than the capacity are never stored.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._segments: OrderedDict[int, bytes] = OrderedDict()
        self._starts: list[int] = []
        self._held = 0
        self.peak = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Bytes currently cached."""
        return self._held

    def get(self, start: int, stop: int, once: bool = False) -> memoryview | None:
        """The bytes ``[start, stop)`` (a zero-copy view) if a segment covers them, else None.

        ``once`` marks a read that will not come again (a streaming job reads each basket
        once): the segment is not promoted, and once read to its end it goes first at the
        next eviction, so consumed data makes room before prefetched data that is still
        to be read.
        """
        with self._lock:
            index = bisect.bisect_right(self._starts, start) - 1
            # Segments may overlap; look back a few for one that covers the range.
            while index >= 0:
                seg_start = self._starts[index]
                data = self._segments[seg_start]
                if seg_start + len(data) >= stop:
                    if not once:
                        self._segments.move_to_end(seg_start)
                    elif seg_start + len(data) == stop:
                        self._segments.move_to_end(seg_start, last=False)
                    self.hits += 1
                    return memoryview(data)[start - seg_start : stop - seg_start]
                if start - seg_start > self.capacity:
                    break
                index -= 1
            self.misses += 1
            return None

    def covers(self, start: int, stop: int) -> bool:
        """True if ``[start, stop)`` is cached; no hit or miss is counted."""
        with self._lock:
            index = bisect.bisect_right(self._starts, start) - 1
            while index >= 0:
                seg_start = self._starts[index]
                if seg_start + len(self._segments[seg_start]) >= stop:
                    return True
                if start - seg_start > self.capacity:
                    return False
                index -= 1
            return False

    def resize(self, capacity: int) -> None:
        """Change the bound, evicting least recently used segments to fit."""
        with self._lock:
            self.capacity = capacity
            self._evict_to(capacity)

    def _evict_to(self, limit: int) -> None:
        while self._segments and self._held > limit:
            victim, victim_data = self._segments.popitem(last=False)
            self._held -= len(victim_data)
            del self._starts[bisect.bisect_left(self._starts, victim)]

    def put(self, start: int, data: bytes) -> bool:
        """Store a segment, evicting the least recently used; False if it can never fit."""
        size = len(data)
        if size == 0 or size > self.capacity:
            return False
        with self._lock:
            old = self._segments.pop(start, None)
            if old is not None:
                self._held -= len(old)
                del self._starts[bisect.bisect_left(self._starts, start)]
            self._evict_to(self.capacity - size)
            self._segments[start] = data
            bisect.insort(self._starts, start)
            self._held += size
            self.peak = max(self.peak, self._held)
            return True

    def clear(self) -> None:
        """Drop every segment."""
        with self._lock:
            self._segments.clear()
            self._starts.clear()
            self._held = 0
