"""Histograms and cut flows a plugin fills: booked with ``hist``, kept exactly (any split of
the events, any merge order, the same bits), written as TH1/TH2 with their exact state.

Nothing is imported here: :mod:`~hepstream.hists.booked` loads numba, which the CLI's
commands that only read results (``collect``, ``hist show``) must not pay for at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hepstream.hists.booked import Histogram
    from hepstream.hists.kernels import bin_index
    from hepstream.hists.store import Results, merge_all, read_results, write_results

__all__ = ["Histogram", "Results", "bin_index", "merge_all", "read_results", "write_results"]

#: Where each public name lives, imported on first use.
_HOME = {
    "Histogram": "booked",
    "bin_index": "kernels",
    "Results": "store",
    "merge_all": "store",
    "read_results": "store",
    "write_results": "store",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
