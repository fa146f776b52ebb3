"""The reader: open each input, plan its chunks and exact reads, stream them, preselect.

A reader thread decodes chunk after chunk and puts them on a bounded queue for the runner.
Files are opened ``open_ahead`` ahead in an opener pool; each file's exact read plan is
handed to the job's one :class:`~hepstream.io.prefetch.Prefetcher`, which fetches spans in
the job's order (this file, then the next) as far ahead as the job's byte budget allows.
"""

from __future__ import annotations

import errno
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import awkward as ak
import uproot

from hepstream.errors import ConfigError, HepstreamError, InputError
from hepstream.io import IOStats, StreamConfig, StreamingSource, is_remote
from hepstream.io.budget import Budget
from hepstream.io.pool import WorkPool
from hepstream.io.prefetch import FileReads, Prefetcher
from hepstream.io.spans import FilePlan, plan_reads
from hepstream.io.xrootd import StorageUnavailable
from hepstream.plugin.api import Selection
from hepstream.plugin.calls import call_plugin, check_mask
from hepstream.report import FileReport
from hepstream.root.chunks import (
    cache_for_layout,
    clip_chunks,
    entries_for_bytes,
    passing_spans,
    plan_chunks,
)
from hepstream.root.decompress import use_fast_inflate
from hepstream.root.header import open_checked
from hepstream.root.reads import damaged, guard
from hepstream.root.store import EventStore, event_store

if TYPE_CHECKING:
    from hepstream.jobspec import JobSpec


@dataclass
class Chunk:
    """Entries ``[start, stop)`` of input ``file_index``, decoded."""

    file_index: int
    start: int
    stop: int
    events: Any  # the events that passed preselection (all of them without one)
    io_wait: float


@dataclass
class FileEnd:
    """Input ``file_index`` is over: read to its end (``error`` None), or skipped because
    of ``error`` (``--skip-bad-files``; its chunks already handed out must be dropped)."""

    file_index: int
    error: BaseException | None = None


@dataclass
class OpenInput:
    """An opened input with its chunks and read plan (already being fetched)."""

    path: str
    file: Any
    store: EventStore
    source: StreamingSource
    offsets: list[int]
    chunks: list[tuple[int, int]]
    plan: FilePlan
    reads: FileReads

    def close(self) -> None:
        self.file.close()


def open_store(
    path: str,
    tree: str,
    branches: list[str],
    stream: StreamConfig,
    *,
    prefetcher: Prefetcher,
    threads: int = 1,
    handler: type[StreamingSource] = StreamingSource,
) -> tuple[Any, EventStore]:
    """Open ``path`` through hepstream's source (``handler``: a subclass, e.g. one that
    records its requests): uproot's file, and its event store checked for ``branches``."""
    use_fast_inflate()
    options: dict[str, Any] = {}
    if threads > 1:  # uproot shuts the executor down with the file: one pool per file
        options["decompression_executor"] = WorkPool(threads)
    made: list[StreamingSource] = []  # what uproot opened, if it fails before returning
    try:
        # array_cache=None: a streaming job reads each basket once; uproot's default
        # 100 MB array cache would only hold memory.
        opening = partial(
            uproot.open,
            path,
            handler=handler,
            hepstream_config=stream,
            hepstream_prefetcher=prefetcher,
            hepstream_made=made,
            array_cache=None,
            **options,
        )
        file = open_checked(path, opening)  # empty / not ROOT / truncated: one clear line
    except BaseException as err:
        for source in made:  # its I/O and decompression threads would outlive the job
            source.close()
        if "decompression_executor" in options:
            options["decompression_executor"].shutdown(wait=True)  # nothing queued: at once
        if isinstance(err, HepstreamError) or not isinstance(err, Exception):
            raise
        if isinstance(err, ValueError) and "not a ROOT file" in str(err):
            raise InputError(f"{path} is not a ROOT file; check the input list") from None
        if isinstance(err, OSError) and err.errno in _MISSING:
            raise InputError(f"cannot read {path}: {err.strerror}") from None
        raise damaged(path, "its directory", err) from err  # its keys or streamers
    try:
        checked = partial(_checked_store, path, file, tree, branches)
        store = guard(path, f"the metadata of {tree!r}", checked)
    except BaseException:
        file.close()
        raise
    return file, store


#: What an OSError opening an input says of the file rather than of its bytes.
_MISSING = frozenset((errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR))


def _checked_store(path: str, file: Any, tree: str, branches: list[str]) -> EventStore:
    """The event store ``tree`` of ``file``, checked for ``branches``."""
    store = event_store(path, file, tree)
    missing = store.missing(branches)
    if missing:
        raise InputError(
            f"{path}: {store.kind} {tree!r} has no {store.noun} {', '.join(missing)}; "
            f"fix the plugin's branches list"
        )
    store.check_readable(branches)
    return store


