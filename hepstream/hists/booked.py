"""A histogram a plugin books: its axes come from ``hist`` / ``boost_histogram``; its
contents are kept so that any split of the events and any merge order give the same bits.

Unweighted fills go to boost-histogram's own ``Int64`` storage (its C++ fill, without the
GIL); weighted fills go to the exact sums of :mod:`hepstream.hists.exact`. What the analyst
sees (:meth:`Histogram.to_hist`, the TH1/TH2 in the output) is the correctly rounded value
of those exact totals.
"""

from __future__ import annotations

import base64
import copy
from typing import Any

import boost_histogram as bh
import numpy as np

from hepstream.errors import PluginError
from hepstream.hists import exact
from hepstream.hists.kernels import add_regular_index, add_variable_index

#: The storages a plugin may book, by what they keep: ``int`` (entries only; no weights),
#: ``double`` (sums of weights), ``weight`` (sums of weights and of squared weights).
STORAGES = {bh.storage.Int64: "int", bh.storage.Double: "double", bh.storage.Weight: "weight"}
_STORAGE_OF = {"int": bh.storage.Int64, "double": bh.storage.Double, "weight": bh.storage.Weight}
_UHI = {"int": "int", "double": "double", "weight": "weighted"}
#: Axes filled by index arithmetic of our own for weighted fills (boost's ``axis.index``).
_NUMERIC_AXES = (bh.axis.Regular, bh.axis.Variable, bh.axis.Integer, bh.axis.Boolean)
_CATEGORY_AXES = (bh.axis.IntCategory, bh.axis.StrCategory)


