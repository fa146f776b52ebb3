"""Carry out read plans: fetch spans ahead within the job's budget, hand each out, release it.

One :class:`Prefetcher` per job admits the spans of every planned file in one global
order (file by file, chunk by chunk, in the order each chunk asks for them), so the span
the reader needs next is always admitted before any span it will need later: a full budget
can only hold bytes the reader is about to consume, and the job never deadlocks on its own
memory bound. :class:`FileReads` is one file's share: span states, data, waiters.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Future
from functools import partial
from typing import TypeVar

from hepstream.io.budget import Budget
from hepstream.io.coalesce import Request, plan_requests
from hepstream.io.config import XRD_MAX_VECTOR_ELEMENT_BYTES
from hepstream.io.spans import FilePlan, holes

#: Submits one vector read (segments in file order); its future gives one bytes per segment.
Submit = Callable[[tuple[tuple[int, int], ...]], "Future[list[bytes]]"]
#: A span's bytes: the backend's own, a view of the segment that brought them, or a buffer
#: assembled from pieces.
SpanBytes = bytes | bytearray | memoryview

_T = TypeVar("_T")

_PENDING, _RESERVED, _FETCHING, _READY, _DONE = range(5)


def span_requests(wanted: Sequence[tuple[int, int]], max_request_bytes: int) -> list[Request]:
    """The backend requests that fetch planned byte ranges: touching ranges join, nothing
    between them is read; a range larger than one request is cut into request-sized pieces
    fetched in parallel."""
    return plan_requests(
        wanted,
        gap=0,
        max_request_bytes=max_request_bytes,
        max_element_bytes=min(max_request_bytes, XRD_MAX_VECTOR_ELEMENT_BYTES),
    )


def failure(done: Future[_T] | Ready) -> BaseException | None:
    """A finished read's error, None if it has its bytes. A read cancelled when its executor
    shut down (the job stopping) is an error too: ``exception()`` would raise it instead."""
    return CancelledError() if done.cancelled() else done.exception()


class Ready:
    """Bytes that are there already, with the part of a ``Future``'s interface the
    source uses: served spans are mostly fetched ahead, and a ``Future`` (a lock and a
    condition each) per span costs the reader's thread GIL time for nothing."""

    __slots__ = ("_data",)

    def __init__(self, data: memoryview) -> None:
        self._data = data

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> memoryview:  # noqa: ARG002
        return self._data

    def exception(self, timeout: float | None = None) -> None:  # noqa: ARG002
        return None

    def cancelled(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Ready], object]) -> None:
        fn(self)


