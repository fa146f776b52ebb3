"""Histograms and a cut flow as people read them in a terminal, and as scripts read them.

:func:`summary` is plain, stable text (no markup, ASCII bars): per histogram its axes, entries,
sum of weights and flow; a 1D histogram as one bar per bin (at most :data:`MAX_ROWS` rows:
more bins are shown several to a row, and the text says so); a small 2D one as a table, a
larger (or higher-dimensional) one as its projections; the cut flow as a table.
:func:`as_json` is the same content for scripts. :func:`contents` is what both (and
:mod:`hepstream.hists.plot`) read from a :class:`Histogram`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boost_histogram as bh
import numpy as np

from hepstream.hists.booked import Histogram
from hepstream.hists.store import Results

#: Rows a 1D histogram (or a projection) takes at most; more bins are shown several per row.
MAX_ROWS = 40
#: Bins per axis up to which a 2D histogram is shown as a table (else as its projections).
TABLE_BINS = 12
#: Edges of a variable axis (categories) listed in its description; more: the range (the
#: first ones).
LISTED_EDGES = 12
_STORAGE_TEXT = {
    "int": "entries only",
    "double": "sums of weights",
    "weight": "sums of weights and of squared weights",
}


@dataclass(frozen=True)
class Contents:
    """A histogram's bins, flow bins included (shape ``Histogram.extent``)."""

    #: Entries per bin (weighted or not).
    entries: np.ndarray
    #: What is drawn: the count (``int``) or the sum of weights per bin.
    values: np.ndarray
    #: The variance per bin: the count for ``int`` (Poisson), the sum of squared weights
    #: for ``weight``; None for ``double``, which does not keep it.
    variances: np.ndarray | None


def contents(histogram: Histogram) -> Contents:
    """``histogram``'s entries, values and variances per bin, flow included."""
    view: Any = histogram.to_hist().view(flow=True)
    if histogram.kind == "weight":
        return Contents(
            histogram.entries(),
            np.asarray(view["value"], dtype=np.float64),
            np.asarray(view["variance"], dtype=np.float64),
        )
    if histogram.kind == "int":
        counts = np.asarray(view, dtype=np.int64)
        return Contents(histogram.entries(), counts, counts)
    return Contents(histogram.entries(), np.asarray(view, dtype=np.float64), None)


def in_range(axis: Any) -> slice:
    """The bins of ``axis`` in its flow-included view that are not flow bins."""
    start = 1 if axis.traits.underflow else 0
    return slice(start, start + axis.size)


def flow_totals(values: np.ndarray, axes: Any) -> list[tuple[float, float]]:
    """Per axis, the total in its underflow and in its overflow bin (over every bin of the
    other axes, theirs included); 0 where the axis has no such bin."""
    totals = []
    for number, axis in enumerate(axes):
        under = values.take(0, axis=number).sum() if axis.traits.underflow else 0
        over = values.take(-1, axis=number).sum() if axis.traits.overflow else 0
        totals.append((under, over))
    return totals


def bin_labels(axis: Any) -> list[str]:
    """One label per in-range bin of ``axis``: ``[lo, hi)``, an integer, a category."""
    if isinstance(axis, bh.axis.Boolean):
        return ["false", "true"]
    if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory):
        return [str(c) for c in axis]
    edges = np.asarray(axis.edges)
    if isinstance(axis, bh.axis.Integer):
        return [str(int(e)) for e in edges[:-1]]
    return [f"[{_edge(lo)}, {_edge(hi)})" for lo, hi in itertools.pairwise(edges)]


def describe_axis(axis: Any) -> str:
    """``name "label": binning (flow)`` of one axis."""
    name = axis.name or "?"
    label = f' "{axis.label}"' if axis.label and axis.label != axis.name else ""
    flows = [
        f
        for f, on in (("underflow", axis.traits.underflow), ("overflow", axis.traits.overflow))
        if on
    ]
    if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory):
        flows = ["other categories"] if axis.traits.overflow else []
    flow = f" ({', '.join(flows)})" if flows else " (no flow bins)"
    return f"{name}{label}: {_binning(axis)}{flow}"


def _binning(axis: Any) -> str:
    if isinstance(axis, bh.axis.Boolean):
        return "boolean (false, true)"
    if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory):
        names = [str(c) for c in axis]
        more = ", ..." if len(names) > LISTED_EDGES else ""
        return f"{axis.size} categories: {', '.join(names[:LISTED_EDGES])}{more}"
    edges = np.asarray(axis.edges)
    if isinstance(axis, bh.axis.Integer):
        return f"{axis.size} integer bins, {int(edges[0])} to {int(edges[-1]) - 1}"
    if isinstance(axis, bh.axis.Regular):
        transform = f", {axis.transform} scale" if axis.transform is not None else ""
        return f"{axis.size} regular bins from {_edge(edges[0])} to {_edge(edges[-1])}{transform}"
    if axis.size + 1 <= LISTED_EDGES:
        return f"{axis.size} variable bins, edges {' '.join(_edge(e) for e in edges)}"
    return f"{axis.size} variable bins from {_edge(edges[0])} to {_edge(edges[-1])}"


