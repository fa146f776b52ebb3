"""Memory by address and libdeflate through its C API, for compiled (numba) loops.

A loop over many baskets or pages, compiled and run with the GIL released, reads each
one's bytes where they lie and writes values where they belong, by address: numba takes
no list of buffers. libdeflate is called through function pointers passed in at run time
(a ctypes function as a global would make the compiled code uncacheable); the library is
the one the ``deflate`` package is built on, whose extension module exports it.
"""

from __future__ import annotations

import ctypes
import functools

import deflate
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def _pointer(_typingctx, address):
    """The address ``address`` (an integer) as a ``void *``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(_context, builder, _signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def bytes_at(address, n):
    """The ``n`` bytes at ``address`` as a uint8 array (nothing checks or keeps them)."""
    return numba.carray(_pointer(address), n, np.uint8)


@intrinsic
def _call_pointer(_typingctx, function, a, b, c, d, e, f):
    """``int function(void *, void *, size_t, void *, size_t, void *)`` at address
    ``function``: the signature of libdeflate's ``*_decompress``."""
    args = (function, a, b, c, d, e, f)
    if not all(isinstance(arg, types.Integer) for arg in args):
        return None

    def codegen(context, builder, _signature, llargs):
        voidp, size = cgutils.voidptr_t, context.get_value_type(types.uintp)
        fnty = ir.FunctionType(ir.IntType(32), [voidp, voidp, size, voidp, size, voidp])
        call = builder.inttoptr(llargs[0], fnty.as_pointer())
        kinds = (voidp, voidp, size, voidp, size, voidp)
        values = [
            builder.inttoptr(v, k)
            if k is voidp
            else builder.zext(v, k)
            if v.type.width < k.width
            else builder.trunc(v, k)
            if v.type.width > k.width
            else v
            for v, k in zip(llargs[1:], kinds, strict=True)
        ]
        return builder.call(call, values)

    return types.int32(*args), codegen


@functools.cache
def libdeflate() -> tuple[int, int, int]:
    """Addresses of libdeflate's ``zlib_decompress``, ``alloc_decompressor`` and
    ``free_decompressor``: the library the ``deflate`` package is built on, in its own
    extension module (which exports them); zeros if a build of it does not (callers then
    inflate through ``deflate``'s Python API)."""
    names = ("zlib_decompress", "alloc_decompressor", "free_decompressor")
    try:
        lib = ctypes.CDLL(deflate._deflate.__file__)
        found = [ctypes.cast(getattr(lib, f"libdeflate_{n}"), ctypes.c_void_p).value for n in names]
    except (OSError, AttributeError):
        return (0, 0, 0)
    return (found[0] or 0, found[1] or 0, found[2] or 0) if all(found) else (0, 0, 0)


@intrinsic
def _call_alloc(_typingctx, function):
    """``void *function(void)`` (libdeflate's ``alloc_decompressor``), as an integer."""
    if not isinstance(function, types.Integer):
        return None

    def codegen(context, builder, _signature, llargs):
        fnty = ir.FunctionType(cgutils.voidptr_t, [])
        made = builder.call(builder.inttoptr(llargs[0], fnty.as_pointer()), [])
        return builder.ptrtoint(made, context.get_value_type(types.intp))

    return types.intp(function), codegen


@intrinsic
def _call_free(_typingctx, function, handle):
    """``void function(void *)`` (libdeflate's ``free_decompressor``)."""
    if not (isinstance(function, types.Integer) and isinstance(handle, types.Integer)):
        return None

    def codegen(context, builder, _signature, llargs):
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t])
        target = builder.inttoptr(llargs[0], fnty.as_pointer())
        builder.call(target, [builder.inttoptr(llargs[1], cgutils.voidptr_t)])
        return context.get_dummy_value()

    return types.none(function, handle), codegen


@numba.njit(cache=True, nogil=True)
def inflate_at(functions, handle, source, n, into, size):
    """libdeflate inflates the zlib stream of ``n`` bytes at address ``source`` into the
    ``size`` bytes at ``into`` (``functions``: :func:`libdeflate`'s addresses as an array;
    ``handle``: a decompressor of this thread's): 0, or libdeflate's error (1 damaged data,
    2 fewer bytes than ``size``, 3 more)."""
    actual = np.zeros(1, np.intp)
    code = _call_pointer(functions[0], handle, source, n, into, size, actual.ctypes.data)
    if code == 0 and actual[0] != size:
        return 2
    return code


@numba.njit(cache=True, nogil=True)
def new_inflater(functions):
    """A libdeflate decompressor (an address; 0 when out of memory)."""
    return _call_alloc(functions[1])


@numba.njit(cache=True, nogil=True)
def free_inflater(functions, handle):
    _call_free(functions[2], handle)