class FileReads:
    """The state of one file's plan: which spans are reserved, in flight, held or done."""

    def __init__(
        self,
        plan: FilePlan,
        submit: Submit,
        *,
        budget: Budget,
        prefilled: dict[int, list[tuple[int, bytes]]] | None = None,
        max_request_bytes: int,
        eager: bool = False,
    ) -> None:
        self.plan = plan
        self._submit = submit
        self._budget = budget
        self._max_request = max_request_bytes
        n = len(plan.spans)
        self._state = [_PENDING] * n
        self._reads_left = [span.reads for span in plan.spans]
        self._futures: list[Future[SpanBytes] | None] = [None] * n
        self._buffers: dict[int, SpanBytes] = {}
        self._missing = [0] * n
        self._wanted: set[int] = set()
        self._served_once = [False] * n
        #: Bytes of each span already in memory before it is admitted (taken from the
        #: metadata read-ahead): reserved by the source when the plan was made.
        self._prefilled = prefilled or {}
        self._prefill_bytes = [
            sum(len(piece) for _, piece in self._prefilled.get(i, ())) for i in range(n)
        ]
        #: Bytes of each span the plan fetches itself (not already in memory).
        self._hole_bytes = [span.size - self._prefill_bytes[i] for i, span in enumerate(plan.spans)]
        self._order = sorted(range(n), key=lambda i: plan.spans[i].start)
        self._sorted_starts = [plan.spans[i].start for i in self._order]
        self.cursor = 0
        self.chunk = 0
        self.eager = eager
        self.closed = False
        #: Called when the reader asks for a span not admitted yet (the prefetcher's pump).
        self.wake: Callable[[], None] | None = None
        self.lock = threading.Lock()
        # counters
        self.bytes_fetched_needed = 0  # bytes of served spans that were fetched for the plan
        self.spans_waited = 0
        self.spans_ready = 0
        self.given_up = 0  # spans given back to make room (see _give_up)

    # -- admission (called by the Prefetcher under its lock) ---------------------------
    @property
    def num_chunks(self) -> int:
        return len(self.plan.chunk_bytes)

    def admit(self, limit_chunk: float = float("inf")) -> tuple[bool, list[int], int]:
        """Reserve spans from the cursor while the budget allows, up to the spans first read
        by chunk ``limit_chunk``: (all admitted, spans to fetch, bytes to give back). The
        caller releases those bytes once out of its lock."""
        to_fetch: list[int] = []
        give_back = 0
        spans = self.plan.spans
        with self.lock:
            while self.cursor < len(spans) and not self.closed:
                i = self.cursor
                span = spans[i]
                if span.last_chunk < self.chunk:  # the reader went past it: never needed
                    self._state[i] = _DONE
                    give_back += self._prefill_bytes[i]
                    self._prefill_bytes[i] = 0
                    self._prefilled.pop(i, None)
                    self.cursor += 1
                    continue
                if span.first_chunk > limit_chunk:
                    return False, to_fetch, give_back
                cost = span.size - self._prefill_bytes[i]
                if not self._budget.try_reserve(cost):
                    # Later spans' pre-filled bytes must not keep an earlier span waiting.
                    give_back += self._drop_prefills(after=i)
                    if any(j >= i for j in self._wanted):
                        give_back += self._give_up(i)
                    return False, to_fetch, give_back
                self.cursor += 1
                asked = i in self._wanted
                self._wanted.discard(i)
                if span.lazy and not self.eager and not asked:
                    self._state[i] = _RESERVED
                else:
                    self._state[i] = _FETCHING
                    to_fetch.append(i)
            return not self.closed, to_fetch, give_back

    def _give_up(self, before: int) -> int:
        """Make room for a span the reader waits for but that does not fit (only with a
        budget too small for a chunk): spans before it that nobody waits for now — lazy ones
        never asked for, and ones held for a later chunk's read — are given back, and read
        directly if asked for again. Called under the lock; the bytes to release."""
        give_back = 0
        for j in range(before):
            state = self._state[j]
            if state == _RESERVED or (
                state == _READY and self._served_once[j] and self._reads_left[j] > 0
            ):
                self._state[j] = _DONE
                self._futures[j] = None
                self.given_up += 1
                give_back += self.plan.spans[j].size
        return give_back

    def drop_prefills(self) -> int:
        """Forget the pre-filled bytes of spans not admitted yet (they will be fetched);
        the bytes to give back. Room for an earlier file that waits for it."""
        with self.lock:
            return self._drop_prefills(after=self.cursor - 1)

    def _drop_prefills(self, after: int) -> int:
        # only spans still in ``_prefilled`` hold pre-filled bytes (it is called on every
        # pump that finds the budget full: a scan of every later span made that quadratic)
        first = max(after + 1, self.cursor)
        give_back = 0
        for i in [i for i in self._prefilled if i >= first]:
            give_back += self._prefill_bytes[i]
            self._prefill_bytes[i] = 0
            self._hole_bytes[i] = self.plan.spans[i].size
            del self._prefilled[i]
        return give_back

    def fetch(self, indices: Sequence[int]) -> None:
        """Start the requests that bring spans ``indices`` (their holes only)."""
        if not indices:
            return
        wanted: list[tuple[int, int]] = []
        spans = self.plan.spans
        for i in indices:
            span = spans[i]
            covered = [(at, at + len(piece)) for at, piece in self._prefilled.get(i, ())]
            gaps = holes(span.start, span.stop, covered)
            self._missing[i] = sum(b - a for a, b in gaps)
            self._futures[i] = self._futures[i] or Future()
            if covered or len(gaps) != 1:
                buffer = bytearray(span.size)
                for at, piece in self._prefilled.pop(i, ()):
                    buffer[at - span.start : at - span.start + len(piece)] = piece
                self._buffers[i] = buffer
            if not self._missing[i]:
                self._complete(i)
            wanted.extend(gaps)
        for request in span_requests(wanted, self._max_request):
            future = self._submit(request.segments)
            future.add_done_callback(partial(self._arrived, request.segments))

    def _arrived(self, segments: tuple[tuple[int, int], ...], done: Future[list[bytes]]) -> None:
        error = failure(done)
        spans = self.plan.spans
        finished: list[int] = []
        failed: list[int] = []
        with self.lock:
            # after an error no piece is read: placeholders let the one loop find the failed spans
            data = done.result() if error is None else [b""] * len(segments)
            for (seg_start, seg_stop), piece in zip(segments, data, strict=True):
                k = max(bisect.bisect_right(self._sorted_starts, seg_start) - 1, 0)
                hits = []
                while k < len(self._order) and spans[self._order[k]].start < seg_stop:
                    i = self._order[k]
                    k += 1
                    if spans[i].stop > seg_start and self._state[i] == _FETCHING:
                        hits.append(i)
                if error is not None:
                    failed.extend(hits)
                    continue
                # A span may be a view of the segment (no copy) when every span in it is
                # given back with the same chunk: a view keeps the whole segment alive, and
                # bytes given back to the budget must not stay in memory a chunk longer.
                shared = len({spans[i].last_chunk for i in hits}) == 1
                for i in hits:
                    span = spans[i]
                    lo, hi = max(span.start, seg_start), min(span.stop, seg_stop)
                    view = memoryview(piece)[lo - seg_start : hi - seg_start]
                    buffer = self._buffers.get(i)
                    if buffer is None and lo == span.start and hi == span.stop:
                        if len(piece) == span.size:
                            self._buffers[i] = piece
                        else:
                            self._buffers[i] = view if shared else bytes(view)
                    else:
                        if not isinstance(buffer, bytearray):
                            buffer = self._buffers[i] = bytearray(span.size)
                        buffer[lo - span.start : hi - span.start] = view
                    self._missing[i] -= hi - lo
                    if self._missing[i] <= 0:
                        finished.append(i)
        for i in dict.fromkeys(failed):
            assert error is not None
            self._fail(i, error)
        for i in finished:
            self._complete(i)

    def _complete(self, i: int) -> None:
        with self.lock:
            if self._state[i] != _FETCHING:
                return
            data = self._buffers.pop(i)
            self._state[i] = _READY
            future = self._futures[i]
            drop = self.closed or self.plan.spans[i].last_chunk < self.chunk
        assert future is not None
        future.set_result(data)
        if drop:
            self._finish(i)

    def _fail(self, i: int, error: BaseException) -> None:
        with self.lock:
            if self._state[i] != _FETCHING:
                return
            self._state[i] = _READY  # the error is its content: every reader sees it
            self._buffers.pop(i, None)
            future = self._futures[i]
            drop = self.closed
        assert future is not None
        future.set_exception(error)
        if drop:
            self._finish(i)

    def _finish(self, i: int) -> None:
        """Span ``i`` is not needed any more: forget it and give its bytes back."""
        with self.lock:
            if self._state[i] == _DONE:
                return
            was = self._state[i]
            self._state[i] = _DONE
            self._futures[i] = None
        if was in (_RESERVED, _READY):
            self._budget.release(self.plan.spans[i].size)

    # -- the reader's side ----------------------------------------------------------
    def serve(self, start: int, stop: int) -> tuple[Ready | Future[SpanBytes], bool] | None:
        """The future bytes of a planned range (a :class:`Ready` when they are there), and
        whether they were there already; None if the plan does not hold the range (the
        caller reads it directly)."""
        i = self.plan.where.get((start, stop))
        if i is None:
            return None
        span = self.plan.spans[i]
        fetch_now = False
        with self.lock:
            state = self._state[i]
            if state == _DONE:
                return None  # served its reads already (or dropped): read it again directly
            future = self._futures[i]
            if future is None:
                future = self._futures[i] = Future()
            if state == _PENDING:
                self._wanted.add(i)
            elif state == _RESERVED:
                self._state[i] = _FETCHING
                fetch_now = True
            self._reads_left[i] -= 1
            last = self._reads_left[i] <= 0
            first = not self._served_once[i]
            self._served_once[i] = True
            if first:
                self.bytes_fetched_needed += self._hole_bytes[i]
            ready = future.done()
            if ready:
                self.spans_ready += 1
            else:
                self.spans_waited += 1
        if fetch_now:
            self.fetch([i])
        elif state == _PENDING and self.wake is not None:
            self.wake()  # admit it as soon as it fits (and make room if it never will)
        lo, hi = start - span.start, stop - span.start
        if future.done():  # the common case: fetched ahead
            error = failure(future)
            out: Ready | Future[SpanBytes] = (
                Ready(memoryview(future.result())[lo:hi]) if error is None else future
            )
            if last:
                self._finish(i)
            return out, ready
        if last:
            future.add_done_callback(lambda _f: self._finish(i))
        sliced: Future[SpanBytes] = Future()

        def _slice(done: Future[SpanBytes]) -> None:
            error = failure(done)
            if error is not None:
                sliced.set_exception(error)
            else:
                sliced.set_result(memoryview(done.result())[lo:hi])

        future.add_done_callback(_slice)
        return sliced, ready

    def advance(self, chunk: int) -> None:
        """The reader moved on to ``chunk``: drop what earlier chunks left unread."""
        spans = self.plan.spans
        drop: list[int] = []
        with self.lock:
            self.chunk = chunk
            for i in range(self.cursor):
                if self._state[i] in (_RESERVED, _READY) and spans[i].last_chunk < chunk:
                    drop.append(i)
        for i in drop:
            self._finish(i)

    def make_eager(self) -> list[int]:
        """Lazy spans are wanted after all (preselection stopped paying): fetch them."""
        with self.lock:
            self.eager = True
            todo = [i for i in range(self.cursor) if self._state[i] == _RESERVED]
            for i in todo:
                self._state[i] = _FETCHING
        self.fetch(todo)
        return todo

    def close(self) -> None:
        """Give back everything held; fetches still in flight give theirs back on arrival."""
        give_back = 0
        with self.lock:
            self.closed = True
            held = [i for i in range(len(self._state)) if self._state[i] in (_RESERVED, _READY)]
            for i in range(self.cursor, len(self._state)):  # never admitted: only prefills
                give_back += self._prefill_bytes[i]
                self._prefill_bytes[i] = 0
            self._prefilled.clear()
        for i in held:
            self._finish(i)
        self._budget.release(give_back)


