"""A job's histograms: booked once from the plugin, filled per chunk, and, when bad files
may be skipped, held per input until it has been read to its end (as its events are)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from hepstream.conditions.job import METADATA_KEY as CONDITIONS_KEY
from hepstream.errors import PluginError
from hepstream.hists.booked import Histogram
from hepstream.hists.store import CUTFLOW_KEY, STATE_KEY, Results
from hepstream.plugin.api import Selection
from hepstream.plugin.calls import call_plugin


class Filling:
    """The histograms of one job in this process, and which of them the plugin fills now."""

    def __init__(self, selection: Selection, plugin: str, per_file: bool) -> None:
        booked = call_plugin(selection, f"plugin {plugin}", "book")
        if not isinstance(booked, Mapping):
            raise PluginError(
                f"plugin {plugin}: book() must return a dict of name -> histogram, "
                f"not {type(booked).__name__}"
            )
        taken = {CUTFLOW_KEY, STATE_KEY, CONDITIONS_KEY, selection.tree}
        for name in booked:
            if not isinstance(name, str) or not name.isidentifier():
                raise PluginError(
                    f"plugin {plugin}: book() names a histogram {name!r}; use names like "
                    f"'mass' or 'pt_lead' (they become ROOT keys)"
                )
            if name in taken:  # the output's own keys: one would overwrite the other
                raise PluginError(
                    f"plugin {plugin}: book() names a histogram {name!r}, a key the output "
                    f"already has ({', '.join(sorted(taken))}); choose another name"
                )
        self.selection = selection
        self.totals = {name: _booked(plugin, name, h) for name, h in booked.items()}
        self.per_file = per_file and bool(self.totals)
        self.held: dict[int, dict[str, Histogram]] = {}
        self.fills = type(selection).fill is not Selection.fill
        self.fills_all = type(selection).fill_all is not Selection.fill_all
        selection.hists = MappingProxyType(self.totals)

    def __bool__(self) -> bool:
        return bool(self.totals)

    def for_file(self, index: int) -> None:
        """The plugin fills input ``index``'s histograms from now on (its own while it may
        still be skipped, else the job's)."""
        if not self.per_file:
            return
        if index not in self.held:
            self.held[index] = {n: Histogram(n, h.template) for n, h in self.totals.items()}
        self.selection.hists = MappingProxyType(self.held[index])

    def file_ended(self, index: int, ok: bool) -> None:
        """Input ``index`` is over: its histograms join the job's, or go with it."""
        held = self.held.pop(index, None)
        if held is not None and ok:
            for name, histogram in held.items():
                self.totals[name].merge(histogram)

    def results(self, cutflow: list[list[Any]]) -> Results:
        return Results(dict(self.totals), [(str(cut), int(n)) for cut, n in cutflow])


def _booked(plugin: str, name: str, booked: Any) -> Histogram:
    try:
        return Histogram(name, booked)
    except PluginError as err:
        raise PluginError(f"plugin {plugin}: {err}") from None
