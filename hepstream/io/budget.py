"""The job's memory bound for fetched bytes: one counter every source of a job draws from."""

from __future__ import annotations

import threading
from collections.abc import Callable


class Budget:
    """Bytes a job may hold at once: planned spans (in flight or waiting to be read) and
    cached metadata windows, across all of its open files. Never exceeded: a reservation
    that does not fit is refused, and the caller waits for :meth:`release` to admit it.
    """

    def __init__(self, limit: int) -> None:
        self._limit = int(limit)
        self._held = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def held(self) -> int:
        return self._held

    def try_reserve(self, nbytes: int) -> bool:
        """Take ``nbytes`` if they fit under the limit; False (and nothing taken) if not."""
        with self._lock:
            if self._held + nbytes > self._limit:
                return False
            self._held += nbytes
            self.peak = max(self.peak, self._held)
            return True

    def release(self, nbytes: int) -> None:
        """Give back ``nbytes``; whoever waits for room is told."""
        if nbytes <= 0:
            return
        with self._lock:
            self._held -= nbytes
            if self._held < 0:  # a bookkeeping bug must not hide as more memory
                raise AssertionError(f"budget released {-self._held} bytes more than held")
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def grow(self, limit: int) -> None:
        """Raise the limit (an automatically sized bound, once a file's layout is known)."""
        with self._lock:
            if limit <= self._limit:
                return
            self._limit = int(limit)
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    def on_release(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (no arguments, any thread) whenever room may have been made."""
        with self._lock:
            self._listeners.append(listener)