class Histogram:
    """One booked histogram: fill it per chunk like ``hist.Hist.fill``, or hand its
    :meth:`bins` to a numba kernel; merge it exactly with another of the same booking."""

    def __init__(self, name: str, booked: bh.Histogram[Any]) -> None:
        if not isinstance(booked, bh.Histogram):
            raise PluginError(
                f"histogram {name!r}: book a hist.Hist or boost_histogram.Histogram, "
                f"not {type(booked).__name__}"
            )
        kind = STORAGES.get(type(booked.storage_type()))
        if kind is None:
            raise PluginError(
                f"histogram {name!r}: storage {booked.storage_type.__name__} cannot be merged "
                f"exactly; book it with .Int64(), .Double() or .Weight()"
            )
        for axis in booked.axes:
            if axis.traits.growth:
                raise PluginError(
                    f"histogram {name!r}: axis {axis.name or '?'} grows; jobs could not merge "
                    f"it bin by bin: give it fixed bins or categories (growth=False)"
                )
            if not isinstance(axis, _NUMERIC_AXES + _CATEGORY_AXES):
                raise PluginError(
                    f"histogram {name!r}: axis type {type(axis).__name__} is not supported"
                )
        self.name = name
        self.kind = kind
        self.template = booked.copy().reset()
        #: Unweighted entries per bin (flow included), in boost's own storage.
        self.counts = bh.Histogram(*self.template.axes, storage=bh.storage.Int64())
        self.extent: tuple[int, ...] = tuple(self.template.axes.extent)
        self._edges = {id(a): np.asarray(a.edges, dtype=np.float64) for a in self.template.axes}
        #: Per regular axis, ``(lower, delta)`` that reproduce boost's own bins (checked on
        #: every edge and its neighbours), or None: boost's ``axis.index`` then. Found at the
        #: first weighted fill: unweighted histograms never load that kernel.
        self._regular: dict[int, tuple[float, float] | None] | None = None
        size = int(np.prod(self.extent))
        #: Weighted entries per flat bin, and their exact sums of weights (squared weights).
        self.wcounts = np.zeros(size, dtype=np.int64)
        self.sumw = exact.zeros(size if kind != "int" else 0)
        self.sumw2 = exact.zeros(size if kind == "weight" else 0)

    # -- filling ------------------------------------------------------------------------
    def fill(self, *values: Any, weight: Any = None, **named: Any) -> None:
        """Fill one entry per event: a value array per axis (in order, or by axis name),
        and optionally a weight per event (or one for all)."""
        columns = self._columns(values, named)
        if weight is None:
            self.counts.fill(*columns)
            return
        if self.kind == "int":
            raise PluginError(
                f"histogram {self.name!r} keeps entries only (Int64 storage); book it with "
                f".Weight() or .Double() to fill it with weights"
            )
        flat, keep = self._flat_index(columns)
        weights = np.broadcast_to(np.asarray(weight, dtype=np.float64), flat.shape)
        if not keep.all():
            flat, weights = flat[keep], weights[keep]
        bad = exact.fill_weights(
            flat, np.ascontiguousarray(weights), self.wcounts, self.sumw, self.sumw2,
            self.kind == "weight",
        )  # fmt: skip
        if bad >= 0:
            raise PluginError(
                f"histogram {self.name!r}: weight {float(weights[bad])!r} is not finite or "
                f"too large to sum exactly (|w| < 2**{exact.MAX_EXPONENT // 2} with .Weight(), "
                f"2**{exact.MAX_EXPONENT} with .Double())"
            )

    def bins(self) -> np.ndarray:
        """The unweighted entries per bin, flow bins included (shape ``extent``), as a
        writable int64 array: a numba kernel adds to it directly. Index ``0`` of an axis
        with underflow is its underflow bin; see :func:`hepstream.bin_index`."""
        view: np.ndarray = self.counts.view(flow=True)
        return view

    def edges(self, axis: int | str = 0) -> np.ndarray:
        """Bin edges of one axis (for :func:`hepstream.bin_index` in a kernel)."""
        return np.asarray(self.template.axes[self._axis_number(axis)].edges, dtype=np.float64)

    def _axis_number(self, axis: int | str) -> int:
        if isinstance(axis, int):
            return axis
        names = [a.name for a in self.template.axes]
        if axis not in names:
            raise PluginError(f"histogram {self.name!r} has no axis {axis!r} (axes: {names})")
        return names.index(axis)

    def _columns(self, values: tuple[Any, ...], named: dict[str, Any]) -> list[np.ndarray]:
        axes = self.template.axes
        if named:
            if values:
                raise PluginError(f"histogram {self.name!r}: fill by position or by name, not both")
            names = [a.name for a in axes]
            if sorted(named) != sorted(names):
                raise PluginError(
                    f"histogram {self.name!r}: fill got axes {sorted(named)}; it has {names}"
                )
            values = tuple(named[n] for n in names)
        if len(values) != len(axes):
            raise PluginError(
                f"histogram {self.name!r}: fill got {len(values)} value arrays for {len(axes)} axes"
            )
        columns = [np.asarray(v) for v in values]
        for axis, column in zip(axes, columns, strict=True):
            integers = isinstance(axis, bh.axis.Integer | bh.axis.IntCategory)
            if integers and column.dtype.kind not in "iub":  # as boost's own fill refuses
                raise PluginError(
                    f"histogram {self.name!r}: axis {axis.name or '?'} takes integers, "
                    f"got {column.dtype} values"
                )
        return columns

    def _flat_index(self, columns: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Each event's flat, flow-included bin as boost's fill would choose it, and which
        events have one (a value beyond an axis without that flow bin has none)."""
        length = max((c.size for c in columns), default=0)
        flat = np.zeros(length, dtype=np.int64)
        keep = np.ones(length, dtype=bool)
        stride = 1
        axes = list(zip(self.template.axes, columns, self.extent, strict=True))
        for axis, column, extent in reversed(axes):
            values = np.broadcast_to(column, (length,))
            offset = 1 if axis.traits.underflow else 0
            if self._regular is None:
                self._regular = {id(a): _regular_parameters(a) for a in self.template.axes}
            regular = self._regular[id(axis)]
            numbers = values.dtype.kind in "fiu"
            if regular is not None and numbers:
                add_regular_index(
                    np.ascontiguousarray(values, dtype=np.float64), *regular,
                    len(axis), offset, extent, stride, flat, keep,
                )  # fmt: skip
            elif _plain(axis) and isinstance(axis, bh.axis.Variable) and numbers:
                add_variable_index(
                    np.ascontiguousarray(values, dtype=np.float64), self._edges[id(axis)],
                    offset, extent, stride, flat, keep,
                )  # fmt: skip
            else:  # integer, boolean and category axes: boost's own index
                index = _axis_index(axis, values) + offset
                keep &= (index >= 0) & (index < extent)
                flat += np.clip(index, 0, extent - 1) * stride
            stride *= extent
        return flat, keep

    # -- merging and reading ------------------------------------------------------------
    def same_booking(self, other: Histogram) -> bool:
        return self.kind == other.kind and self.template == other.template

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s contents (same booking): exact, in any order."""
        if not self.same_booking(other):
            raise PluginError(f"histogram {self.name!r}: cannot merge two different bookings")
        self.counts += other.counts
        self.wcounts += other.wcounts
        if self.kind != "int":
            exact.add(self.sumw, other.sumw)
        if self.kind == "weight":
            exact.add(self.sumw2, other.sumw2)

    def entries(self) -> np.ndarray:
        """Entries per bin (weighted or not), flow included, shape ``extent``."""
        counts: np.ndarray = self.counts.view(flow=True)
        return counts + self.wcounts.reshape(self.extent)

    def to_hist(self) -> bh.Histogram[Any]:
        """A filled copy of the booked histogram (``hist.Hist`` when booked as one)."""
        out = self.template.copy()
        counts = self.counts.view(flow=True).reshape(-1)
        if self.kind == "int":
            out.view(flow=True)[...] = counts.reshape(self.extent)
            return out
        values = _rounded(self.sumw, counts).reshape(self.extent)
        if self.kind == "double":
            out.view(flow=True)[...] = values
            return out
        view: Any = out.view(flow=True)  # a structured view: value and variance per bin
        view["value"] = values
        view["variance"] = _rounded(self.sumw2, counts).reshape(self.extent)
        return out

    def state(self) -> dict[str, Any]:
        """Everything needed to merge this histogram elsewhere, as JSON-able values."""
        from boost_histogram.serialization import to_uhi

        axes = to_uhi(self.template)["axes"]
        return {
            "name": self.name,
            "storage": self.kind,
            "grid": [exact.GRID, exact.LIMBS],
            "axes": _jsonable(axes),
            "counts": _pack(self.counts.view(flow=True)),
            "wcounts": _pack(self.wcounts),
            "sumw": _pack(self.sumw),
            "sumw2": _pack(self.sumw2),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Histogram:
        """The histogram :meth:`state` described; checks every size against the booking."""
        from boost_histogram.serialization import from_uhi

        name, kind = str(state["name"]), state["storage"]
        if kind not in _STORAGE_OF:
            raise ValueError(f"unknown storage {kind!r}")
        if state.get("grid") != [exact.GRID, exact.LIMBS]:
            raise ValueError(
                f"histogram {name!r} keeps its sums on grid {state.get('grid')}, this "
                f"hepstream on {[exact.GRID, exact.LIMBS]}: rerun the job with this version"
            )
        size = _declared_size(state["axes"])
        if size != len(base64.b64decode(state["counts"], validate=True)) // 8:
            raise ValueError(f"histogram {name!r}: its axes claim {size} bins, its counts differ")
        template = from_uhi(  # axes only: a structure-only storage holds no values
            {"uhi_schema": 1, "axes": state["axes"], "storage": {"type": _UHI[kind]}}
        )
        histogram = cls(name, bh.Histogram(*template.axes, storage=_STORAGE_OF[kind]()))
        size = int(np.prod(histogram.extent))
        counts = _unpack(state["counts"], (size,))
        histogram.counts.view(flow=True)[...] = counts.reshape(histogram.extent)
        histogram.wcounts[...] = _unpack(state["wcounts"], (size,))
        histogram.sumw[...] = _unpack(state["sumw"], histogram.sumw.shape)
        histogram.sumw2[...] = _unpack(state["sumw2"], histogram.sumw2.shape)
        return histogram


def _declared_size(axes: Any) -> int:
    """The bins (flow included) a state's axes declare, from its JSON alone: checked against
    its data before anything that size is allocated."""
    size = 1
    for axis in axes:
        kind = axis["type"]
        if kind == "regular":
            bins = int(axis["bins"]) + bool(axis["underflow"]) + bool(axis["overflow"])
        elif kind == "variable":
            bins = len(axis["edges"]) - 1 + bool(axis["underflow"]) + bool(axis["overflow"])
        elif kind in ("category_int", "category_str"):
            bins = len(axis["categories"]) + bool(axis["flow"])
        elif kind == "boolean":
            bins = 2
        else:
            raise ValueError(f"axis type {kind!r} is not one hepstream writes")
        if bins < 1:
            raise ValueError(f"an axis of {bins} bins")
        size *= bins
    return size


def _plain(axis: Any) -> bool:
    return not axis.traits.circular and getattr(axis, "transform", None) is None


def _regular_parameters(axis: Any) -> tuple[float, float] | None:
    """``(lower, delta)`` with which :func:`add_regular_index` bins as boost does.

    boost keeps ``delta = upper - lower`` as given; the edges it reports are
    ``lower + delta``, which can differ from ``upper`` by an ulp, so the candidates around
    ``edges[-1] - edges[0]`` are tried on every edge and its two neighbours."""
    if not isinstance(axis, bh.axis.Regular) or not _plain(axis):
        return None
    edges = np.asarray(axis.edges, dtype=np.float64)
    probe = np.concatenate(
        [
            edges,
            np.nextafter(edges, -np.inf),
            np.nextafter(edges, np.inf),
            [np.nan, -np.inf, np.inf],
        ]
    )
    expected = np.asarray(axis.index(probe), dtype=np.int64)  # type: ignore[arg-type]
    lower, width = edges[0], edges[-1] - edges[0]
    for delta in (width, np.nextafter(width, np.inf), np.nextafter(width, -np.inf)):
        got = np.zeros(len(probe), dtype=np.int64)
        keep = np.ones(len(probe), dtype=bool)
        add_regular_index(probe, lower, delta, len(axis), 1, len(axis) + 2, 1, got, keep)
        if np.array_equal(got - 1, expected):
            return float(lower), float(delta)
    return None


def _axis_index(axis: Any, column: np.ndarray) -> np.ndarray:
    """Bin index of each value on ``axis`` without flow offset: ``-1`` below, ``size``
    above or unknown, as boost's fill places them."""
    if isinstance(axis, _NUMERIC_AXES):
        return np.asarray(axis.index(column), dtype=np.int64)  # type: ignore[arg-type]
    categories = np.asarray(list(axis))
    order = np.argsort(categories, kind="stable")
    sorted_categories = categories[order]
    at = np.searchsorted(sorted_categories, column)
    at = np.clip(at, 0, len(categories) - 1)
    found = sorted_categories[at] == column
    return np.where(found, order[at], len(categories)).astype(np.int64)


def _rounded(limbs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The correctly rounded ``counts + exact sums`` per bin (unweighted entries weigh 1)."""
    total = limbs.copy()
    total[:, exact.GRID // 32] += counts  # weight 1 sits at bit GRID of the grid
    exact.normalize(total)
    return exact.to_float(total)


def _pack(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<i8").tobytes()).decode()


def _unpack(text: str, shape: tuple[int, ...]) -> np.ndarray:
    """int64s from :func:`_pack`, checked to fill exactly ``shape``."""
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 8 * int(np.prod(shape)):
        raise ValueError(f"{len(raw)} bytes for an array of shape {shape}")
    return np.frombuffer(raw, dtype="<i8").reshape(shape).astype(np.int64)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return copy.copy(value)