def file_chunks(
    store: EventStore,
    branches: list[str],
    chunk_bytes: int,
    entry_range: tuple[int, int | None] | None = None,
) -> list[tuple[int, int]]:
    """The entry ranges a job reads ``store`` in: about ``chunk_bytes`` of ``branches``
    each, on cluster edges, within ``entry_range`` (a dataset job may read part of a file)."""
    entries = entries_for_bytes(chunk_bytes, store.bytes_per_entry(branches), store.num_entries)
    return clip_chunks(
        plan_chunks(store.cluster_offsets(), entries, cut=store.cut_clusters(branches)), entry_range
    )


def chunk_wants(
    store: EventStore,
    chunks: list[tuple[int, int]],
    eager: list[str],
    lazy: list[str],
    eager_chunks: int = 0,
) -> list[list[tuple[int, int, bool]]]:
    """The ranges each chunk asks for, in order: ``eager`` branches, then ``lazy`` ones (lazy
    except in the first ``eager_chunks`` chunks)."""
    out: list[list[tuple[int, int, bool]]] = []
    for number, (start, stop) in enumerate(chunks):
        wanted = [(a, b, False) for a, b in store.ranges(eager, start, stop)]
        wanted += [(a, b, number >= eager_chunks) for a, b in store.ranges(lazy, start, stop)]
        out.append(wanted)
    return out


