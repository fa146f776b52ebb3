"""Decoding that is faster than uproot's defaults, giving identical arrays.

- **zlib is inflated by libdeflate** (the ``deflate`` package): whole-buffer inflate, the
  case of a basket or page whose uncompressed size its header gives. On the float baskets
  of the tau1n sample (nearly incompressible: Huffman-coded literals) it gives 310 MB/s
  per core against 150-220 for zlib and ISA-L, and it releases the GIL, so decompression
  threads scale (630 MB/s on two cores). :func:`decompress_blocks` serves hepstream's
  own basket and page decoders (:mod:`hepstream.root.baskets`, :mod:`hepstream.root.pages`), with
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

import functools
import lzma
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import cramjam
import deflate
import lz4.block
import numba
import numpy as np
import uproot.compression

from hepstream.io.pool import WorkPool
from hepstream.root.native import bytes_at


@numba.njit(cache=True, nogil=True)
def _be32(data, at):
    """The big-endian int32 at byte ``at``."""
    value = (np.int64(data[at]) << 24) | (np.int64(data[at + 1]) << 16)
    value |= (np.int64(data[at + 2]) << 8) | np.int64(data[at + 3])
    return value - (np.int64(1) << 32) if value >= (np.int64(1) << 31) else value


#: Bytes before a ``std::vector``'s or ``RVec``'s items in a basket: its byte count (with
#: ROOT's kByteCountMask bit), its class version, its size.
VECTOR_HEADER = 10


@numba.njit(cache=True, nogil=True)
def _list_counts(data, border, keylen, nev, lo, hi, header, itemsize, counts):
    """Items of entries ``[lo, hi)`` into ``counts``; their total, or -1 if the entry
    offsets are damaged (outside the entries, decreasing, shorter than the header, or not
    whole items) or disagree with a vector's own header (its byte count and size)."""
    table = border + 4
    total = 0
    start = _be32(data, table + 4 * lo) - keylen
    for i in range(lo, hi):
        stop = border if i + 1 == nev else _be32(data, table + 4 * (i + 1)) - keylen
        size = stop - start - header
        if start < 0 or stop > border or size < 0 or size % itemsize != 0:
            return -1
        if header == VECTOR_HEADER and (
            _be32(data, start) & 0x3FFFFFFF != stop - start - 4
            or _be32(data, start + 6) != size // itemsize
        ):
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
def _be16(data, at):
    value = (np.int64(data[at]) << 8) | np.int64(data[at + 1])
    return value - 65536 if value >= 32768 else value


@numba.njit(cache=True, nogil=True)
def _swap_into(src, dst_address, n, itemsize, swap):
    """``n`` items of ``src`` (bytes) to ``dst_address``, each item's bytes reversed when
    ``swap``."""
    if itemsize == 1 or not swap:
        bytes_at(dst_address, n * itemsize)[:] = src[: n * itemsize]
    elif itemsize == 2:
        a = src[: 2 * n].view(np.uint16)
        b = bytes_at(dst_address, 2 * n).view(np.uint16)
        for i in range(n):
            x = a[i]
            b[i] = (x >> np.uint16(8)) | (x << np.uint16(8))
    elif itemsize == 4:
        a4 = src[: 4 * n].view(np.uint32)
        b4 = bytes_at(dst_address, 4 * n).view(np.uint32)
        for i in range(n):
            x = a4[i]
            b4[i] = (
                (x >> np.uint32(24)) | ((x >> np.uint32(8)) & np.uint32(0xFF00))
                | ((x << np.uint32(8)) & np.uint32(0xFF0000)) | (x << np.uint32(24))
            )  # fmt: skip
    else:
        a8 = src[: 8 * n].view(np.uint64)
        b8 = bytes_at(dst_address, 8 * n).view(np.uint64)
        for i in range(n):
            x = a8[i]
            y = (x >> np.uint64(56)) | (x << np.uint64(56))
            y |= ((x >> np.uint64(40)) & np.uint64(0xFF00)) | (
                (x << np.uint64(40)) & np.uint64(0xFF000000000000)
            )
            y |= ((x >> np.uint64(24)) & np.uint64(0xFF0000)) | (
                (x << np.uint64(24)) & np.uint64(0xFF0000000000)
            )
            y |= ((x >> np.uint64(8)) & np.uint64(0xFF000000)) | (
                (x << np.uint64(8)) & np.uint64(0xFF00000000)
            )
            b8[i] = y  # fmt: skip


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
        _swap_into(out, out.__array_interface__["data"][0], total, itemsize, True)
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

#: The most uncompressed bytes one basket or page may claim. ROOT's buffers stop at 1 GiB
#: (TBuffer's kMaxBufferSize); a larger claim is damage, refused before any allocation.
MAX_BUFFER = 1 << 30


