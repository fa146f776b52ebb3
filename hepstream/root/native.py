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
from collections.abc import Callable
from typing import Any, cast

import deflate
import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir
from numba.core import cgutils, types
from numba.core.typing.templates import Signature
from numba.extending import intrinsic

#: An integer in compiled code: numba types Python's and numpy's alike (int64), and the
#: kernels' arithmetic on array elements gives numpy's.
Int = int | np.integer[Any]

#: What an intrinsic's typing function gives numba: the call's signature and the function
#: that emits its code (numba's and llvmlite's lowering objects carry no annotations).
_Typed = tuple[Signature, Callable[[Any, Any, Signature, Any], Any]] | None


def _pointer_typing(_typingctx: object, address: types.Type) -> _Typed:
    """``_pointer(address)``: the address ``address`` (an integer) as a ``void *``."""
    if not isinstance(address, types.Integer):
        return None

    def codegen(_context: Any, builder: Any, _signature: Signature, args: Any) -> Any:
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(address), codegen


def _call_pointer_typing(
    _typingctx: object,
    function: types.Type,
    a: types.Type,
    b: types.Type,
    c: types.Type,
    d: types.Type,
    e: types.Type,
    f: types.Type,
) -> _Typed:
    """``_call_pointer(function, a, b, c, d, e, f)``: ``int function(void *, void *,
    size_t, void *, size_t, void *)`` at address ``function``: the signature of
    libdeflate's ``*_decompress``."""
    args = (function, a, b, c, d, e, f)
    if not all(isinstance(arg, types.Integer) for arg in args):
        return None

    def codegen(context: Any, builder: Any, _signature: Signature, llargs: Any) -> Any:
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


def _call_alloc_typing(_typingctx: object, function: types.Type) -> _Typed:
    """``_call_alloc(function)``: ``void *function(void)`` (libdeflate's
    ``alloc_decompressor``), as an integer."""
    if not isinstance(function, types.Integer):
        return None

    def codegen(context: Any, builder: Any, _signature: Signature, llargs: Any) -> Any:
        fnty = ir.FunctionType(cgutils.voidptr_t, [])
        made = builder.call(builder.inttoptr(llargs[0], fnty.as_pointer()), [])
        return builder.ptrtoint(made, context.get_value_type(types.intp))

    return types.intp(function), codegen


def _call_free_typing(_typingctx: object, function: types.Type, handle: types.Type) -> _Typed:
    """``_call_free(function, handle)``: ``void function(void *)`` (libdeflate's
    ``free_decompressor``)."""
    if not (isinstance(function, types.Integer) and isinstance(handle, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, _signature: Signature, llargs: Any) -> Any:
        fnty = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t])
        target = builder.inttoptr(llargs[0], fnty.as_pointer())
        builder.call(target, [builder.inttoptr(llargs[1], cgutils.voidptr_t)])
        return context.get_dummy_value()

    return types.none(function, handle), codegen


# numba's stubs give an intrinsic its typing function's signature (the typing context
# first), but compiled code calls it without the context: each cast names the call
_pointer = cast(Callable[[Int], ctypes.c_void_p], intrinsic(_pointer_typing))
_call_pointer = cast(
    Callable[[int, int, int, int, int, int, int], int], intrinsic(_call_pointer_typing)
)
_call_alloc = cast(Callable[[int], int], intrinsic(_call_alloc_typing))
_call_free = cast(Callable[[int, int], None], intrinsic(_call_free_typing))
# and numba.carray an int's shape, where compiled code takes numpy's integers too
_carray = cast(
    Callable[[ctypes.c_void_p, Int, type[np.uint8]], npt.NDArray[np.uint8]], numba.carray
)


@numba.njit(cache=True, nogil=True, inline="always")
def bytes_at(address: Int, n: Int) -> npt.NDArray[np.uint8]:
    """The ``n`` bytes at ``address`` as a uint8 array (nothing checks or keeps them)."""
    return _carray(_pointer(address), n, np.uint8)


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


@numba.njit(cache=True, nogil=True)
def inflate_at(
    functions: npt.NDArray[np.intp], handle: int, source: int, n: int, into: int, size: int
) -> int:
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
def new_inflater(functions: npt.NDArray[np.intp]) -> int:
    """A libdeflate decompressor (an address; 0 when out of memory)."""
    return _call_alloc(functions[1])


@numba.njit(cache=True, nogil=True)
def free_inflater(functions: npt.NDArray[np.intp], handle: int) -> None:
    """Free a decompressor :func:`new_inflater` made."""
    _call_free(functions[2], handle)
