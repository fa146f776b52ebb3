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
- **Lists stored with a header per entry** (``std::vector<T>``, ``ROOT::RVec<T>``: 10
  bytes of byte count, version and size before the items) are unpacked by one compiled
  pass, :func:`strip_headers`, with the GIL released; uproot builds a boolean mask as long
  as the basket and an index ten times the number of entries.

``tests/test_decode.py`` and ``tests/test_baskets.py`` compare with uproot's own arrays.
"""

from __future__ import annotations

import functools
import lzma
import zlib
from typing import Any

import cramjam
import deflate
import lz4.block
import numba
import numpy as np
import uproot.compression


@numba.njit(cache=True, nogil=True)
def strip_headers(
    data: np.ndarray, byte_offsets: np.ndarray, header: int, itemsize: int
) -> tuple[np.ndarray, np.ndarray]:
    """Items of every entry without its ``header`` bytes, and the entries' item offsets."""
    n = len(byte_offsets) - 1
    size = 0
    for i in range(n):  # damaged offsets must not read outside the basket
        if byte_offsets[i] < 0 or byte_offsets[i + 1] > len(data):
            raise ValueError("std::vector entry offsets point outside the basket")
        if byte_offsets[i + 1] - byte_offsets[i] < header:
            raise ValueError("std::vector entry shorter than its header")
        size += byte_offsets[i + 1] - byte_offsets[i] - header
    out = np.empty(size, np.uint8)
    offsets = np.empty(n + 1, np.int32)
    offsets[0] = 0
    pos = 0
    for i in range(n):
        lo = byte_offsets[i] + header
        hi = byte_offsets[i + 1]
        for k in range(lo, hi):
            out[pos] = data[k]
            pos += 1
        offsets[i + 1] = pos // itemsize
    return out, offsets


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
    allows). One zlib block is inflated by libdeflate, one zstd block by cramjam, both with
    the GIL released; several blocks or another codec by uproot's own ``decompress``."""
    one = len(body) >= BLOCK_HEADER and BLOCK_HEADER + (
        body[3] | body[4] << 8 | body[5] << 16
    ) == len(body)
    codec = bytes(body[:2])
    if one and codec == b"ZL":
        data = np.frombuffer(inflate_zlib(body[BLOCK_HEADER:], size), np.uint8)
    elif one and codec == b"ZS":
        data = into if into is not None else np.empty(size, np.uint8)
        written = cramjam.zstd.decompress_into(body[BLOCK_HEADER:], data)  # type: ignore[arg-type]
        if written != size:
            raise ValueError(f"{len(body)} compressed bytes gave {written} bytes, not {size}")
    else:
        cursor = uproot.source.cursor.Cursor(chunk.stop - len(body))
        data = np.asarray(
            uproot.compression.decompress(chunk, cursor, {}, len(body), size).raw_data
        )
    if len(data) != size:
        raise ValueError(f"{len(body)} compressed bytes gave {len(data)} bytes, not {size}")
    return data


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
