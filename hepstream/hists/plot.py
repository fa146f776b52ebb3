"""PNGs people look at: each histogram, and the cut flow; and the two helpers every PNG
hepstream writes goes through (:func:`pyplot`, :func:`save_png`).

matplotlib (and mplhep) are the optional ``plot`` extra and are imported here only when a
PNG is drawn (pyplot costs ~450 ms, mplhep more: ``python -X importtime``). With mplhep the
plots take its ROOT-like style and its ``histplot`` / ``hist2dplot``; without it, plain
matplotlib draws the same content. The counts are the events' own (no luminosity scaling,
no experiment label), and every title says so.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import re
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from hepstream.errors import InputError, OutputError
from hepstream.io.partfiles import atomic_path

if TYPE_CHECKING:  # dataset.collect (every CLI start) imports pyplot and save_png only
    from hepstream.hists.booked import Histogram
    from hepstream.hists.store import Results

#: What every histogram title says: the counts are events, not cross sections.
COUNTS = "luminosity-free event counts"
#: Ratio of the largest to the smallest non-zero cut flow count above which its y is log.
LOG_RANGE = 100
#: Category names on an axis at most (more categories: every n-th one is named).
MAX_TICKS = 25


def pyplot() -> ModuleType:
    """matplotlib's pyplot, drawing to files only; an InputError saying how to install it."""
    # lazy: the optional `plot` extra; pyplot costs ~450 ms (python -X importtime); --png only
    try:
        import matplotlib
    except ImportError:
        raise InputError("--png needs matplotlib: pip install 'hepstream[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(plt: ModuleType, fig: Any, path: Path) -> None:
    """Save ``fig`` as ``path`` through a temp file: a failed save leaves nothing at
    ``path``; an OutputError naming it when it cannot be written."""
    try:
        with atomic_path(path) as part:
            fig.savefig(part, dpi=100, format="png", bbox_inches="tight")
    except OSError as err:
        raise OutputError(f"{path}: cannot write the PNG ({err.strerror or err})") from None
    finally:
        plt.close(fig)


def mplhep_module() -> ModuleType | None:
    """mplhep when it is installed, else None (plain matplotlib then)."""
    try:
        return importlib.import_module("mplhep")  # untyped: ModuleType is all we need
    except ImportError:
        return None


def draw(results: Results, prefix: str | Path, title: str = "") -> list[Path]:
    """``PREFIX-<name>.png`` per histogram (1D: steps with error bars, 2D: a colour map,
    more axes: the map of the first two) and ``PREFIX-cutflow.png`` (bars with their
    counts); ``title`` names the job or dataset. Returns the files written."""
    plt = pyplot()
    hep = mplhep_module()
    style = plt.style.context(hep.style.ROOT) if hep is not None else contextlib.nullcontext()
    written = []
    with style:
        for name, histogram in results.histograms.items():
            path = Path(f"{prefix}-{_file_part(name)}.png")
            if name == "cutflow" and results.cutflow:
                path = Path(f"{prefix}-cutflow-histogram.png")
            with _figure(plt, path) as (fig, ax):
                shown = _draw_histogram(fig, ax, histogram, hep)
                ax.set_title(_title(title, shown), fontsize="medium")
            written.append(path)
        if results.cutflow:
            path = Path(f"{prefix}-cutflow.png")
            with _figure(plt, path) as (fig, ax):
                _draw_cutflow(ax, results.cutflow)
                ax.set_title(_title(title, "cut flow"), fontsize="medium")
            written.append(path)
    return written


@contextlib.contextmanager
def _figure(plt: ModuleType, path: Path) -> Iterator[tuple[Any, Any]]:
    """A figure to draw on, saved as ``path`` (atomically) when the block succeeds."""
    fig, ax = plt.subplots(figsize=(8, 6))
    try:
        yield fig, ax
        fig.tight_layout()
    except BaseException:
        plt.close(fig)
        raise
    save_png(plt, fig, path)


def _file_part(name: str) -> str:
    return re.sub(r"[^\w.-]", "_", name) or "_"


def _title(title: str, what: str) -> str:
    return f"{title}: {what}\n{COUNTS}" if title else f"{what}\n{COUNTS}"


def _draw_histogram(fig: Any, ax: Any, histogram: Histogram, hep: ModuleType | None) -> str:
    """Draw ``histogram`` on ``ax``; returns what the title calls it."""
    from hepstream.hists.text import contents, in_range

    axes = list(histogram.template.axes)
    held = contents(histogram)
    inner = tuple(in_range(axis) for axis in axes)
    values = held.values[inner].astype(np.float64)
    variances = None if held.variances is None else held.variances[inner].astype(np.float64)
    what = "events" if histogram.kind == "int" else "sum of weights"
    if len(axes) == 1:
        errors = None if variances is None else np.sqrt(np.maximum(variances, 0))
        edges = _edges(axes[0])
        if hep is not None:
            hep.histplot(
                values, bins=edges, yerr=errors if errors is not None else False,
                histtype="step", ax=ax, flow=None,
            )  # fmt: skip
        else:
            ax.stairs(values, edges)
            if errors is not None:
                centres = (edges[:-1] + edges[1:]) / 2
                ax.errorbar(centres, values, yerr=errors, fmt="none", ecolor="C0")
        _label_axis(ax, "x", axes[0])
        ax.set_ylabel(what)
        ax.set_ylim(bottom=min(0.0, float(values.min(initial=0.0)) * 1.1))
        return histogram.name
    if len(axes) > 2:  # the map of the first two axes, summed over the others
        values = values.sum(axis=tuple(range(2, len(axes))))
    xedges, yedges = _edges(axes[0]), _edges(axes[1])
    if hep is not None:
        drawn = hep.hist2dplot(values, xbins=xedges, ybins=yedges, ax=ax, cbar=True, flow=None)
        drawn[1].set_label(what)  # (pcolormesh, colorbar, texts)
    else:
        mesh = ax.pcolormesh(xedges, yedges, values.T)
        fig.colorbar(mesh, ax=ax, label=what)
    _label_axis(ax, "x", axes[0])
    _label_axis(ax, "y", axes[1])
    if len(axes) > 2:
        return f"{histogram.name}, summed over {', '.join(a.name or '?' for a in axes[2:])}"
    return histogram.name


def _edges(axis: Any) -> np.ndarray:
    return np.asarray(axis.edges, dtype=np.float64)


def _label_axis(ax: Any, which: str, axis: Any) -> None:
    """The booked label (else the name) on ``which`` of ``ax``; categories as tick labels;
    a log axis in log scale."""
    import boost_histogram as bh
    from matplotlib.ticker import NullLocator

    getattr(ax, f"set_{which}label")(axis.label or axis.name or "")
    if isinstance(axis, bh.axis.IntCategory | bh.axis.StrCategory | bh.axis.Boolean):
        names = ["false", "true"] if isinstance(axis, bh.axis.Boolean) else [str(c) for c in axis]
        every = math.ceil(len(names) / MAX_TICKS)  # many categories: every n-th one named
        shown = np.arange(0, len(names), every)
        getattr(ax, f"set_{which}ticks")(
            shown + 0.5,
            [names[i] for i in shown],
            rotation=90 if which == "x" and len(shown) > 6 else 0,
        )
        getattr(ax, f"{which}axis").set_minor_locator(NullLocator())
    elif isinstance(axis, bh.axis.Regular) and str(axis.transform) == "log":
        getattr(ax, f"set_{which}scale")("log")


def _draw_cutflow(ax: Any, cutflow: list[tuple[str, int]]) -> None:
    cuts = [cut for cut, _ in cutflow]
    counts = np.array([events for _, events in cutflow], dtype=np.float64)
    bars = ax.bar(np.arange(len(cuts)), counts, color="C0")
    ax.bar_label(bars, labels=[f"{int(c):,}" for c in counts], padding=2, fontsize="small")
    ax.set_xticks(np.arange(len(cuts)), cuts, rotation=30, ha="right")
    ax.set_ylabel("events")
    positive = counts[counts > 0]
    if positive.size and positive.max() / positive.min() > LOG_RANGE:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5, top=positive.max() * 20)  # room for the top bar's count
    else:
        ax.set_ylim(0, max(float(counts.max(initial=0.0)), 1.0) * 1.15)
