"""hepstream's uproot ``Source``: metadata read-ahead, the exact read plan, vector reads."""

# uproot internals this module depends on (checked with uproot 5.7.7); uproot documents
# them as the way to write a handler, but ships no types and may change them:
#   - ``uproot.source.chunk.Source``: subclassed, as ``uproot.open(handler=...)`` demands
#     (an ``issubclass`` check); uproot calls it as ``handler(file_path, **options)`` with
#     every option of ``uproot.open``.
#   - its private attributes ``_file_path``, ``_num_bytes`` (behind ``file_path`` and
#     ``num_bytes``) and the counters ``_num_requests``, ``_num_requested_chunks``,
#     ``_num_requested_bytes`` (behind ``performance_counters``), which this class keeps.
#   - ``uproot.source.chunk.Chunk(source, start, stop, future)``: uproot waits on
#     ``future.result()`` and reads any buffer it gives.
#   - ``uproot.source.futures.TrivialFuture(result)``: an already finished future.
#   - the ``chunks(ranges, notifications)`` contract: every chunk returned is put on
#     ``notifications`` once, when its bytes (or its error) are there.

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Protocol

from uproot.source.chunk import Chunk, Source
from uproot.source.futures import TrivialFuture

from hepstream.errors import InputError
from hepstream.io.budget import Budget
from hepstream.io.cache import ReadAheadCache
from hepstream.io.coalesce import Request, plan_requests
from hepstream.io.config import StreamConfig
from hepstream.io.local import LocalBackend
from hepstream.io.pool import WorkPool
from hepstream.io.prefetch import FileReads, Prefetcher, Ready, SpanBytes, failure
from hepstream.io.spans import FilePlan
from hepstream.io.urls import is_remote
from hepstream.io.viacache import RemoteInput, check_input
from hepstream.io.xrootd import configure_client, expand_remote

#: Where uproot waits for the chunks of one ``chunks`` call.
Notifications = queue.Queue[Chunk]


class Backend(Protocol):
    """What the source needs of a storage backend (:class:`LocalBackend`,
    :class:`~hepstream.io.viacache.RemoteInput`)."""

    size: int

    @property
    def retried(self) -> int:
        """Tries after a transient failure so far."""
        ...

    # What went where (IOStats): bytes answered by the site cache and by the origin
    # directly, short answers from the cache asked again at the origin, and why a site
    # cache that was set was not used (None: it was, or none was set).
    cache_bytes: int
    origin_bytes: int
    short_reads: int
    cache_fallback: str | None

    @property
    def unavailable(self) -> bool:
        """True once the backend's server stopped answering (close then waits for nothing)."""
        ...

    def readv(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]: ...
    def close(self) -> None: ...


@dataclass
class IOStats:
    """What one source moved: backend traffic, what the plan needed, cache behaviour."""

    bytes_read: int = 0
    #: Bytes the job needed: the planned spans it read plus the metadata reads (with their
    #: read-ahead windows).
    bytes_needed: int = 0
    #: Of ``bytes_read``: metadata windows, and reads no plan foresaw (0 when the plan is exact).
    metadata_bytes: int = 0
    unplanned_bytes: int = 0
    requests: int = 0
    vector_reads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_peak: int = 0
    #: Planned reads uproot asked for before their bytes had landed (it then waited).
    reads_waited: int = 0
    #: Requests sent again after a transient storage fault (see XRootDBackend).
    retries: int = 0
    #: Bytes answered by the site cache / by the origin directly (no cache set, a fallback,
    #: requests asked again there); both 0 for a local file.
    cache_bytes: int = 0
    origin_bytes: int = 0
    #: Short answers from the site cache, asked again at the origin (never used as data).
    short_reads: int = 0
    #: Why the site cache that was set was not used for this file, or None.
    cache_fallback: str | None = None
    latencies: list[float] = field(default_factory=list, repr=False)

    def asdict(self) -> dict[str, int | str | None]:
        out = asdict(self)
        del out["latencies"]
        return out


