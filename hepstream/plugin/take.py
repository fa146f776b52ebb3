"""The selected events of a chunk, ``events[mask]``, as new packed arrays: numbers and lists
of numbers gathered by the compiled passes of :mod:`hepstream.plugin.gather`."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np


def take(events: Any, mask: np.ndarray) -> Any:
    """``events[mask]`` as new, packed arrays. A chunk's fields are numbers or lists of
    numbers, gathered here by compiled passes, one per field, with the GIL released;
    awkward's own ``events[mask]`` is lazy and its packing later costs a pass of Python per
    field and chunk. Other layouts (options, strings, records, parameters) take awkward's
    way; the result is the same."""
    layout = ak.to_layout(events)
    if not isinstance(layout, ak.contents.RecordArray) or layout.parameters or layout.is_tuple:
        return events[mask]
    index = np.flatnonzero(mask)
    fields = []
    for content in layout.contents:
        taken = _take_plain(content, index)
        if taken is None:
            return events[mask]
        fields.append(taken)
    return ak.Array(ak.contents.RecordArray(fields, layout.fields, length=len(index)))


def is_numbers(layout: Any) -> bool:
    """Whether an awkward layout is plain numbers: 1-D numpy data, no parameters."""
    return (
        isinstance(layout, ak.contents.NumpyArray)
        and not layout.parameters
        and layout.data.ndim == 1
        and isinstance(layout.data, np.ndarray)
    )


def _take_plain(layout: Any, index: np.ndarray) -> Any:
    """Entries ``index`` of numbers or lists of numbers, packed; None for other layouts."""
    # imported on first use: numba's import is a large part of a second, which the writer's
    # users that gather nothing (dataset collect, via is_numbers) would pay otherwise
    from hepstream.plugin.gather import KINDS, gather, gather_lists

    if is_numbers(layout):
        values = layout.data[: layout.length]
        taken = gather(values, index) if values.dtype in KINDS else values[index]
        return ak.contents.NumpyArray(taken)
    if not (
        isinstance(layout, ak.contents.ListOffsetArray)
        and not layout.parameters
        and is_numbers(layout.content)
        and isinstance(layout.offsets.data, np.ndarray)
        and layout.content.data.dtype in KINDS
    ):
        return None
    new, items = gather_lists(layout.offsets.data, layout.content.data, index)
    return ak.contents.ListOffsetArray(ak.index.Index64(new), ak.contents.NumpyArray(items))
