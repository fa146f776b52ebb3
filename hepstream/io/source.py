"""hepstream's uproot ``Source``: read-ahead, bounded cache and vector reads over a backend."""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace

import uproot.source.chunk
import uproot.source.futures

from hepstream.errors import InputError
from hepstream.io.cache import ReadAheadCache
from hepstream.io.coalesce import plan_requests
from hepstream.io.config import StreamConfig
from hepstream.io.local import LocalBackend
from hepstream.io.xrootd import XRootDBackend, configure_client, expand_remote


def is_remote(path: str) -> bool:
    """True for XRootD URLs (``root://``, ``xroot://`` and their TLS forms)."""
    return path.split("://", 1)[0] in ("root", "roots", "xroot", "xroots")


@dataclass
class IOStats:
    """What one source moved: backend traffic and cache behaviour."""

    bytes_read: int = 0
    requests: int = 0
    vector_reads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_peak: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)

    def asdict(self) -> dict[str, int]:
        out = asdict(self)
        del out["latencies"]
        return out


class StreamingSource(uproot.source.chunk.Source):
    """An uproot ``Source`` for local paths and ``root://`` URLs.

    Small reads are extended by the read-ahead window; scattered basket reads are
    coalesced into parallel vector reads; fetched segments go through a cache whose
    size never exceeds ``StreamConfig.cache``. Pass it to uproot as
    ``uproot.open(path, handler=StreamingSource, hepstream_config=config)``.
    """

    def __init__(self, file_path: str, **options) -> None:
        super().__init__()
        self.config: StreamConfig = options.get("hepstream_config") or StreamConfig()
        self._file_path = file_path
        if is_remote(file_path):
            configure_client(self.config.connection_retry, self.config.connection_window)
            self._backend = XRootDBackend(file_path, timeout=self.config.timeout)
        else:
            self._backend = LocalBackend(file_path)
        self._num_bytes = self._backend.size
        self._cache = ReadAheadCache(self.config.cache)
        self._pool = ThreadPoolExecutor(
            self.config.parallel_requests, thread_name_prefix="hepstream-io"
        )
        self._lock = threading.Lock()
        self._io = IOStats()
        self._inflight: list[tuple[int, int, Future]] = []
        self._closed = False

    # -- backend edge -------------------------------------------------------------------
    def _fetch(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]:
        began = time.perf_counter()
        data = self._backend.readv(segments)
        elapsed = time.perf_counter() - began
        with self._lock:
            self._io.requests += 1
            self._io.vector_reads += len(segments) > 1
            self._io.bytes_read += sum(len(d) for d in data)
            self._io.latencies.append(elapsed)
        for start, piece in _contiguous(segments, data):
            self._cache.put(start, piece)
        return data

    def _tail_segment(self, first: tuple[int, int]) -> tuple[int, int] | None:
        """On the first read, the file's last read-ahead window too: a ROOT file keeps its
        keys, streamers and tree metadata at the end, so opening costs one round trip."""
        if self._io.requests or not self.config.readahead:
            return None
        start = max(first[1], self._num_bytes - self.config.readahead)
        if (
            start >= self._num_bytes
            or first[1] - first[0] + self._num_bytes - start > self.config.cache
        ):
            return None
        return (start, self._num_bytes)

    def prefetch(self, ranges: list[tuple[int, int]]) -> int:
        """Start fetching ``ranges`` into the cache in the background; bytes requested.

        Only what is not cached yet is fetched, and only when it fits in half the
        cache, so a prefetch never evicts the data it is meant to provide.
        """
        wanted = [(a, b) for a, b in ranges if not self._cache.covers(a, b)]
        total = sum(b - a for a, b in wanted)
        if not wanted or total > self.config.cache // 2:
            return 0
        for request in plan_requests(
            wanted, gap=self.config.coalesce_gap, max_request_bytes=self.config.max_request_bytes
        ):
            future = self._pool.submit(self._fetch, request.segments)
            with self._lock:
                self._inflight.append((request.segments[0][0], request.segments[-1][1], future))
        return total

    def _wait_inflight(self, ranges: list[tuple[int, int]]) -> None:
        """Block until prefetches overlapping ``ranges`` landed in the cache."""
        with self._lock:
            self._inflight = [item for item in self._inflight if not item[2].done()]
            pending = list(self._inflight)
        if not pending or not ranges:
            return
        lo = min(a for a, _ in ranges)
        hi = max(b for _, b in ranges)
        overlapping = [f for start, stop, f in pending if start < hi and stop > lo]
        wait(overlapping)  # a failed prefetch is retried, and reported, by the demand read

    def resize(self, *, readahead: int | None = None, cache: int | None = None) -> None:
        """Change the read-ahead window or cache bound, e.g. once the basket layout is known."""
        changes = {}
        if readahead is not None:
            changes["readahead"] = readahead
        if cache is not None:
            changes["cache"] = cache
            self._cache.resize(cache)
        self.config = replace(self.config, **changes)

    # -- uproot Source interface --------------------------------------------------------
    def chunk(self, start: int, stop: int) -> uproot.source.chunk.Chunk:
        """One range; a miss fetches the read-ahead window after it into the cache."""
        self._num_requests += 1
        self._num_requested_chunks += 1
        self._num_requested_bytes += stop - start
        data = self._cache.get(start, stop)
        if data is None:
            fetch_stop = min(max(stop, start + self.config.readahead), self._num_bytes)
            if fetch_stop - start > self.config.cache:
                fetch_stop = stop
            segments = [(start, max(fetch_stop, stop))]
            tail = self._tail_segment(segments[0])
            if tail is not None:
                segments.append(tail)
            data = memoryview(self._fetch(tuple(segments))[0])[: stop - start]
        future = uproot.source.futures.TrivialFuture(data)
        return uproot.source.chunk.Chunk(self, start, stop, future)

    def chunks(
        self, ranges: list[tuple[int, int]], notifications: queue.Queue
    ) -> list[uproot.source.chunk.Chunk]:
        """Many ranges: cache hits at once, misses in coalesced parallel vector reads."""
        self._num_requests += 1
        self._num_requested_chunks += len(ranges)
        self._num_requested_bytes += sum(stop - start for start, stop in ranges)
        self._wait_inflight(ranges)
        chunks: list[uproot.source.chunk.Chunk] = []
        missing: list[tuple[int, int, Future]] = []
        for start, stop in ranges:
            data = self._cache.get(start, stop, once=True)  # baskets: each read once
            if data is not None:
                chunk = uproot.source.chunk.Chunk(
                    self, start, stop, uproot.source.futures.TrivialFuture(data)
                )
                notifications.put(chunk)
            else:
                future: Future = Future()
                chunk = uproot.source.chunk.Chunk(self, start, stop, future)
                missing.append((start, stop, future))
            chunks.append(chunk)
        if missing:
            self._submit(missing, {id(c.future): c for c in chunks}, notifications)
        return chunks

    def _submit(self, missing, by_future, notifications: queue.Queue) -> None:
        """Fetch the planned requests in parallel; fill each range when all its pieces came."""
        requests = plan_requests(
            [(start, stop) for start, stop, _ in missing],
            gap=self.config.coalesce_gap,
            max_request_bytes=self.config.max_request_bytes,
        )
        fetched = [(req, self._pool.submit(self._fetch, req.segments)) for req in requests]
        for start, stop, future in missing:
            deps = [
                (req, done)
                for req, done in fetched
                if req.segments[0][0] < stop and req.segments[-1][1] > start
            ]
            _Assembly(start, stop, future, deps, by_future[id(future)], notifications)

    # -- counters and lifetime ----------------------------------------------------------
    @property
    def stats(self) -> IOStats:
        """Backend traffic and cache counters so far."""
        with self._lock:
            snapshot = IOStats(**{**asdict(self._io), "latencies": list(self._io.latencies)})
        snapshot.cache_hits = self._cache.hits
        snapshot.cache_misses = self._cache.misses
        snapshot.cache_peak = self._cache.peak
        return snapshot

    @property
    def cache(self) -> ReadAheadCache:
        return self._cache

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=True)
            self._backend.close()
            self._cache.clear()

    def __enter__(self) -> StreamingSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _contiguous(segments, data):
    """(start, bytes) with touching pieces joined, so a basket split across vector
    elements is found whole in the cache."""
    out: list[tuple[int, list[bytes], int]] = []
    for (start, stop), piece in zip(segments, data, strict=True):
        if out and out[-1][2] == start:
            out[-1][1].append(piece)
            out[-1] = (out[-1][0], out[-1][1], stop)
        else:
            out.append((start, [piece], stop))
    return [
        (start, pieces[0] if len(pieces) == 1 else b"".join(pieces)) for start, pieces, _ in out
    ]