# uproot ships no type information: its Source is Any to the type checker
class StreamingSource(Source):  # type: ignore[misc]
    """An uproot ``Source`` for local paths and ``root://`` URLs.

    Two paths: a small read that no plan holds (the file's metadata) fetches the read-ahead
    window after it into a metadata cache; once the reader has set the file's exact read
    plan (:meth:`set_plan`), every planned span is fetched once, ahead, within the
    job's :class:`~hepstream.io.budget.Budget`, and handed out when uproot asks for it.
    Pass it to uproot as ``uproot.open(path, handler=StreamingSource, hepstream_config=config)``
    and, to share one bound and one admission order among a job's files,
    ``hepstream_prefetcher=Prefetcher(Budget(n))``; ``hepstream_made=[]`` collects the
    source, for the caller to close should uproot fail before it hands back a file.
    """

    def __init__(
        self,
        file_path: str,
        *,
        hepstream_config: StreamConfig | None = None,
        hepstream_prefetcher: Prefetcher | None = None,
        hepstream_made: list[StreamingSource] | None = None,
        **uproot_options: object,  # noqa: ARG002 (uproot.open's own: this source needs none)
    ) -> None:
        super().__init__()
        self.config = hepstream_config or StreamConfig()
        self._prefetcher = hepstream_prefetcher or Prefetcher(Budget(self.config.cache))
        self._file_path = file_path
        self._backend: Backend
        if is_remote(file_path):
            configure_client(self.config.connection_retry, self.config.connection_window)
            self._backend = RemoteInput(file_path, self.config)  # through the site cache, if set
        else:
            self._backend = LocalBackend(file_path)
        self._num_bytes = self._backend.size
        self._cache = ReadAheadCache(self._prefetcher.budget)
        self._pool = WorkPool(self.config.parallel_requests, name="hepstream-io")
        self._lock = threading.Lock()
        self._io = IOStats()
        self._reads: FileReads | None = None
        self._closed = False
        if hepstream_made is not None:  # whole: the opener closes it if uproot's open fails
            hepstream_made.append(self)

    # -- backend edge -------------------------------------------------------------------
    def _fetch(self, segments: tuple[tuple[int, int], ...], kind: str = "") -> list[bytes]:
        """Read ``segments`` from the backend, counted; ``kind`` names the :class:`IOStats`
        counter the bytes also go to (``metadata_bytes``, ``unplanned_bytes``), if any."""
        began = time.perf_counter()
        data = self._backend.readv(segments)
        elapsed = time.perf_counter() - began
        nbytes = sum(len(d) for d in data)
        with self._lock:
            self._io.requests += 1
            self._io.vector_reads += len(segments) > 1
            self._io.bytes_read += nbytes
            if kind:
                setattr(self._io, kind, getattr(self._io, kind) + nbytes)
            self._io.latencies.append(elapsed)
        return data

    def _submit(self, segments: tuple[tuple[int, int], ...]) -> Future[list[bytes]]:
        return self._pool.submit(self._fetch, segments)

    def _tail_segment(self, first: tuple[int, int]) -> tuple[int, int] | None:
        """On the first read, the file's last read-ahead window too: a ROOT file keeps its
        keys, streamers and tree metadata at the end, so opening costs one round trip."""
        if self._io.requests or not self.config.readahead:
            return None
        start = max(first[1], self._num_bytes - self.config.readahead)
        if start >= self._num_bytes:
            return None
        return (start, self._num_bytes)

    # -- the read plan ------------------------------------------------------------------
    def set_plan(
        self, plan: FilePlan, *, eager: bool = False, number: int | None = None
    ) -> FileReads:
        """Fetch ``plan``'s spans from now on, in the job's order and within its budget.

        What the metadata read-ahead already brought of a span is kept (copied) and never
        fetched again; the metadata cache is then emptied, its bytes given back.
        """
        if self._reads is not None:
            raise RuntimeError(f"{self._file_path}: the read plan is set once")
        prefilled: dict[int, list[tuple[int, bytes]]] = {}
        for index, span in enumerate(plan.spans):
            pieces = self._cache.pieces(span.start, span.stop)
            if pieces:
                prefilled[index] = pieces
        self._cache.clear()
        budget = self._prefetcher.budget
        kept = sum(len(p) for pieces in prefilled.values() for _, p in pieces)
        if not budget.try_reserve(kept):  # another file took the room meanwhile: fetch them
            prefilled, kept = {}, 0
        self._reads = FileReads(
            plan,
            self._submit,
            budget=budget,
            prefilled=prefilled,
            max_request_bytes=self.config.max_request_bytes,
            eager=eager,
        )
        self._prefetcher.add(self._reads, number)
        return self._reads

    @property
    def reads(self) -> FileReads | None:
        """The plan being carried out, once set."""
        return self._reads

    # -- uproot Source interface --------------------------------------------------------
    def chunk(self, start: int, stop: int) -> Chunk:
        """One range: a planned span, else metadata (a miss fetches the read-ahead window
        after it)."""
        self._num_requests += 1
        self._num_requested_chunks += 1
        self._num_requested_bytes += stop - start
        served = self._reads.serve(start, stop) if self._reads is not None else None
        if served is not None:
            future = TrivialFuture(served[0].result())
            return Chunk(self, start, stop, future)
        data = self._cache.get(start, stop)
        if data is None:
            data = self._read_metadata(start, stop)
        return Chunk(self, start, stop, TrivialFuture(data))

    def _read_metadata(self, start: int, stop: int) -> memoryview:
        """Bytes ``[start, stop)`` and the read-ahead window after them, cached."""
        if self._reads is not None:  # after planning, a read the plan did not foresee
            return memoryview(self._fetch(((start, stop),), "unplanned_bytes")[0])
        limit = self._prefetcher.budget.limit
        fetch_stop = min(max(stop, start + self.config.readahead), self._num_bytes)
        if fetch_stop - start > limit:  # a window the bound cannot hold: just the read
            fetch_stop = stop
        segments = [(start, max(fetch_stop, stop))]
        tail = self._tail_segment(segments[0])
        if tail is not None and fetch_stop - start + tail[1] - tail[0] <= limit:
            segments.append(tail)
        data = self._fetch(tuple(segments), "metadata_bytes")
        for (seg_start, _), piece in zip(segments, data, strict=True):
            self._cache.put(seg_start, piece)
        return memoryview(data[0])[: stop - start]

    def chunks(self, ranges: list[tuple[int, int]], notifications: Notifications) -> list[Chunk]:
        """Many ranges (one chunk's): planned ones from the plan, the rest fetched in
        coalesced parallel vector reads."""
        self._num_requests += 1
        self._num_requested_chunks += len(ranges)
        self._num_requested_bytes += sum(stop - start for start, stop in ranges)
        chunks: list[Chunk] = []
        missing: list[_Missing] = []
        for start, stop in ranges:
            served = self._reads.serve(start, stop) if self._reads is not None else None
            if served is not None:
                planned = served[0]
                if planned.done():
                    chunk = Chunk(self, start, stop, TrivialFuture(planned.result()))
                    notifications.put(chunk)
                else:
                    future: Future[SpanBytes] = Future()
                    chunk = Chunk(self, start, stop, future)
                    planned.add_done_callback(partial(_relay, future, chunk, notifications))
                chunks.append(chunk)
                continue
            data = self._cache.get(start, stop)
            if data is not None:
                chunk = Chunk(self, start, stop, TrivialFuture(data))
                notifications.put(chunk)
            else:
                future = Future()
                chunk = Chunk(self, start, stop, future)
                missing.append((start, stop, future, chunk))
            chunks.append(chunk)
        if missing:
            self._read_direct(missing, notifications)
        return chunks

    def _read_direct(self, missing: list[_Missing], notifications: Notifications) -> None:
        """Fetch ranges no plan holds in parallel; fill each range when all its pieces came."""
        kind = "unplanned_bytes" if self._reads is not None else "metadata_bytes"
        requests = plan_requests(
            [(start, stop) for start, stop, _, _ in missing],
            gap=self.config.coalesce_gap,
            max_request_bytes=self.config.max_request_bytes,
        )
        fetched = [(req, self._pool.submit(self._fetch, req.segments, kind)) for req in requests]
        for start, stop, future, chunk in missing:
            deps = [
                (req, done)
                for req, done in fetched
                if req.segments[0][0] < stop and req.segments[-1][1] > start
            ]
            _Assembly(start, stop, future, deps, chunk, notifications)

    # -- counters and lifetime ----------------------------------------------------------
    @property
    def stats(self) -> IOStats:
        """Backend traffic, needed bytes and cache counters so far."""
        with self._lock:
            snapshot = IOStats(**{**asdict(self._io), "latencies": list(self._io.latencies)})
        snapshot.cache_hits = self._cache.hits
        snapshot.cache_misses = self._cache.misses
        snapshot.bytes_needed = snapshot.metadata_bytes
        if self._reads is not None:
            snapshot.bytes_needed += self._reads.bytes_fetched_needed
            # a planned read is a hit whether or not its bytes had landed yet: it was
            # requested ahead, once; a miss is a read that starts a fetch of its own
            snapshot.cache_hits += self._reads.spans_ready + self._reads.spans_waited
            snapshot.reads_waited = self._reads.spans_waited
        snapshot.cache_peak = self._prefetcher.budget.peak
        backend = self._backend
        snapshot.retries = backend.retried
        snapshot.cache_bytes, snapshot.origin_bytes = backend.cache_bytes, backend.origin_bytes
        snapshot.short_reads, snapshot.cache_fallback = backend.short_reads, backend.cache_fallback
        return snapshot

    @property
    def cache(self) -> ReadAheadCache:
        """The metadata read-ahead cache."""
        return self._cache

    @property
    def budget(self) -> Budget:
        """The bound this source's bytes are counted against (shared by the job's files)."""
        return self._prefetcher.budget

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._reads is not None:
                self._prefetcher.remove(self._reads)
            if self._backend.unavailable:
                # its server stopped answering: reads still in flight end within their
                # retry policy on their own; closing would only wait for them
                self._pool.shutdown(wait=False, cancel_futures=True)
            else:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._backend.close()
            self._cache.clear()

    def __enter__(self) -> StreamingSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: A range no plan holds: start, stop, the future its chunk waits on, the chunk.
