"""The job's calls into plugin code: whatever a plugin raises becomes one
:class:`~hepstream.errors.PluginError` line, and what it returns is checked."""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hepstream.errors import HepstreamError, PluginError
from hepstream.plugin.api import Selection


def call_plugin(selection: Selection, where: str, method: str, *args: Any) -> Any:
    """Call one of the plugin's methods; anything it raises becomes one PluginError line."""
    try:
        return getattr(selection, method)(*args)
    except PluginError as err:  # e.g. a histogram's fill refused: say where it happened
        if str(err).startswith("plugin "):
            raise
        raise PluginError(f"{where}: {method}(): {err}") from err
    except HepstreamError:
        raise
    except Exception as err:
        raise plugin_failure(f"{where}: {method}()", err) from err


def check_mask(mask: Any, length: int, where: str) -> np.ndarray:
    """The plugin's mask as a numpy bool array of ``length``, or a PluginError saying why."""
    try:
        array = np.asarray(mask)
    except Exception as err:
        raise PluginError(f"{where}: mask is not array-like ({type(mask).__name__})") from err
    if array.dtype != np.bool_:
        raise PluginError(
            f"{where}: returned {array.dtype} values; return a numpy bool mask "
            f"(one True/False per event)"
        )
    if array.ndim != 1 or len(array) != length:
        raise PluginError(f"{where}: returned a mask of shape {array.shape}; expected ({length},)")
    return array


def check_selection(
    result: Any, length: int, cuts: Sequence[str], where: str
) -> tuple[np.ndarray, list[int]]:
    """What ``select()`` returned, as the mask of events kept and, for a plugin with
    ``cuts``, how many events passed each cut and every one before it; or a PluginError.

    ``result`` is a bool mask; with ``cuts``, an integer array (cuts passed in a row per
    event) or a dict of one mask per cut, in ``cuts``' order.
    """
    if not cuts:
        if isinstance(result, Mapping) or _is_integer(result):
            raise PluginError(
                f"{where}: returned cut results but the plugin names no cuts; set "
                f"`cuts = [...]` on the class, or return one bool mask"
            )
        return check_mask(result, length, where), []
    if isinstance(result, Mapping):
        if list(result) != list(cuts):
            raise PluginError(
                f"{where}: returned masks for cuts {list(result)}; the plugin's cuts are "
                f"{list(cuts)} (same names, same order)"
            )
        passing = np.ones(length, dtype=bool)
        counts = []
        for cut, mask in result.items():
            passing &= check_mask(mask, length, f"{where}: cut {cut!r}")
            counts.append(int(np.count_nonzero(passing)))
        return passing, counts
    if not _is_integer(result):
        raise PluginError(
            f"{where}: the plugin names cuts {list(cuts)}: return per event how many it "
            f"passed in a row (integers 0-{len(cuts)}) or a dict {{cut: mask}}"
        )
    passed = np.asarray(result)
    if passed.ndim != 1 or len(passed) != length:
        raise PluginError(
            f"{where}: returned an array of shape {passed.shape}; expected ({length},)"
        )
    # one pass: events per number of cuts passed; then "passed at least k+1" per cut
    per_stage = np.bincount(
        np.clip(passed, 0, len(cuts) + 1).astype(np.int64), minlength=len(cuts) + 2
    )
    if per_stage[len(cuts) + 1] or (len(passed) and passed.min() < 0):
        raise PluginError(
            f"{where}: returned cuts-passed values outside 0-{len(cuts)} "
            f"(the plugin has {len(cuts)} cuts)"
        )
    at_least = np.cumsum(per_stage[::-1])[::-1]
    return passed == len(cuts), [int(n) for n in at_least[1 : len(cuts) + 1]]


def _is_integer(result: Any) -> bool:
    dtype = getattr(result, "dtype", None)
    return dtype is not None and dtype.kind in "iu"


def output_columns(selection: Selection, selected: Any, where: str) -> dict[str, Any]:
    """The plugin's ``output()`` of the ``selected`` events: a non-empty dict of columns,
    one entry per event each, or a PluginError saying what is wrong."""
    columns = call_plugin(selection, where, "output", selected)
    if not isinstance(columns, dict) or not columns:
        raise PluginError(f"{where}: output() must return a non-empty dict of column -> array")
    for name, column in columns.items():
        if len(column) != len(selected):
            raise PluginError(
                f"{where}: output() column {name!r} has {len(column)} entries, "
                f"expected {len(selected)} (one per selected event)"
            )
    return columns


def plugin_failure(where: str, err: BaseException) -> PluginError:
    """One line for an exception raised by plugin code at ``where``; a numba compile error
    names the kernel, and its many-line text goes to the error's ``detail``."""
    kernel = numba_kernel(err)
    text = str(err).strip()
    if kernel is None:
        return PluginError(f"{where} raised {type(err).__name__}: {err}")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # numba's first line names the pipeline stage; the next one says what failed
    first = lines[1] if len(lines) > 1 and lines[0].startswith("Failed in") else (lines or [""])[0]
    failure = PluginError(
        f"{where}: numba could not compile kernel {kernel} ({type(err).__name__}: {first})"
    )
    failure.detail = "".join(traceback.format_exception(err))
    return failure


def numba_kernel(err: BaseException) -> str | None:
    """Name of the numba kernel whose compilation raised ``err``, if numba raised it."""
    if not any(cls.__module__.startswith("numba") for cls in type(err).__mro__[:-2]):
        return None
    name = "?"
    tb = err.__traceback__
    while tb is not None:  # the dispatcher that was compiling: its frame's ``self``
        owner = tb.tb_frame.f_locals.get("self")
        func = getattr(owner, "py_func", None)
        if func is not None and type(owner).__module__.startswith("numba"):
            name = func.__qualname__
        tb = tb.tb_next
    return name
