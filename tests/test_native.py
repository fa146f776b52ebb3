"""libdeflate through its C API and memory by address, as compiled loops use them."""

from __future__ import annotations

import zlib

import numba
import numpy as np

from hepstream.root.native import bytes_at, free_inflater, inflate_at, libdeflate, new_inflater


@numba.njit
def _inflate(functions, source, into):
    handle = new_inflater(functions)
    code = inflate_at(
        functions, handle, source.ctypes.data, len(source), into.ctypes.data, len(into)
    )
    free_inflater(functions, handle)
    return code


@numba.njit
def _copy(address, n, into):
    into[:] = bytes_at(address, n)


def test_the_deflate_wheel_exports_libdeflate_and_it_inflates_like_zlib():
    functions = np.array(libdeflate(), np.intp)
    assert functions.all()  # else every zlib basket takes the slower per-basket path
    data = np.random.default_rng(2).random(5000).astype(">f4").tobytes()
    packed = np.frombuffer(zlib.compress(data, 1), np.uint8)
    out = np.empty(len(data), np.uint8)
    assert _inflate(functions, packed, out) == 0
    assert out.tobytes() == data
    assert _inflate(functions, packed, np.empty(len(data) + 1, np.uint8)) == 2  # fewer bytes
    assert _inflate(functions, packed, np.empty(len(data) - 1, np.uint8)) == 3  # more bytes
    damaged = packed.copy()
    damaged[len(damaged) // 2 : len(damaged) // 2 + 16] = 0
    assert _inflate(functions, damaged, out) != 0


def test_bytes_at_reads_memory_where_it_lies():
    source = np.arange(256, dtype=np.uint8)
    into = np.zeros(100, np.uint8)
    _copy(source.ctypes.data + 50, 100, into)
    assert np.array_equal(into, source[50:150])