def _edge(value: float) -> str:
    return f"{float(value):.6g}"


def number(value: float) -> str:
    """A count or sum of weights: an integer with thousands separators when it is one,
    else six significant digits."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.6g}"


def _error(variance: float) -> str:
    error = math.sqrt(max(float(variance), 0.0))
    return f"{error:,.3g}" if error < 100 else f"{error:,.0f}"


# -- text ------------------------------------------------------------------------------


def summary(results: Results, width: int = 60) -> str:
    """``results`` as plain text: each histogram (bars of at most ``width`` characters),
    then the cut flow."""
    blocks = [_histogram_text(h, width) for h in results.histograms.values()]
    if not blocks:
        blocks.append("no histograms")
    blocks.append(cutflow_text(results.cutflow))
    return "\n\n".join(blocks) + "\n"


def _histogram_text(histogram: Histogram, width: int) -> str:
    axes = histogram.template.axes
    held = contents(histogram)
    lines = [
        f"histogram {histogram.name}: {len(axes)}D, {_STORAGE_TEXT[histogram.kind]}",
        *(f"  axis {describe_axis(axis)}" for axis in axes),
    ]
    total = f"sum of weights {number(held.values.sum())}"
    if histogram.kind == "weight" and held.variances is not None:
        total += f" ± {_error(held.variances.sum())}"
    flows = [
        _flow_text(axis, under, over, f"{axis.name or i} " if len(axes) > 1 else "")
        for i, (axis, (under, over)) in enumerate(
            zip(axes, flow_totals(held.values, axes), strict=True)
        )
    ]
    flow = "".join(f"; {text}" for text in flows if text)
    lines.append(f"  entries {number(held.entries.sum())}; {total}{flow}")
    if len(axes) == 1:
        inner = in_range(axes[0])
        variances = None if histogram.kind != "weight" else held.variances
        lines += _bars(
            axes[0], held.values[inner], None if variances is None else variances[inner], width
        )
    elif len(axes) == 2 and all(a.size <= TABLE_BINS for a in axes):
        lines += _table(axes, held.values[in_range(axes[0]), in_range(axes[1])])
    else:
        for position, axis in enumerate(axes):
            others = tuple(i for i in range(len(axes)) if i != position)
            projected = held.values.sum(axis=others)[in_range(axis)]
            lines.append(
                f"  projection on {axis.name or position} (summed over the other axes, "
                f"their flow bins included):"
            )
            lines += _bars(axis, projected, None, width)
    return "\n".join(lines)


def _flow_text(axis: Any, under: float, over: float, name: str) -> str:
    """What fell outside ``axis``: its underflow and overflow (a category axis: the other
    categories); empty for an axis without flow bins."""
    if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory):
        return f"{name}other categories {number(over)}" if axis.traits.overflow else ""
    parts = [
        f"{which} {number(total)}"
        for which, total, has in (
            ("underflow", under, axis.traits.underflow),
            ("overflow", over, axis.traits.overflow),
        )
        if has
    ]
    return f"{name}{', '.join(parts)}" if parts else ""


def _bars(axis: Any, values: np.ndarray, variances: np.ndarray | None, width: int) -> list[str]:
    """One line per bin (or group of bins): label, value (± error), a bar of ``#``."""
    labels = bin_labels(axis)
    rows = _display_rows(axis, labels, values, variances)
    lines = []
    if len(rows) < len(labels):
        per = math.ceil(len(labels) / MAX_ROWS)
        if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory):
            lines.append(
                f"  {len(labels)} categories: the first {MAX_ROWS - 1} shown, the rest in one row"
            )
        else:
            lines.append(f"  {len(labels)} bins shown {per} per row")
    peak = max((abs(float(v)) for _, v, _ in rows), default=0.0)
    label_width = max(len(label) for label, _, _ in rows)
    shown = [number(v) for _, v, _ in rows]
    value_width = max(len(s) for s in shown)
    errors = [f" ± {_error(var)}" if var is not None else "" for _, _, var in rows]
    error_width = max(len(e) for e in errors)
    for (label, value, _), text, error in zip(rows, shown, errors, strict=True):
        bar = "#" if value >= 0 else "-"
        length = round(width * abs(float(value)) / peak) if peak else 0
        line = f"  {label.ljust(label_width)}  {text.rjust(value_width)}{error.ljust(error_width)}"
        lines.append(f"{line}  {bar * length}".rstrip())
    return lines