def check_claim(nbytes: int, what: str) -> None:
    """Refuse ``what``'s claim of ``nbytes`` uncompressed bytes if no ROOT buffer is that
    large (or it is negative): the field holding it is damaged."""
    if not 0 <= nbytes <= MAX_BUFFER:
        raise ValueError(f"{what} claims {nbytes:,} bytes (at most {MAX_BUFFER:,})")


def decompress_blocks(body: memoryview, size: int, chunk: Any,
                      into: np.ndarray | None = None, head: bool = False) -> np.ndarray:  # fmt: skip
    """ROOT's compressed blocks ``body`` (the end of uproot's ``chunk``, its start with
    ``head``: a page followed by its checksum), ``size`` bytes once
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
        cursor = uproot.source.cursor.Cursor(chunk.start if head else chunk.stop - len(body))
        data = np.asarray(
            uproot.compression.decompress(chunk, cursor, {}, len(body), size).raw_data
        )
    if len(data) != size:
        raise ValueError(f"{len(body)} compressed bytes gave {len(data)} bytes, not {size}")
    return data


def decode_as_they_arrive(
    source: Any, ranges: list[tuple[int, int]], executor: Executor,
    decode: Callable[[int, Any], Any],
    decode_many: Callable[[list[tuple[int, Any]]], list[Any]] | None = None,
) -> Arrivals:  # fmt: skip
    """Ask uproot's ``source`` for all ``ranges`` at once (its ``chunks``: hepstream's
    serves them from the read plan) and run ``decode(i, chunk)`` on ``executor`` for range
    ``i`` as soon as its bytes are there, in whichever thread brought them. Nothing here
    waits: the caller may ask for the next chunk's ranges before this one's are decoded,
    and gets the results from :meth:`Arrivals.results`.

    With ``decode_many`` (a list of ``(i, chunk)`` to their results), the ranges already
    there when ``chunks`` returns are decoded in one batch per decompression thread."""
    arrivals = Arrivals(len(ranges), executor, decode, decode_many)
    if ranges:
        arrivals.expect(source.chunks(ranges, notifications=arrivals))
    return arrivals


class Arrivals:
    """What uproot's sources call a notification queue: each ``put`` chunk (its bytes
    there, or its error) is decoded on the executor; one latch for all of them (a chunk has
    tens to thousands of ranges: no future, lock or condition per range)."""

    def __init__(self, n: int, executor: Executor, decode: Callable[[int, Any], Any],
                 decode_many: Callable[[list[tuple[int, Any]]], list[Any]] | None = None,
                 ) -> None:  # fmt: skip
        self._executor, self._decode, self._decode_many = executor, decode, decode_many
        self._results: list[Any] = [None] * n
        self._left = n
        self._error: BaseException | None = None
        self._done = threading.Condition(threading.Lock())
        self._which: dict[int, int] | None = None  # id(chunk) -> range, once chunks() returned
        self._early: list[Any] = []  # chunks put before that

    def expect(self, chunks: list[Any]) -> None:
        with self._done:
            which = self._which = {id(chunk): i for i, chunk in enumerate(chunks)}
            early, self._early = self._early, []
        if self._decode_many is None or len(early) < 2:
            for chunk in early:
                self.put(chunk)
            return
        errors = [chunk for chunk in early if isinstance(chunk, BaseException)]
        if errors:
            self._fail(errors[0])
            return
        pairs = [(which[id(chunk)], chunk) for chunk in early]
        parts = min(len(pairs), len(getattr(self._executor, "threads", ())) or 1)
        for k in range(parts):  # interleaved: each batch gets a share of every branch
            self._schedule(self._run_many, pairs[k::parts])

    def _schedule(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            if isinstance(self._executor, WorkPool):  # no Future per call
                self._executor.run(fn, *args)
            else:
                self._executor.submit(fn, *args)
        except RuntimeError as err:  # the file closed meanwhile: nobody waits for it
            self._fail(err)

    def _run_many(self, pairs: list[tuple[int, Any]]) -> None:
        assert self._decode_many is not None
        try:
            results = self._decode_many(pairs)
        except BaseException as err:
            self._fail(err)
            return
        with self._done:
            for (i, _), result in zip(pairs, results, strict=True):
                self._results[i] = result
            self._left -= len(pairs)
            if not self._left:
                self._done.notify_all()

    def put(self, chunk: Any) -> None:
        if isinstance(chunk, BaseException):  # an uproot source's way to report a failure
            self._fail(chunk)
            return
        with self._done:
            if self._which is None:
                self._early.append(chunk)
                return
            i = self._which[id(chunk)]
        self._schedule(self._run, i, chunk)

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
