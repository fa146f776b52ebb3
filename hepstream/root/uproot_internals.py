"""Every private part of uproot hepstream relies on, named once.

hepstream decodes baskets and pages itself and builds arrays on uproot's own forms, so it
reaches past uproot's public API in a few places. Each is an accessor here, checked against
the uproot version :data:`CHECKED_AGAINST`: upgrading uproot means checking this module
(``tests/test_baskets.py``, ``tests/test_pages.py`` and ``tests/test_decode.py`` compare
with uproot's own arrays). Each is called per file, cluster, column or basket, never per
entry.

The bytes layer uses uproot's source interface below this layer, so it cannot import this
module; its uses are named here too, and each is listed where it is used
(``hepstream/io/source.py``): ``uproot.source.chunk.Source`` subclassed as the handler
``uproot.open`` checks with ``issubclass``, with its ``_file_path``, ``_num_bytes``,
``_num_requests``, ``_num_requested_chunks`` and ``_num_requested_bytes`` set by the
subclass; ``uproot.source.chunk.Chunk(source, start, stop, future)``; and
``uproot.source.futures.TrivialFuture``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import uproot.compression
import uproot.source.cursor
from uproot.behaviors.RNTuple import _fill_container_dict

#: The uproot release every accessor here was checked against.
CHECKED_AGAINST = "5.7.7"

#: uproot's decompressor of zlib blocks, ``uproot.compression._DecompressZLIB`` (checked
#: against uproot 5.7.7): its ``decompress(data, uncompressed_bytes)`` picks the library by
#: its ``library`` attribute; ``uproot.ZLIB``, the writers' codec, subclasses it too.
DecompressZLIB = uproot.compression._DecompressZLIB


def set_zlib_decompressor(decompressor: object) -> None:
    """Make ``decompressor`` (a :data:`DecompressZLIB`) the one uproot inflates every zlib
    block with that it reads: ``uproot.compression.decompress`` looks up the module's
    ``_decompress_ZLIB`` instance per block (checked against uproot 5.7.7). Writers'
    ``uproot.ZLIB`` objects are other instances and keep their own."""
    uproot.compression._decompress_ZLIB = decompressor


def decompress_by_uproot(
    chunk: Any, start: int, compressed: int, uncompressed: int
) -> npt.NDArray[np.uint8]:
    """The ``compressed`` bytes of ROOT's compression blocks at byte ``start`` of uproot's
    ``chunk``, ``uncompressed`` bytes once decompressed, by uproot: any codec, any number of
    blocks (``uproot.compression.decompress`` with a ``uproot.source.cursor.Cursor``, both
    outside uproot's documented API; checked against uproot 5.7.7)."""
    cursor = uproot.source.cursor.Cursor(start)
    out = uproot.compression.decompress(chunk, cursor, {}, compressed, uncompressed)
    return np.asarray(out.raw_data)


def field_columns(ntuple: Any) -> dict[int, list[Any]]:
    """The column records of each field of uproot's RNTuple ``ntuple`` (several where a
    field is stored in several representations), by field id: the private
    ``RNTuple._column_records_dict`` (checked against uproot 5.7.7)."""
    by_field: dict[int, list[Any]] = ntuple._column_records_dict
    return by_field


def fill_container(container: dict[str, Any], content: Any, key: str, column_type: int) -> None:
    """Add the buffers of one column, ``content`` as uproot's ``read_cluster_range`` gives
    it, under form key ``key`` to ``container`` for ``awkward.from_buffers``: what uproot's
    RNTuple reader does, including its own conversions (list offsets, cardinalities,
    options), by the private ``uproot.behaviors.RNTuple._fill_container_dict`` (checked
    against uproot 5.7.7)."""
    _fill_container_dict(container, content, key, column_type, None)