def _display_rows(
    axis: Any, labels: list[str], values: np.ndarray, variances: np.ndarray | None
) -> list[tuple[str, float, float | None]]:
    """``(label, value, variance)`` per row: each bin, or at most :data:`MAX_ROWS` rows
    of neighbouring bins (categories: the first ones, then the rest in one row)."""

    def row(label: str, part: slice) -> tuple[str, float, float | None]:
        variance = None if variances is None else float(variances[part].sum())
        return label, values[part].sum().item(), variance

    count = len(labels)
    if count <= MAX_ROWS:
        return [row(label, slice(i, i + 1)) for i, label in enumerate(labels)]
    if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory | bh.axis.Boolean):
        shown = [row(labels[i], slice(i, i + 1)) for i in range(MAX_ROWS - 1)]
        return [*shown, row(f"({count - MAX_ROWS + 1} more)", slice(MAX_ROWS - 1, count))]
    per = math.ceil(count / MAX_ROWS)
    edges = np.asarray(axis.edges)
    out = []
    for start in range(0, count, per):
        stop = min(start + per, count)
        if isinstance(axis, bh.axis.Integer):
            first, last = int(edges[start]), int(edges[stop]) - 1
            label = f"{first}..{last}" if last > first else str(first)
        else:
            label = f"[{_edge(edges[start])}, {_edge(edges[stop])})"
        out.append(row(label, slice(start, stop)))
    return out


def _table(axes: Any, values: np.ndarray) -> list[str]:
    """A small 2D histogram as a table: rows the first axis, columns the second, with
    their totals (in-range bins only)."""
    rows_axis, columns_axis = axes
    header = [
        f"{rows_axis.name or 'x'} \\ {columns_axis.name or 'y'}",
        *bin_labels(columns_axis),
        "total",
    ]
    body = [
        [label, *(number(v) for v in values[i]), number(values[i].sum())]
        for i, label in enumerate(bin_labels(rows_axis))
    ]
    body.append(["total", *(number(v) for v in values.sum(axis=0)), number(values.sum())])
    return _columns([header, *body])


def cutflow_text(cutflow: list[tuple[str, int]]) -> str:
    """The cut flow as a table: cut, events, the fraction of the row before and of the
    first row."""
    if not cutflow:
        return "cut flow: none (the plugin names no cuts)"
    first = cutflow[0][1]
    header = ("cut", "events", "of previous", "of first")
    body = []
    previous: int | None = None
    for cut, events in cutflow:
        body.append((cut, f"{events:,}", _fraction(events, previous), _fraction(events, first)))
        previous = events
    return "\n".join(["cut flow:", *_columns([header, *body])])


def _columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as indented columns sized to their content: the first left-aligned, the rest
    (numbers) right-aligned; whole at any terminal width."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _fraction(events: int, of: int | None) -> str:
    if of is None or of == 0:
        return "-"
    percent = 100 * events / of
    if 0 < percent < 0.005:
        return "<0.01 %"
    return f"{percent:.2f} %"


# -- JSON ------------------------------------------------------------------------------


def as_json(results: Results) -> dict[str, Any]:
    """``results`` for scripts: per histogram its axes (edges or categories) and, per
    in-range bin, values, variances (null for ``double`` storage) and entries; the same
    with the flow bins under ``flow`` (each axis says which it has); the cut flow."""
    return {
        "histograms": [_histogram_json(h) for h in results.histograms.values()],
        "cutflow": [{"cut": cut, "events": events} for cut, events in results.cutflow],
    }


def _histogram_json(histogram: Histogram) -> dict[str, Any]:
    axes = histogram.template.axes
    held = contents(histogram)
    inner = tuple(in_range(axis) for axis in axes)
    return {
        "name": histogram.name,
        "storage": histogram.kind,
        "axes": [_axis_json(axis) for axis in axes],
        "values": held.values[inner].tolist(),
        "variances": None if held.variances is None else held.variances[inner].tolist(),
        "entries": held.entries[inner].tolist(),
        "flow": {
            "values": held.values.tolist(),
            "variances": None if held.variances is None else held.variances.tolist(),
            "entries": held.entries.tolist(),
        },
    }


def _axis_json(axis: Any) -> dict[str, Any]:
    category = isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory)
    return {
        "name": axis.name,
        "label": axis.label,
        "type": type(axis).__name__,
        "edges": None if category else np.asarray(axis.edges).tolist(),
        "categories": list(axis) if category else None,
        "underflow": bool(axis.traits.underflow),
        "overflow": bool(axis.traits.overflow),
    }