_Missing = tuple[int, int, "Future[SpanBytes]", Chunk]


def _relay(
    future: Future[SpanBytes],
    chunk: Chunk,
    notifications: Notifications,
    planned: Ready | Future[SpanBytes],
) -> None:
    """Hand a planned span's bytes (or its error) to the uproot chunk waiting for them."""
    error = failure(planned)
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(planned.result())
    notifications.put(chunk)


class _Assembly:
    """Completes one range's future once every request overlapping it has arrived."""

    def __init__(
        self,
        start: int,
        stop: int,
        future: Future[SpanBytes],
        deps: list[tuple[Request, Future[list[bytes]]]],
        chunk: Chunk,
        notifications: Notifications,
    ) -> None:
        self.start, self.stop, self.future = start, stop, future
        self.deps, self.chunk, self.notifications = deps, chunk, notifications
        self.pending = len(deps)
        self.lock = threading.Lock()
        if not deps:  # an empty range overlaps no request
            future.set_result(b"")
            notifications.put(chunk)
        for _, done in deps:
            done.add_done_callback(self._one_done)

    def _one_done(self, _done: Future[list[bytes]]) -> None:
        with self.lock:
            self.pending -= 1
            if self.pending:
                return
        try:
            pieces: list[tuple[int, memoryview]] = []
            for request, done in self.deps:
                for (seg_start, seg_stop), data in zip(
                    request.segments, done.result(), strict=True
                ):
                    if seg_start < self.stop and seg_stop > self.start:
                        lo, hi = max(self.start, seg_start), min(self.stop, seg_stop)
                        pieces.append((lo, memoryview(data)[lo - seg_start : hi - seg_start]))
            pieces.sort(key=lambda piece: piece[0])
            joined = pieces[0][1] if len(pieces) == 1 else b"".join(p for _, p in pieces)
            self.future.set_result(joined)
        except BaseException as err:
            self.future.set_exception(err)
        self.notifications.put(self.chunk)


