"""ROOT's compression blocks, decompressed faster than uproot's defaults, giving identical
bytes.

**zlib is inflated by libdeflate** (the ``deflate`` package): whole-buffer inflate, the case
of a basket or page whose uncompressed size its header gives, with the GIL released so
decompression threads scale. :func:`decompress_blocks` serves hepstream's own basket and
page decoders (:mod:`hepstream.root.baskets`, :mod:`hepstream.root.pages`), with zstd
decompressed by cramjam straight into the page's buffer; :func:`use_fast_inflate` puts
libdeflate in uproot's place for what uproot still reads. uproot's own
``ZLIB.library = "deflate"`` calls ``zlib_decompress(data, bufsize=...)``, which
deflate >= 0.8 does not accept.

Every claim of an uncompressed size is checked (:func:`check_claim`) before anything is
allocated for it: a damaged size field is refused, not a crash.
"""

from __future__ import annotations

import functools
import lzma
import zlib
from typing import Any

import cramjam
import deflate
import lz4.block
import numpy as np
import numpy.typing as npt

from hepstream.root.uproot_internals import (
    DecompressZLIB,
    decompress_by_uproot,
    set_zlib_decompressor,
)

#: What a damaged compressed basket or page raises, whichever library decompresses it.
DECOMPRESS_ERRORS: tuple[type[Exception], ...] = (
    zlib.error,
    deflate.DeflateError,
    cramjam.DecompressionError,
    lzma.LZMAError,
    lz4.block.LZ4BlockError,
)

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


def inflate_zlib(data: Any, size: int) -> bytes | bytearray:
    """One zlib stream, ``size`` bytes when inflated, by libdeflate (GIL released). A
    stream that inflates to fewer bytes gives fewer bytes (the caller compares); a damaged
    one raises one of :data:`DECOMPRESS_ERRORS`."""
    inflated: bytes | bytearray = deflate.zlib_decompress(data, size)
    return inflated


def decompress_blocks(
    body: memoryview,
    size: int,
    chunk: Any,
    into: npt.NDArray[np.uint8] | None = None,
    head: bool = False,
) -> npt.NDArray[np.uint8]:
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
        # numpy arrays are buffers: numpy's stubs say so only from Python 3.12 on
        written = cramjam.zstd.decompress_into(body[BLOCK_HEADER:], data)  # type: ignore[arg-type]
        data = data if written == size else data[:written]
    else:
        start = chunk.start if head else chunk.stop - len(body)
        data = decompress_by_uproot(chunk, start, len(body), size)
    if len(data) != size:
        raise ValueError(f"{len(body)} compressed bytes gave {len(data)} bytes, not {size}")
    return data


class LibdeflateZLIB(DecompressZLIB):  # type: ignore[misc]  # uproot ships no type information
    """uproot's zlib decompressor, inflating with libdeflate while ``library`` is
    ``"libdeflate"``; any other value (``"zlib"``, ``"isal"``) is uproot's own path."""

    library = "libdeflate"

    def decompress(self, data: bytes, uncompressed_bytes: int | None = None) -> bytes | bytearray:
        if self.library != "libdeflate" or uncompressed_bytes is None:
            inflated: bytes | bytearray = super().decompress(data, uncompressed_bytes)
            return inflated
        return inflate_zlib(data, uncompressed_bytes)


@functools.cache
def use_fast_inflate() -> bool:
    """Inflate zlib blocks with libdeflate for everything uproot reads (writers keep zlib):
    uproot's decompressor of zlib blocks becomes a :class:`LibdeflateZLIB`. Called by the
    reader before it opens a file; the first call patches, the others do nothing."""
    set_zlib_decompressor(LibdeflateZLIB())
    return True