class Prefetcher:
    """Admits the spans of a job's files in one order, as the budget allows.

    Files are numbered in the order the job reads them; a file's spans are admitted only
    once every earlier file has all of its spans admitted (or is gone), so files opened
    ahead in parallel never jump the queue, whichever finished opening first.
    """

    def __init__(self, budget: Budget, ahead: int | None = None) -> None:
        self.budget = budget
        #: Chunks fetched ahead of the one being read, across file edges (None: as many as
        #: the budget holds).
        self.ahead = ahead
        self._files: dict[int, FileReads] = {}
        self._gone: set[int] = set()
        self._first = 0  # lowest file number not gone yet
        self._auto = 0  # numbers handed to files added without one
        self._lock = threading.Lock()
        budget.on_release(self.pump)

    def add(self, reads: FileReads, number: int | None = None) -> None:
        """Queue a file's plan at its place in the job (default: after the last one)."""
        reads.wake = self.pump
        with self._lock:
            if number is None:
                number = self._auto
            self._auto = max(self._auto, number + 1)
            self._files[number] = reads
        self.pump()

    def skip(self, number: int) -> None:
        """File ``number`` will never be added (it failed to open): the next one may go."""
        with self._lock:
            self._gone.add(number)
            self._advance_first()
        self.pump()

    def remove(self, reads: FileReads) -> None:
        """A file is closed: its place in the order goes to the next one."""
        reads.close()
        with self._lock:
            for number, queued in list(self._files.items()):
                if queued is reads:
                    del self._files[number]
                    self._gone.add(number)
            self._advance_first()
        self.pump()

    def _advance_first(self) -> None:
        while self._first in self._gone:
            self._gone.discard(self._first)
            self._first += 1

    def pump(self) -> None:
        """Admit what fits, strictly in order, and start fetching it."""
        batches: list[tuple[FileReads, list[int]]] = []
        give_back = 0
        with self._lock:
            number = self._first
            left = None  # chunks the look-ahead still allows past the files admitted so far
            while True:
                reads = self._files.get(number)
                if reads is None:
                    if number in self._gone:
                        number += 1
                        continue
                    break  # the next file is not planned yet: nothing after it may go first
                if self.ahead is None:
                    limit: float = float("inf")
                elif left is None:  # the file being read: ``ahead`` past its current chunk
                    limit = reads.chunk + self.ahead
                else:
                    limit = left - 1
                complete, to_fetch, freed = reads.admit(limit)
                give_back += freed
                if to_fetch:
                    batches.append((reads, to_fetch))
                if not complete:
                    # Files later in the order may hold pre-filled bytes (their metadata
                    # read-ahead); an earlier file waiting for room must never wait on them.
                    give_back += sum(
                        later.drop_prefills() for n, later in self._files.items() if n > number
                    )
                    break
                if self.ahead is not None:
                    used = reads.num_chunks - (reads.chunk + 1 if left is None else 0)
                    left = (self.ahead if left is None else left) - used
                    if left <= 0:
                        break
                number += 1
        for reads, indices in batches:
            reads.fetch(indices)
        self.budget.release(give_back)  # may pump again: room was made