def open_source(path: str, config: StreamConfig | None = None) -> StreamingSource:
    """A :class:`StreamingSource` for a local path or ``root://`` URL."""
    return StreamingSource(path, hepstream_config=config or StreamConfig())


def expand_inputs(patterns: list[str], *, allow_missing: bool = False) -> list[str]:
    """Input paths with globs expanded (``root://`` via directory listing), in order.

    A local path named without a glob must exist unless ``allow_missing`` (then
    :func:`missing_inputs` says which are not there)."""
    paths: list[str] = []
    for pattern in patterns:
        if is_remote(pattern):
            found = expand_remote(pattern)
        elif any(ch in pattern for ch in "*?["):
            found = sorted(glob.glob(pattern))
        else:
            found = [pattern]
            if not allow_missing and not os.path.exists(pattern.removeprefix("file://")):
                raise InputError(f"input file not found: {pattern}; check the path")
        if not found:
            raise InputError(f"no input matches {pattern}; check the pattern and directory")
        paths.extend(found)
    return paths


def missing_inputs(
    paths: list[str], timeout: int = 30, config: StreamConfig | None = None
) -> dict[int, InputError]:
    """Which inputs cannot be read, by index, before any of them is: local ones by a
    stat, ``root://`` ones by one stat request each, all sent at once, where they will be
    read (through ``config``'s site cache when it answers: it knows what it holds while
    the origin is away).

    Only a definite answer counts: "no such file", or a live site cache that could not
    reach a dead origin for the file; a server that does not answer is left to the open,
    whose retry policy gives the error.
    """
    found: dict[int, InputError] = {}
    remote = [i for i, p in enumerate(paths) if is_remote(p)]
    for index, path in enumerate(paths):
        if not is_remote(path) and not os.path.exists(path.removeprefix("file://")):
            found[index] = InputError(f"input file not found: {path}; check the path")
    if remote:
        stream = config or StreamConfig(site_cache=None)
        with ThreadPoolExecutor(min(16, len(remote)), thread_name_prefix="hepstream-stat") as pool:
            answers = pool.map(lambda i: check_input(paths[i], stream, timeout), remote)
            for index, error in zip(remote, answers, strict=True):
                if error is not None:
                    found[index] = error
    return dict(sorted(found.items()))
