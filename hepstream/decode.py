"""Decoding that is faster than uproot's defaults, giving identical arrays.

- **zlib is inflated by libdeflate** (the ``deflate`` package): whole-buffer inflate, the
  case of a basket or page whose uncompressed size its header gives. On the float baskets
  of the tau1n sample (nearly incompressible: Huffman-coded literals) it gives 310 MB/s
  per core against 150-220 for zlib and ISA-L, and it releases the GIL, so decompression
  threads scale (630 MB/s on two cores). :func:`decompress_blocks` serves hepstream's
  own basket and page decoders (:mod:`hepstream.baskets`, :mod:`hepstream.pages`), with
  zstd decompressed by cramjam straight into the page's buffer; :func:`use_fast_inflate`
  puts libdeflate in uproot's place for what uproot still reads. uproot's own
  ``ZLIB.library = "deflate"`` calls ``zlib_decompress(data, bufsize=...)``, which
  deflate >= 0.8 does not accept.
- **Lists** (``float[n]``; ``std::vector<T>``, ``ROOT::RVec<T>`` with 10 bytes of byte
  count, version and size before each entry's items) are unpacked by compiled passes,
  :func:`unpack_lists`: the entry offsets checked and counted, the items copied without
  headers and byte-swapped in place, with the GIL released. uproot builds a boolean mask
  as long as the basket and an index ten times the number of entries; numpy's own
  checks, ``diff`` and ``astype`` cost a dozen calls under the GIL per basket.

``tests/test_decode.py`` and ``tests/test_baskets.py`` compare with uproot's own arrays.
"""

from __future__ import annotations

import contextlib
import functools
import lzma
import queue
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

import cramjam
import deflate
import lz4.block
import numba
import numpy as np
import uproot.compression


@numba.njit(cache=True, nogil=True)
def _be32(data, at):
    """The big-endian int32 at byte ``at``."""
    value = (np.int64(data[at]) << 24) | (np.int64(data[at + 1]) << 16)
    value |= (np.int64(data[at + 2]) << 8) | np.int64(data[at + 3])
    return value - (np.int64(1) << 32) if value >= (np.int64(1) << 31) else value


@numba.njit(cache=True, nogil=True)
def _list_counts(data, border, keylen, nev, lo, hi, header, itemsize, counts):
    """Items of entries ``[lo, hi)`` into ``counts``; their total, or -1 if the entry
    offsets are damaged (outside the entries, decreasing, shorter than the header, or not
    whole items)."""
    table = border + 4
    total = 0
    start = _be32(data, table + 4 * lo) - keylen
    for i in range(lo, hi):
        stop = border if i + 1 == nev else _be32(data, table + 4 * (i + 1)) - keylen
        size = stop - start - header
        if start < 0 or stop > border or size < 0 or size % itemsize != 0:
            return -1
        counts[i - lo] = size // itemsize
        total += size // itemsize
        start = stop
    return total


@numba.njit(cache=True, nogil=True)
def _list_items(data, border, keylen, nev, lo, hi, header, out):
    """The items of entries ``[lo, hi)`` without their headers, as stored, into ``out``."""
    table = border + 4
    pos = 0
    start = _be32(data, table + 4 * lo) - keylen
    for i in range(lo, hi):
        stop = border if i + 1 == nev else _be32(data, table + 4 * (i + 1)) - keylen
        for k in range(start + header, stop):
            out[pos] = data[k]
            pos += 1
        start = stop


@numba.njit(cache=True, nogil=True)
def _swap2(v):
    for i in range(len(v)):
        x = v[i]
        v[i] = ((x >> 8) & 0xFF) | ((x << 8) & 0xFF00)


@numba.njit(cache=True, nogil=True)
def _swap4(v):
    for i in range(len(v)):
        x = v[i]
        v[i] = (
            ((x >> 24) & 0xFF)
            | ((x >> 8) & 0xFF00)
            | ((x << 8) & 0xFF0000)
            | ((x << 24) & 0xFF000000)
        )


@numba.njit(cache=True, nogil=True)
def _swap8(v):
    for i in range(len(v)):
        x = v[i]
        y = np.uint64(0)
        for b in range(8):
            y = (y << np.uint64(8)) | ((x >> np.uint64(8 * b)) & np.uint64(0xFF))
        v[i] = y


_SWAPS = {2: (_swap2, np.uint16), 4: (_swap4, np.uint32), 8: (_swap8, np.uint64)}