class _Assembly:
    """Completes one range's future once every request overlapping it has arrived."""

    def __init__(self, start, stop, future, deps, chunk, notifications) -> None:
        self.start, self.stop, self.future = start, stop, future
        self.deps, self.chunk, self.notifications = deps, chunk, notifications
        self.pending = len(deps)
        self.lock = threading.Lock()
        if not deps:  # an empty range overlaps no request
            future.set_result(b"")
            notifications.put(chunk)
        for _, done in deps:
            done.add_done_callback(self._one_done)

    def _one_done(self, _done: Future) -> None:
        with self.lock:
            self.pending -= 1
            if self.pending:
                return
        try:
            pieces = []
            for request, done in self.deps:
                for (seg_start, seg_stop), data in zip(
                    request.segments, done.result(), strict=True
                ):
                    if seg_start < self.stop and seg_stop > self.start:
                        lo, hi = max(self.start, seg_start), min(self.stop, seg_stop)
                        pieces.append((lo, memoryview(data)[lo - seg_start : hi - seg_start]))
            pieces.sort(key=lambda piece: piece[0])
            data = pieces[0][1] if len(pieces) == 1 else b"".join(p for _, p in pieces)
            self.future.set_result(data)
        except BaseException as err:
            self.future.set_exception(err)
        self.notifications.put(self.chunk)


def open_source(path: str, config: StreamConfig | None = None) -> StreamingSource:
    """A :class:`StreamingSource` for a local path or ``root://`` URL."""
    return StreamingSource(path, hepstream_config=config or StreamConfig())


def expand_inputs(patterns: list[str]) -> list[str]:
    """Input paths with globs expanded (``root://`` via directory listing), in order."""
    paths: list[str] = []
    for pattern in patterns:
        if is_remote(pattern):
            found = expand_remote(pattern)
        elif any(ch in pattern for ch in "*?["):
            found = sorted(glob.glob(pattern))
        else:
            found = [pattern]
            if not os.path.exists(pattern.removeprefix("file://")):
                raise InputError(f"input file not found: {pattern}; check the path")
        if not found:
            raise InputError(f"no input matches {pattern}; check the pattern and directory")
        paths.extend(found)
    return paths
