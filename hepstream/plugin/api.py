"""The analyst's plugin API: a ``Selection`` subclass in a Python file, and numpy views of the
branches it reads for its numba kernels.

This interface is stable; the runner, the VM agent and the scheduler depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import awkward as ak
import numpy as np

from hepstream.errors import PluginError

if TYPE_CHECKING:  # the histograms' modules load with the job, not with every CLI command
    from hepstream.hists.booked import Histogram


class Selection:
    """Base class of a selection plugin.

    Subclass it in a plugin file and set the class attributes; the runner creates one
    instance per job and calls :meth:`select` once per chunk.

    Attributes
    ----------
    tree : str
        Name of the TTree to read.
    branches : list of str
        Branches to read; ``select`` gets an ``awkward.Array`` with these fields.
    preselect : list of str
        Optional subset of ``branches`` that :meth:`preselect_mask` needs. When set,
        the runner reads these first and fetches the other branches only for
        entry ranges that still hold passing events.
    conditions : list of str
        Conditions records the selection needs (e.g. ``["beam"]``); empty for none.
        The runner then splits each chunk where a record's IOV changes and, inside
        :meth:`select` and :meth:`output`, :meth:`payload` gives the payload valid
        for exactly the events passed in (handed over by :meth:`set_payloads`).
    run_branch, subrun_branch : str or None
        Branches (listed in ``branches``) holding each event's run and sub-run
        number; no sub-run branch means sub-run 0.
    cuts : list of str
        Names of the selection's cuts, in order, for the job's cut flow. ``select`` then
        returns, per event, how many of them it passed in a row (an integer array, ``0``
        to ``len(cuts)``; a numba kernel's natural answer), or a dict ``{cut: mask}`` in
        this order; an event is kept when it passes all of them. With ``preselect``, the
        first cut is the preselection (or stricter): events it dropped count as failing it.
    hists : mapping of str to Histogram
        The histograms :meth:`book` booked, by name, to fill in :meth:`fill`,
        :meth:`fill_all` or :meth:`select` (``.fill(...)`` as ``hist``; ``.bins()`` for a
        numba kernel). Merged exactly across workers and a dataset's jobs.
    """

    tree: ClassVar[str] = "events"
    branches: ClassVar[list[str]] = []
    preselect: ClassVar[list[str]] = []
    conditions: ClassVar[list[str]] = []
    run_branch: ClassVar[str | None] = "run"
    subrun_branch: ClassVar[str | None] = None
    cuts: ClassVar[list[str]] = []
    #: The booked histograms by name (set by the runner from :meth:`book`).
    hists: Mapping[str, Histogram] = MappingProxyType({})
    #: The plugin file this instance was loaded from (set by ``load_plugin``).
    __hepstream_path__: str
    #: What :meth:`payload` hands out: record -> payload value (see :meth:`set_payloads`).
    _hepstream_payloads: Mapping[str, Any] | None = None

    def select(self, events: Any) -> Any:
        """Which events to keep: a boolean mask, one entry per event (a numpy array or
        anything numpy turns into one); with ``cuts``, the number of cuts each event passed
        or a dict of one mask per cut."""
        raise NotImplementedError

    def book(self) -> Mapping[str, Any]:
        """Histograms to fill, by name: ``hist.Hist`` or ``boost_histogram.Histogram``
        objects with ``Int64``, ``Double`` or ``Weight`` storage and fixed bins (called
        once per job; the runner keeps them as :attr:`hists`)."""
        return {}

    def fill(self, events: Any) -> None:
        """Fill :attr:`hists` from the selected ``events`` of a piece (after
        :meth:`select`, with the same payloads)."""

    def fill_all(self, events: Any) -> None:
        """Fill :attr:`hists` from every event of a piece before selection (those that
        pass :meth:`preselect_mask`, when the plugin has one), e.g. for efficiencies."""

    def preselect_mask(self, events: Any) -> np.ndarray:
        """Cheap mask on the ``preselect`` branches; False events are never read further."""
        return np.ones(len(events), dtype=bool)

    def output(self, events: Any) -> dict[str, Any]:
        """Columns to write for the selected ``events`` (default: every branch read)."""
        return {name: events[name] for name in events.fields}

    def payload(self, record: str) -> Any:
        """The payload of ``record`` valid for the events of this select()/fill()/output() call.

        A ``.npz`` payload is a dict of read-only numpy arrays (pass them to numba as
        they are); a JSON payload is the decoded document.
        """
        payloads = self._hepstream_payloads
        if payloads is None or record not in payloads:
            raise PluginError(
                f"payload({record!r}) is available only inside select() and output() of a "
                f"plugin that lists {record!r} in its conditions (it lists {self.conditions})"
            )
        return payloads[record]

    def set_payloads(self, payloads: Mapping[str, Any] | None) -> None:
        """Hand :meth:`payload` the payloads (record -> value) valid for the events of the
        next select()/output() calls; None takes them back.

        The runner calls it before each piece of a chunk (the events of one IOV per record).
        A test or a notebook calls it to run ``select`` by hand with payloads of its own.
        """
        self._hepstream_payloads = payloads


def _layout(array: Any, field: str | None) -> Any:
    """The awkward layout of ``array`` (or of its ``field``) without building new Arrays.

    ``events.name`` builds a high-level Array per access; reading the RecordArray's
    content directly is an order of magnitude cheaper, which matters once per chunk per
    branch.
    """
    layout = array.layout if isinstance(array, ak.Array) else ak.to_layout(array)
    if field is None:
        return layout
    if isinstance(layout, ak.contents.RecordArray):
        return layout.content(field)
    return ak.to_layout(array[field])  # sliced or indexed records: let awkward resolve


def flat(array: Any, field: str | None = None) -> np.ndarray:
    """A flat branch as a numpy array (no copy when possible): cheap to pass to numba.

    Call it as ``flat(events.ntrk)`` or, faster, ``flat(events, "ntrk")``.
    """
    layout = _layout(array, field)
    if isinstance(layout, ak.contents.NumpyArray):
        return np.asarray(layout.data)
    values: np.ndarray = ak.to_numpy(ak.Array(layout))
    return values


def jagged(array: Any, field: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A jagged branch as ``(offsets, content)`` numpy arrays; event ``i`` owns
    ``content[offsets[i]:offsets[i + 1]]``. numba takes these without per-call unboxing
    of awkward types, which dominates a kernel that rejects most events early.

    Call it as ``jagged(events.trk_p)`` or, faster, ``jagged(events, "trk_p")``.
    """
    layout = _layout(array, field)
    if not (
        isinstance(layout, ak.contents.ListOffsetArray)
        and isinstance(layout.content, ak.contents.NumpyArray)
    ):  # sliced or indexed views: pack them once
        layout = ak.to_layout(ak.to_packed(ak.Array(layout)))
    return np.asarray(layout.offsets.data), np.asarray(layout.content.data)