def unpack_lists(data: np.ndarray, border: int, keylen: int, nev: int, lo: int, hi: int,
                 header: int, stored: np.dtype) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Entries ``[lo, hi)`` of a basket of lists (``data``: its uncompressed payload, the
    entries' bytes up to ``border``, then an int32 and each entry's byte offset counted from
    the key's start, ``keylen`` before the payload): the items in native byte order, each
    entry's ``header`` bytes dropped (10 for ``std::vector`` and ``RVec``), and each entry's
    item count. Compiled passes, the GIL released; damaged offsets raise ValueError."""
    itemsize = stored.itemsize
    if len(data) < border + 4 * (nev + 2):
        raise ValueError("a basket has no entry offsets")
    counts = np.empty(hi - lo, np.int64)
    total = _list_counts(data, border, keylen, nev, lo, hi, header, itemsize, counts)
    if total < 0:
        raise ValueError("a basket's entry offsets are damaged")
    if header == 0:  # ``float[n]``: the entries' items lie back to back, one pass
        first = _be32(data, border + 4 + 4 * lo) - keylen
        items = data[first : first + total * itemsize].view(stored)
        return items.astype(stored.newbyteorder("=")), counts
    out = np.empty(total * itemsize, np.uint8)
    _list_items(data, border, keylen, nev, lo, hi, header, out)
    if itemsize > 1 and not stored.isnative:
        swap, unsigned = _SWAPS[itemsize]
        swap(out.view(unsigned))
    return out.view(stored.newbyteorder("=")), counts


#: What a damaged compressed basket or page raises, whichever library decompresses it.
DECOMPRESS_ERRORS: tuple[type[Exception], ...] = (
    zlib.error, deflate.DeflateError, cramjam.DecompressionError, lzma.LZMAError,
    lz4.block.LZ4BlockError,
)  # fmt: skip


class LibdeflateZLIB(uproot.compression._DecompressZLIB):
    """uproot's zlib decompressor, inflating with libdeflate while ``library`` is
    ``"libdeflate"``; any other value (``"zlib"``, ``"isal"``) is uproot's own path."""

    library = "libdeflate"

    def decompress(self, data: bytes, uncompressed_bytes: int | None = None) -> bytes | bytearray:
        if self.library != "libdeflate" or uncompressed_bytes is None:
            return super().decompress(data, uncompressed_bytes)
        return inflate_zlib(data, uncompressed_bytes)


#: A compression block's header: algorithm (2 bytes), method, 3-byte sizes (LE).
BLOCK_HEADER = 9


def decompress_blocks(body: memoryview, size: int, chunk: Any,
                      into: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """ROOT's compressed blocks ``body`` (the end of uproot's ``chunk``), ``size`` bytes once
    uncompressed, as a uint8 array (written into ``into``, ``size`` bytes, where the codec
    allows). A ``body`` of ``size`` bytes was stored as it is (ROOT compresses only what
    shrinks) and is returned as a view. One zlib block is inflated by libdeflate, one zstd
    block by cramjam, both with the GIL released; several blocks or another codec by
    uproot's own ``decompress``."""
    if len(body) == size:
        return np.frombuffer(body, np.uint8)
    one = len(body) >= BLOCK_HEADER and BLOCK_HEADER + (
        body[3] | body[4] << 8 | body[5] << 16
    ) == len(body)
    codec = bytes(body[:2])
    if one and codec == b"ZL":
        data = np.frombuffer(inflate_zlib(body[BLOCK_HEADER:], size), np.uint8)
    elif one and codec == b"ZS":
        data = into if into is not None else np.empty(size, np.uint8)
        written = cramjam.zstd.decompress_into(body[BLOCK_HEADER:], data)  # type: ignore[arg-type]
        data = data if written == size else data[:written]
    else:
        cursor = uproot.source.cursor.Cursor(chunk.stop - len(body))
        data = np.asarray(
            uproot.compression.decompress(chunk, cursor, {}, len(body), size).raw_data
        )
    if len(data) != size:
        raise ValueError(f"{len(body)} compressed bytes gave {len(data)} bytes, not {size}")
    return data


def decode_as_they_arrive(source: Any, ranges: list[tuple[int, int]], executor: Executor,
                          decode: Callable[[int, Any], Any]) -> Arrivals:  # fmt: skip
    """Ask uproot's ``source`` for all ``ranges`` at once (its ``chunks``: hepstream's
    serves them from the read plan) and run ``decode(i, chunk)`` on ``executor`` for range
    ``i`` as soon as its bytes are there, in whichever thread brought them. Nothing here
    waits: the caller may ask for the next chunk's ranges before this one's are decoded,
    and gets the results from :meth:`Arrivals.results`."""
    arrivals = Arrivals(len(ranges), executor, decode)
    if ranges:
        arrivals.expect(source.chunks(ranges, notifications=arrivals))
    return arrivals


class Arrivals:
    """What uproot's sources call a notification queue: each ``put`` chunk (its bytes
    there, or its error) is decoded on the executor; one latch for all of them (a chunk has
    tens to thousands of ranges: no future, lock or condition per range)."""

    def __init__(self, n: int, executor: Executor, decode: Callable[[int, Any], Any]) -> None:
        self._executor, self._decode = executor, decode
        self._results: list[Any] = [None] * n
        self._left = n
        self._error: BaseException | None = None
        self._done = threading.Condition(threading.Lock())
        self._which: dict[int, int] | None = None  # id(chunk) -> range, once chunks() returned
        self._early: list[Any] = []  # chunks put before that

    def expect(self, chunks: list[Any]) -> None:
        with self._done:
            self._which = {id(chunk): i for i, chunk in enumerate(chunks)}
            early, self._early = self._early, []
        for chunk in early:
            self.put(chunk)

    def put(self, chunk: Any) -> None:
        if isinstance(chunk, BaseException):  # an uproot source's way to report a failure
            self._fail(chunk)
            return
        with self._done:
            if self._which is None:
                self._early.append(chunk)
                return
            i = self._which[id(chunk)]
        try:
            if isinstance(self._executor, DecodePool):  # no Future per range
                self._executor.run(self._run, i, chunk)
            else:
                self._executor.submit(self._run, i, chunk)
        except RuntimeError as err:  # the file closed meanwhile: nobody waits for it
            self._fail(err)

    def _run(self, i: int, chunk: Any) -> None:
        try:
            result = self._decode(i, chunk)
        except BaseException as err:
            self._fail(err)
            return
        with self._done:
            self._results[i] = result
            self._left -= 1
            if not self._left:
                self._done.notify_all()

    def _fail(self, error: BaseException) -> None:
        with self._done:
            if self._error is None:
                self._error = error
            self._done.notify_all()

    def results(self) -> list[Any]:
        """Every range's decoded result, in the order of the ranges, once all are there;
        the first error instead, as soon as there is one."""
        with self._done:
            while self._left and self._error is None:
                self._done.wait()
            if self._error is not None:
                raise self._error
            return self._results


class DecodePool(Executor):
    """Threads that decode baskets and pages, in the order they were handed in: a file's
    decompression executor, for hepstream's decoders (:class:`Arrivals`) and uproot's.

    ``submit`` queues the call and returns a Future, as an ``Executor`` must; hepstream's
    decoders use :meth:`run`, which returns nothing: a job decodes thousands of baskets
    per file, and a ``Future`` and a work item each (a lock and a condition) cost GIL
    time the reader and the selection need. A call that raises is the caller's to report
    (:class:`Arrivals` and uproot catch everything in what they hand in)."""

    def __init__(self, threads: int, name: str = "hepstream-decompress") -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{k}", daemon=True)
            for k in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, fn: Callable[..., Any], *args: Any) -> None:
        """Call ``fn(*args)`` on one of the threads; RuntimeError once shut down."""
        self._put((fn, args, None))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        self._put((functools.partial(fn, **kwargs) if kwargs else fn, args, future))
        return future

    def _put(self, item: tuple) -> None:
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        self._queue.put(item)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, future = item
            if future is None:
                with contextlib.suppress(BaseException):  # see the class docstring
                    fn(*args)
            elif future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as err:
                    future.set_exception(err)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if cancel_futures:  # calls not started yet are dropped, their Futures cancelled
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[2] is not None:
                    item[2].cancel()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()


def inflate_zlib(data: Any, size: int) -> bytes | bytearray:
    """One zlib stream, ``size`` bytes when inflated, by libdeflate (GIL released). A
    stream that inflates to fewer bytes gives fewer bytes (the caller compares); a damaged
    one raises one of :data:`DECOMPRESS_ERRORS`."""
    return deflate.zlib_decompress(data, size)


@functools.cache
def use_fast_inflate() -> bool:
    """Inflate zlib baskets with libdeflate for reading (writers keep zlib): uproot's
    decompressor of zlib blocks becomes a :class:`LibdeflateZLIB`."""
    # every read goes through this module-level instance (uproot 5's ``decompress``
    # looks it up per block); ZLIB() writers are other objects and keep zlib
    uproot.compression._decompress_ZLIB = LibdeflateZLIB()
    return True