class Reader:
    """Streams a job's inputs as decoded chunks (iterate it once)."""

    def __init__(
        self,
        paths: list[str],
        selection: Selection,
        spec: JobSpec,
        files: list[FileReport],
        missing: dict[int, InputError] | None = None,
    ) -> None:
        self.paths = paths
        #: Inputs known not to exist (skipped without opening them, ``skip_bad_files``).
        self.missing = dict(missing or {})
        self.selection = selection
        self.spec = spec
        self.files = files
        self.branches = list(selection.branches)
        self.cheap = list(selection.preselect)
        self.rest = [b for b in self.branches if b not in self.cheap]
        self.budget = Budget(spec.stream.cache)
        self.prefetcher = Prefetcher(self.budget, ahead=spec.fetch_ahead)
        #: Preselection pays only when whole clusters die. It is tried from the job's first
        #: chunk on; once a chunk keeps every cluster alive, the job reads all in one pass.
        self.preselecting = threading.Event()
        if self.cheap:
            self.preselecting.set()
        self.stats: dict[int, IOStats] = {}  # by file index, filled as files finish
        self._open: dict[int, OpenInput] = {}
        self._open_lock = threading.Lock()

    # -- opening and planning (opener threads) -----------------------------------------
    def _prepare(self, index: int) -> OpenInput:
        """Open input ``index``, plan its chunks and reads, and start fetching them."""
        path, spec = self.paths[index], self.spec
        try:
            file, store = open_store(
                path,
                self.selection.tree,
                self.branches,
                spec.stream,
                prefetcher=self.prefetcher,
                threads=spec.decompress_threads,
            )
        except BaseException:
            self.prefetcher.skip(index)
            raise
        try:
            source = file.file.source
            offsets, chunks, plan = guard(
                path, "its metadata", partial(self._plan, index, store, source.num_bytes)
            )
            self._size_budget(path, plan)
            reads = source.set_plan(plan, eager=not self.preselecting.is_set(), number=index)
        except BaseException:
            self.prefetcher.skip(index)
            file.close()
            raise
        opened = OpenInput(path, file, store, source, offsets, chunks, plan, reads)
        with self._open_lock:
            self._open[index] = opened
        if not self.preselecting.is_set():  # preselection stopped while this one opened
            reads.make_eager()
        return opened

    def _plan(
        self, index: int, store: EventStore, size: int
    ) -> tuple[list[int], list[tuple[int, int]], FilePlan]:
        """The cluster offsets, chunks and read plan of input ``index`` (``store``, a file
        of ``size`` bytes: a basket or page the metadata places beyond it is damage)."""
        path, spec = self.paths[index], self.spec
        offsets = store.cluster_offsets()
        entry_range = spec.entry_ranges[index] if spec.entry_ranges else None
        chunks = file_chunks(store, self.branches, spec.chunk_bytes, entry_range)
        # The job's first chunk over the network is fetched whole even when
        # preselecting: the probe would otherwise wait one more round trip for the
        # other branches. On local disk that wait is free.
        first_whole = 1 if index == 0 and is_remote(path) else 0
        if self.preselecting.is_set():
            wants = chunk_wants(store, chunks, self.cheap, self.rest, first_whole)
        else:
            wants = chunk_wants(store, chunks, self.branches, [])
        plan = plan_reads(wants)
        beyond = max((span.stop for span in plan.spans), default=0)
        if beyond > size or any(span.start < 0 for span in plan.spans):
            raise InputError(
                f"{path}: its metadata places a basket or page at bytes up to {beyond:,} of "
                f"a {size:,}-byte file; the file is damaged, copy it again"
            )
        return offsets, chunks, plan

    def _size_budget(self, path: str, plan: FilePlan) -> None:
        """Grow the automatically sized budget for ``plan``; refuse a set one too small for
        its largest span."""
        spec = self.spec
        if spec.auto_cache:
            self.budget.grow(cache_for_layout(plan.chunk_bytes, spec.stream, spec.fetch_ahead))
        if plan.largest_span > self.budget.limit:
            raise ConfigError(
                f"--cache {self.budget.limit} bytes is too small for {path}: its largest "
                f"basket or page is {plan.largest_span} bytes; use --cache "
                f"{plan.largest_span} or more, or leave --cache unset"
            )

    def _skippable(self, err: BaseException) -> bool:
        """An input's own fault that ``skip_bad_files`` skips: missing, truncated, corrupt;
        not a server that stopped answering, a plugin error or an interruption."""
        return (
            self.spec.skip_bad_files
            and isinstance(err, InputError)
            and not isinstance(err, StorageUnavailable)
        )

    # -- reading (the reader thread) ------------------------------------------------------
    def _read_file(self, index: int, opened: OpenInput, put: _Put) -> bool:
        """Read input ``index`` chunk by chunk onto ``put``; False if the job stopped."""
        entry = self.files[index]
        entry.entries = sum(stop - start for start, stop in opened.chunks)  # its entry range
        entry.cache = self.budget.limit
        for number, (start, stop) in enumerate(opened.chunks):
            began = time.perf_counter()
            opened.reads.advance(number)
            self.prefetcher.pump()  # the look-ahead moved on by one chunk
            if self.preselecting.is_set():
                events, skipped = self._read_preselected(opened, start, stop)
                entry.clusters_skipped += skipped
                if not skipped:
                    self._stop_preselecting()
            else:
                # The next chunk's baskets or pages are decoded while this one's arrays
                # are built and handed over: the decompression threads never wait for
                # this thread (one chunk more decoded at a time).
                store = opened.store
                store.prepare(self.branches, start, stop)
                if number + 1 < len(opened.chunks):
                    store.prepare(self.branches, *opened.chunks[number + 1])
                events = store.arrays(self.branches, start, stop)
            if not put(Chunk(index, start, stop, events, time.perf_counter() - began)):
                return False
        opened.reads.advance(len(opened.chunks))
        return True

    def _stop_preselecting(self) -> None:
        """Every cluster survived: read all branches in one pass from now on, here and in
        every file already planned (their lazy spans are fetched now)."""
        self.preselecting.clear()
        with self._open_lock:
            opened = list(self._open.values())
        for item in opened:
            item.reads.make_eager()

    def _read_preselected(self, opened: OpenInput, start: int, stop: int) -> tuple[Any, int]:
        """Read the cheap branches, preselect, then the rest only for clusters still alive:
        the events, and how many clusters were skipped."""
        store, selection = opened.store, self.selection
        pre = store.arrays(self.cheap, start, stop)
        where = f"plugin {self.spec.plugin} on {opened.path} entries {start}-{stop}"
        mask = call_plugin(selection, where, "preselect_mask", pre)
        premask = check_mask(mask, len(pre), f"{where}: preselect_mask()")
        boundaries = [start, *(o for o in opened.offsets if start < o < stop), stop]
        spans = passing_spans(boundaries, premask)
        skipped = sum(
            1
            for lo, hi in itertools.pairwise(boundaries)
            if not premask[lo - start : hi - start].any()
        )
        # Whole surviving clusters go to select() (contiguous views, no per-event gather);
        # select() gives the full answer on any event, so nothing is lost.
        rest = self.rest
        if not spans:
            spans_cheap = [pre[0:0]]  # zero entries still carry the branch types
            spans_rest = [store.arrays(rest, start, start)] if rest else []
        else:
            spans_cheap = [pre[lo - start : hi - start] for lo, hi in spans]
            spans_rest = [store.arrays(rest, lo, hi) for lo, hi in spans] if rest else []
        cheap_part = spans_cheap[0] if len(spans_cheap) == 1 else ak.concatenate(spans_cheap)
        rest_part = None
        if spans_rest:
            rest_part = spans_rest[0] if len(spans_rest) == 1 else ak.concatenate(spans_rest)
        parts = {name: cheap_part for name in self.cheap}
        parts.update({name: rest_part for name in rest})
        fields = {name: parts[name][name] for name in self.branches}
        return ak.zip(fields, depth_limit=1), skipped

    def _run(self, out: queue.Queue[_Item], stop: threading.Event) -> None:
        """Reader thread: put ``Chunk``s, then ``_DONE`` (or the exception) on ``out``."""
        put = partial(_put, out, stop)
        opener = _OpenAhead(self)
        closer = ThreadPoolExecutor(1, thread_name_prefix="hepstream-close")
        failed = False
        try:
            opener.more()
            for index in range(len(self.paths)):
                if not self._read_input(index, opener, closer, put):
                    return
            put(_DONE)
        except BaseException as err:
            failed = True
            put(err)
        finally:
            # After a failure nothing here is waited for: an open or a close stuck on a
            # stalled server ends within its retry policy, on its own thread, and the job
            # reports at once.
            quick = failed or stop.is_set()
            opener.shutdown(quick)
            closer.shutdown(wait=not quick)

    def _read_input(
        self, index: int, opener: _OpenAhead, closer: ThreadPoolExecutor, put: _Put
    ) -> bool:
        """Input ``index``, opened ahead, read onto ``put`` and closed by ``closer``, then
        its :class:`FileEnd` (with the error that skipped it, if it is skippable); False if
        the job stopped."""
        try:
            opened = opener.next().result()
        except BaseException as err:
            if not self._skippable(err):
                raise
            opener.more()
            return put(FileEnd(index, err))
        opener.more()
        error = None
        try:
            if not self._read_file(index, opened, put):
                return False
        except BaseException as err:
            if not self._skippable(err):
                raise
            error = err  # broke mid-way: the runner drops what it had of it
        finally:
            self.stats[index] = opened.source.stats
            with self._open_lock:
                self._open.pop(index, None)
            # closing a remote file is a round trip: do it off the reading path
            closer.submit(opened.close)
        return put(FileEnd(index, error))

    def __iter__(self) -> Iterator[Chunk | FileEnd]:
        """Chunks from the reader thread, ``spec.prefetch`` decoded ahead; after each
        input's chunks, its :class:`FileEnd`."""
        out: queue.Queue[_Item] = queue.Queue(maxsize=max(1, self.spec.prefetch))
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run, args=(out, stop), name="hepstream-reader", daemon=True
        )
        thread.start()
        try:
            while True:
                item = out.get()
                if isinstance(item, _Done):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()


