"""Histograms and a cut flow in a ROOT file, and back: TH1/TH2 for people and ROOT, plus the
exact state (one TObjString) that ``collect`` and ``--workers`` merge bit for bit."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # booked.py loads numba: only where histograms are filled or merged
    from hepstream.hists.booked import Histogram

#: The TObjString holding the exact state; the TH1 of the cut flow.
STATE_KEY = "hepstream_histograms"
CUTFLOW_KEY = "cutflow"
_VERSION = 1


@dataclass
class Results:
    """What a job (or a merge of jobs) fills besides events: named histograms and the cut
    flow, ``(cut, events passing it and every cut before)`` from all events read."""

    histograms: dict[str, Histogram] = field(default_factory=dict)
    cutflow: list[tuple[str, int]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.histograms or self.cutflow)

    def merge(self, other: Results) -> None:
        """Add ``other`` (same bookings, same cuts): exact, in any order."""
        from hepstream.hists.booked import Histogram

        for name, histogram in other.histograms.items():
            mine = self.histograms.get(name)
            if mine is None:
                self.histograms[name] = Histogram.from_state(histogram.state())
            else:
                mine.merge(histogram)
        self.cutflow = merge_cutflows(self.cutflow, other.cutflow)

    def state(self) -> str:
        return json.dumps(
            {
                "version": _VERSION,
                "histograms": [h.state() for h in self.histograms.values()],
                "cutflow": [[cut, events] for cut, events in self.cutflow],
            }
        )

    @classmethod
    def from_state(cls, text: str) -> Results:
        """The results :meth:`state` wrote; ValueError (saying what) if they are damaged."""
        from hepstream.hists.booked import Histogram

        try:
            data = json.loads(text)
            if data.get("version") != _VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {_VERSION}")
            histograms = [Histogram.from_state(state) for state in data["histograms"]]
            cutflow = [(str(cut), int(events)) for cut, events in data["cutflow"]]
        except (KeyError, TypeError, AttributeError, OverflowError, ValueError) as err:
            first = (str(err).strip().splitlines() or [""])[0]  # pybind11's text runs on
            raise ValueError(f"malformed histogram state ({type(err).__name__}: {first})") from None
        names = [h.name for h in histograms]
        twice = {name for name in names if names.count(name) > 1}
        if twice:
            raise ValueError(f"histogram {sorted(twice)[0]!r} appears twice in the state")
        return cls({h.name: h for h in histograms}, cutflow)


def merge_cutflows(a: list[tuple[str, int]], b: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Two cut flows of the same cuts, added row by row (an empty one adds nothing)."""
    if not a or not b:
        return list(a or b)
    if [cut for cut, _ in a] != [cut for cut, _ in b]:
        raise ValueError(
            f"cut flows of different cuts: {[c for c, _ in a]} and {[c for c, _ in b]}"
        )
    return [(cut, n + m) for (cut, n), (_, m) in zip(a, b, strict=True)]


def sidecar_of(output: str) -> str:
    """Where a Parquet output's histograms go: ``out.parquet`` -> ``out.hist.root``."""
    base, query = [*output.split("?", 1), ""][:2]
    stem = base[: -len(".parquet")] if base.lower().endswith(".parquet") else base
    return stem + ".hist.root" + (f"?{query}" if query else "")


def write_results(file: Any, results: Results) -> None:
    """Write ``results`` into an open ``uproot`` file: a TH1/TH2 per histogram (under its
    name), the cut flow as a labelled TH1D, and the exact state."""
    for name, histogram in results.histograms.items():
        file[name] = _as_th1(histogram.to_hist())
    if results.cutflow:
        file[CUTFLOW_KEY] = cutflow_hist(results.cutflow)
    file[STATE_KEY] = results.state()


def cutflow_hist(cutflow: list[tuple[str, int]]) -> Any:
    """The cut flow as a histogram with one labelled bin per cut."""
    import hist

    h = hist.Hist.new.StrCat([cut for cut, _ in cutflow], name="cut", label="cut").Double()
    h.view()[...] = [events for _, events in cutflow]
    return h


def _as_th1(h: Any) -> Any:
    """``h`` as uproot writes it: ROOT's TH1/TH2 hold doubles, so Int64 counts (exact up to
    2**53 entries per bin) are stored as a Double histogram."""
    import boost_histogram as bh
    import hist

    if isinstance(h.storage_type(), bh.storage.Int64):
        double = hist.Hist(*h.axes, storage=bh.storage.Double())
        double.view(flow=True)[...] = h.view(flow=True)
        h = double
    if all(a.traits.underflow and a.traits.overflow for a in h.axes):
        return h
    return _RootFlow(h)


class _RootFlow:
    """A histogram as ROOT stores it: every axis with both flow bins, zero where the
    histogram has none (a category axis has no underflow; uproot would otherwise drop every
    flow bin, the other axes' too)."""

    __module__ = "boost_histogram.hepstream"  # uproot then reads edges and labels as boost's
    kind = "COUNT"

    def __init__(self, h: Any) -> None:
        self._h = h
        self.axes = h.axes
        self.storage_type = h.storage_type
        self.name = getattr(h, "name", None)
        self._pad = [(1 - a.traits.underflow, 1 - a.traits.overflow) for a in h.axes]

    def _padded(self, array: Any, flow: bool) -> Any:
        import numpy as np

        return np.pad(array, self._pad) if flow else array

    def values(self, flow: bool = False) -> Any:
        return self._padded(self._h.values(flow=flow), flow)

    def variances(self, flow: bool = False) -> Any:
        variances = self._h.variances(flow=flow)
        return None if variances is None else self._padded(variances, flow)

    def counts(self, flow: bool = False) -> Any:
        return self._padded(self._h.counts(flow=flow), flow)


def read_results(path: str | Path) -> Results | None:
    """The results in a ROOT file hepstream wrote; None if it holds none. ValueError (saying
    what) for a file that is not ROOT or whose state is damaged."""
    import uproot

    try:
        with uproot.open(path) as file:
            if STATE_KEY not in file:
                return None
            text = str(file[STATE_KEY])
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(f"{type(err).__name__}: {err}") from err
    except Exception as err:  # uproot's deserialization of a damaged file raises anything
        raise ValueError(f"not a readable ROOT file ({type(err).__name__}: {err})") from err
    return Results.from_state(text)


def merge_all(parts: Iterable[Results]) -> Results:
    """One result of many, exact and independent of their order."""
    total = Results()
    for part in parts:
        total.merge(part)
    return total