class _Done:
    """What the reader thread puts on its queue after the last input."""


_DONE = _Done()
#: What the reader thread puts on its queue: a chunk, an input's end, the error that stopped
#: the job, or :data:`_DONE`.
_Item = Chunk | FileEnd | BaseException | _Done
#: How the reader thread hands an item over: False once the job stopped taking them.
_Put = Callable[[_Item], bool]


def _put(out: queue.Queue[_Item], stop: threading.Event, item: _Item) -> bool:
    """Put ``item`` on ``out`` as soon as there is room; False if ``stop`` is set first."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class _OpenAhead:
    """A reader's inputs, opened ``open_ahead`` ahead of the one being read on a pool of
    opener threads, in order; an input known to be missing as its error."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.limit = reader.spec.open_ahead
        self.pool = ThreadPoolExecutor(self.limit, thread_name_prefix="hepstream-open")
        self.ahead: deque[Future[OpenInput]] = deque()
        self.submitted = 0

    def more(self) -> None:
        """Start opening inputs until ``open_ahead`` are opened or opening."""
        reader = self.reader
        while self.submitted < len(reader.paths) and len(self.ahead) < self.limit:
            if self.submitted in reader.missing:
                known: Future[OpenInput] = Future()
                known.set_exception(reader.missing[self.submitted])
                reader.prefetcher.skip(self.submitted)
                self.ahead.append(known)
            else:
                self.ahead.append(self.pool.submit(reader._prepare, self.submitted))
            self.submitted += 1

    def next(self) -> Future[OpenInput]:
        """The next input's opening, in input order."""
        return self.ahead.popleft()

    def shutdown(self, quick: bool) -> None:
        """Stop opening; an input opened ahead is closed once open. ``quick``: wait for
        nothing, cancel what has not started."""
        for future in self.ahead:
            future.add_done_callback(_close_when_opened)
        self.pool.shutdown(wait=not quick, cancel_futures=quick)


def _close_when_opened(future: Future[OpenInput]) -> None:
    """Close an input opened ahead that the job will not read (it stopped first)."""
    if not future.cancelled() and future.exception() is None:
        future.result().close()
