"""Histograms and cut flows without a job (issue 26): a booked ``Histogram`` fills what
boost-histogram fills, a numba kernel's ``bins()`` too; weighted sums are exact (any split,
any merge order, the same limbs; the float is ``math.fsum``'s); ``check_selection`` counts
each cut; ``Results`` merge and round-trip; a damaged state is a ValueError, never anything
else; a booking that cannot merge exactly is one PluginError line.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import os
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import boost_histogram as bh
import hist
import numba
import numpy as np
import pytest
import uproot

import hepstream
from hepstream.errors import PluginError
from hepstream.hists import (
    Histogram,
    Results,
    bin_index,
    exact,
    merge_all,
    read_results,
    write_results,
)
from hepstream.hists.store import STATE_KEY, merge_cutflows
from hepstream.job.filling import Filling
from hepstream.plugin.api import Selection
from hepstream.plugin.calls import check_selection

N = 4000


# -- what to fill: values on every edge, beyond them, NaN and infinities -----------------------
def _reals(rng: np.random.Generator, edges: np.ndarray) -> np.ndarray:
    x = rng.uniform(edges[0] - 1, edges[-1] + 1, N)
    x[: 4 * len(edges)] = np.repeat(edges, 4)  # exactly on each edge, the last one included
    x[-30:-20], x[-20:-10], x[-10:] = np.nan, np.inf, -np.inf
    return rng.permutation(x)


def _values(axis: Any, rng: np.random.Generator) -> np.ndarray:
    """Values for ``axis``: in, on the edges of, and beyond its bins; unknown categories."""
    if isinstance(axis, bh.axis.StrCategory):
        return rng.choice([*list(axis), "unknown", ""], N)
    if isinstance(axis, bh.axis.IntCategory):
        return rng.choice([*list(axis), -7, 99], N)
    if isinstance(axis, bh.axis.Boolean):
        return rng.random(N) < 0.3
    if isinstance(axis, bh.axis.Integer):
        return rng.integers(int(axis.edges[0]) - 2, int(axis.edges[-1]) + 2, N)
    return _reals(rng, axis.edges)


def _nice_weights(rng: np.random.Generator, n: int = N) -> np.ndarray:
    """Weights boost sums exactly in any order: multiples of 1/1024 below 2**20 (negative
    and zero ones too)."""
    return rng.integers(-(2**20), 2**20, n) / 1024.0


AXES = {  # name -> the axis, named as given
    "regular": lambda n: hist.axis.Regular(10, -2.0, 3.0, name=n),
    "regular-noflow": lambda n: hist.axis.Regular(7, 0.0, 7.0, name=n, flow=False),
    "regular-log": lambda n: hist.axis.Regular(
        6, 1.0, 1000.0, name=n, transform=hist.axis.transform.log
    ),
    "variable": lambda n: hist.axis.Variable([-1.0, 0.0, 0.25, 1.5, 1.75, 4.0], name=n),
    "variable-nounder": lambda n: hist.axis.Variable([0.0, 1.0, 3.0], name=n, underflow=False),
    "integer": lambda n: hist.axis.Integer(-3, 5, name=n),
    "intcat": lambda n: hist.axis.IntCategory([7, -1, 3], name=n),
    "intcat-noflow": lambda n: hist.axis.IntCategory([7, -1, 3], name=n, flow=False),
    "strcat": lambda n: hist.axis.StrCategory(["mu", "e", "tau"], name=n),
    "strcat-noflow": lambda n: hist.axis.StrCategory(["mu", "e"], name=n, flow=False),
    "boolean": lambda n: hist.axis.Boolean(name=n),
}
#: 2D bookings: (first axis, second axis).
PAIRS = [("regular", "variable"), ("integer", "strcat"), ("variable-nounder", "intcat-noflow")]
STORAGES = {
    "int64": hist.storage.Int64,
    "double": hist.storage.Double,
    "weight": hist.storage.Weight,
}


def _booking(names: tuple[str, ...], storage: str) -> hist.Hist:
    axes = [AXES[n](f"a{i}") for i, n in enumerate(names)]
    return hist.Hist(*axes, storage=STORAGES[storage]())


def _assert_same(got: Any, want: Any) -> None:
    g, w = got.view(flow=True), want.view(flow=True)
    if want.storage_type is bh.storage.Weight:
        np.testing.assert_array_equal(g.value, w.value)
        np.testing.assert_array_equal(g.variance, w.variance)
    else:
        np.testing.assert_array_equal(g, w)


CASES = [((name,), storage) for name in AXES for storage in STORAGES] + [
    (pair, storage) for pair in PAIRS for storage in STORAGES
]


@pytest.mark.parametrize(
    ("names", "storage"), CASES, ids=lambda v: "-".join(v) if isinstance(v, tuple) else v
)
def test_fills_are_boosts_own(names, storage):
    """Unweighted fills, weighted ones and both mixed: what boost-histogram fills, bin for
    bin (flow bins included); the weights are "nice", so boost's float sums are exact."""
    rng = np.random.default_rng(zlib.crc32(repr((names, storage)).encode()))
    booked = _booking(names, storage)
    columns = [_values(axis, rng) for axis in booked.axes]
    mine, want = Histogram("h", booked), booked.copy()
    mine.fill(*columns)
    want.fill(*columns)
    _assert_same(mine.to_hist(), want)
    assert np.array_equal(mine.entries(), mine.counts.view(flow=True))
    weights = _nice_weights(rng)
    if storage == "int64":
        with pytest.raises(PluginError, match="'h' keeps entries only"):
            mine.fill(*columns, weight=weights)
        return
    named = {axis.name: column for axis, column in zip(booked.axes, columns, strict=True)}
    mine.fill(weight=weights, **named)  # by axis name: the same as by position
    want.fill(*columns, weight=weights)
    _assert_same(mine.to_hist(), want)
    mine.fill(*columns, weight=0.5)  # one weight for every event
    want.fill(*columns, weight=0.5)
    _assert_same(mine.to_hist(), want)
    assert type(mine.to_hist()) is hist.Hist
    if all(_flows(booked)):  # every value lands in some bin
        assert mine.entries().sum() == 3 * N


def _flows(h: Any) -> list[bool]:
    return [a.traits.underflow and a.traits.overflow for a in h.axes]


def test_fills_match_numpy_histogram_inside_the_range():
    rng = np.random.default_rng(3)
    edges = np.array([0.0, 0.5, 2.0, 2.5, 6.0])
    x = rng.uniform(-1, 7, N)
    h = Histogram("x", hist.Hist.new.Var(edges, name="x").Weight())
    w = rng.uniform(0, 2, N)
    h.fill(x, weight=w)
    inside = x < edges[-1]  # numpy's last bin holds its upper edge; boost's does not
    counts, _ = np.histogram(x[inside], bins=edges)
    np.testing.assert_array_equal(h.entries()[1:-1], counts)
    sums, _ = np.histogram(x[inside], bins=edges, weights=w[inside])
    np.testing.assert_allclose(h.to_hist().values(), sums, rtol=1e-12)


# -- the numba path ----------------------------------------------------------------------
@numba.njit
def _kernel_fill(counts, edges, x):
    for v in x:
        counts[bin_index(edges, v)] += 1


@numba.njit
def _kernel_fill_2d(counts, xedges, yedges, x, y):
    for i in range(len(x)):
        counts[hepstream.bin_index(xedges, x[i]), hepstream.bin_index(yedges, y[i])] += 1


@pytest.mark.parametrize("seed", range(4))
def test_a_kernels_bins_are_boosts_fill_on_variable_axes(seed):
    rng = np.random.default_rng(seed)
    edges = np.unique(np.round(rng.normal(0, 3, rng.integers(2, 40)), rng.integers(0, 3)))
    if len(edges) < 2:
        edges = np.array([0.0, 1.0])
    booked = hist.Hist.new.Var(edges, name="x").Int64()
    x = _reals(rng, edges)
    mine, want = Histogram("x", booked), booked.copy()
    np.testing.assert_array_equal(mine.edges("x"), edges)
    _kernel_fill(mine.bins(), mine.edges(), x)
    want.fill(x)
    _assert_same(mine.to_hist(), want)
    # a kernel's bins and fill() add up in the same histogram
    mine.fill(x[:100])
    want.fill(x[:100])
    _assert_same(mine.to_hist(), want)


def test_a_kernels_2d_bins_are_boosts_fill():
    rng = np.random.default_rng(11)
    booked = hist.Hist.new.Var([0, 1, 1.5, 4], name="x").Reg(5, -1, 1, name="y").Int64()
    x, y = _reals(rng, np.array([0, 1, 1.5, 4.0])), _reals(rng, np.linspace(-1, 1, 6))
    mine, want = Histogram("xy", booked), booked.copy()
    _kernel_fill_2d(mine.bins(), mine.edges(0), mine.edges("y"), x, y)
    want.fill(x, y)
    _assert_same(mine.to_hist(), want)
    assert hepstream.bin_index is bin_index


# -- exact sums ----------------------------------------------------------------------------
def _wild_weights(rng: np.random.Generator, n: int, low: float, high: float) -> np.ndarray:
    """Magnitudes spread log-uniformly over [10**low, 10**high], either sign, plus pairs
    that cancel exactly and a few zeros."""
    w = 10.0 ** rng.uniform(low, high, n) * rng.choice([-1.0, 1.0], n)
    w[: n // 10] = -w[n // 10 : 2 * (n // 10)]
    w[-5:] = 0.0
    return rng.permutation(w)


def _pieces(rng: np.random.Generator, x, w, booked, count: int) -> list[Histogram]:
    """The events split at random places into ``count`` histograms of their own."""
    cuts = np.sort(rng.choice(np.arange(1, len(x)), count - 1, replace=False))
    out = []
    for xs, ws in zip(np.split(x, cuts), np.split(w, cuts), strict=True):
        h = Histogram("w", booked)
        h.fill(xs, weight=ws)
        out.append(h)
    return out


def _merged(parts: list[Histogram], order) -> Histogram:
    total = Histogram.from_state(parts[order[0]].state())
    for i in order[1:]:
        total.merge(parts[i])
    return total


def _on_grid(w: float) -> float:
    """``w`` truncated (towards zero) to a multiple of 2**-GRID, as the exact sums keep it."""
    return math.ldexp(math.trunc(math.ldexp(w, exact.GRID)), -exact.GRID)


@pytest.mark.parametrize("storage", ["double", "weight"])
def test_any_split_and_any_merge_order_give_the_same_bits(storage):
    rng = np.random.default_rng(2026)
    booked = hist.Hist(hist.axis.Regular(3, 0, 3, name="x"), storage=STORAGES[storage]())
    n = 3000
    x = rng.integers(-1, 4, n) + 0.5  # every bin, flow bins too
    w = _wild_weights(rng, n, -30, 20)
    whole = Histogram("w", booked)
    whole.fill(x, weight=w)
    results = []
    for _ in range(6):
        parts = _pieces(rng, x, w, booked, int(rng.integers(2, 12)))
        results.append(_merged(parts, rng.permutation(len(parts))))
    for merged in results:
        np.testing.assert_array_equal(merged.sumw, whole.sumw)  # the limbs themselves
        np.testing.assert_array_equal(merged.sumw2, whole.sumw2)
        assert merged.state() == whole.state()
        assert (
            merged.to_hist().view(flow=True).tobytes() == whole.to_hist().view(flow=True).tobytes()
        )
    # the float is the correctly rounded sum of the weights as the grid keeps them
    got = whole.to_hist().view(flow=True)
    values = got.value if storage == "weight" else got
    index = np.clip(np.floor(x).astype(int) + 1, 0, 4)
    for b in range(5):
        ws = w[index == b]
        assert values[b] == math.fsum(_on_grid(v) for v in ws), b
        if storage == "weight":
            assert got.variance[b] == math.fsum(_on_grid(v * v) for v in ws), b
    assert any(abs(v) < 2.0 ** (53 - exact.GRID) for v in w)  # the grid truncated some


def test_nice_weights_sum_to_fsum_exactly():
    """Weights the grid keeps whole (above 2**-75 here): the float is math.fsum's."""
    rng = np.random.default_rng(5)
    w = _wild_weights(rng, 5000, -20, 20)
    h = Histogram("w", hist.Hist.new.Reg(1, 0, 1, name="x").Double())
    h.fill(np.full(len(w), 0.5), weight=w)
    assert h.to_hist().values()[0] == math.fsum(w)
    assert sum(w.tolist()) != math.fsum(w)  # a plain float sum would not be
    # and the unweighted entries in the same bin add as weight 1
    h.fill(np.full(7, 0.5))
    assert h.to_hist().values()[0] == math.fsum([*w, *[1.0] * 7])


#: The largest weight kept, as a power of two: squares summed too (.Weight()) or not.
LIMIT = {"double": exact.MAX_EXPONENT, "weight": exact.MAX_EXPONENT // 2}


@pytest.mark.parametrize("storage", ["double", "weight"])
def test_weights_up_to_the_limit_are_summed_exactly(storage):
    h = Histogram("w", hist.Hist(hist.axis.Regular(1, 0, 1), storage=STORAGES[storage]()))
    top = math.nextafter(2.0 ** LIMIT[storage], 0)
    w = np.array([1e20, top, -3e19, 2.0**60, 1e-30, -top, top, 5e-324])
    h.fill(np.full(len(w), 0.5), weight=w)
    view = h.to_hist().view()
    assert (view.value if storage == "weight" else view)[0] == math.fsum(_on_grid(v) for v in w)
    if storage == "weight":
        assert view.variance[0] == math.fsum(_on_grid(v * v) for v in w)
    assert LIMIT["weight"] >= 66  # 1e20 and its square fit: weights of any physics use


@pytest.mark.parametrize("storage", ["double", "weight"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1.0, -1.0, 1e300])
def test_a_weight_out_of_range_names_the_histogram(storage, bad):
    if abs(bad) == 1.0:  # the first power of two refused, either sign
        bad = math.copysign(2.0 ** LIMIT[storage], bad)
    h = Histogram("mass_w", hist.Hist(hist.axis.Regular(2, 0, 2), storage=STORAGES[storage]()))
    with pytest.raises(
        PluginError, match=r"^histogram 'mass_w': weight .* not finite or too large"
    ):
        h.fill(np.array([0.5, 1.5, 0.5]), weight=np.array([1.0, bad, 2.0]))


# -- the cut flow of one select() answer ---------------------------------------------------------
CUT_NAMES = ["trigger", "two_tracks", "mass"]


def test_a_mask_without_cuts_counts_nothing_more():
    mask = np.random.default_rng(1).random(100) < 0.4
    kept, counts = check_selection(mask, 100, [], "here")
    np.testing.assert_array_equal(kept, mask)
    assert counts == []


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64])
def test_cuts_passed_in_a_row_count_each_cut(dtype):
    passed = np.random.default_rng(2).integers(0, 4, 1000).astype(dtype)
    kept, counts = check_selection(passed, 1000, CUT_NAMES, "here")
    np.testing.assert_array_equal(kept, passed == 3)
    assert counts == [int((passed >= k).sum()) for k in (1, 2, 3)]
    assert counts[0] >= counts[1] >= counts[2] == kept.sum()


def test_a_dict_of_masks_counts_each_cut_after_the_ones_before():
    rng = np.random.default_rng(3)
    masks = {cut: rng.random(500) < p for cut, p in zip(CUT_NAMES, (0.9, 0.5, 0.7), strict=True)}
    kept, counts = check_selection(masks, 500, CUT_NAMES, "here")
    a, b, c = masks.values()
    np.testing.assert_array_equal(kept, a & b & c)
    assert counts == [int(a.sum()), int((a & b).sum()), int((a & b & c).sum())]


def test_an_empty_piece_counts_zeros():
    kept, counts = check_selection(np.zeros(0, np.int8), 0, CUT_NAMES, "here")
    assert len(kept) == 0
    assert counts == [0, 0, 0]


@pytest.mark.parametrize(
    ("answer", "cuts", "needle"),
    [
        ({"trigger": 1, "mass": 1, "two_tracks": 1}, CUT_NAMES, "same names, same order"),
        ({"trigger": 1, "two_tracks": 1}, CUT_NAMES, "same names, same order"),
        ({"trigger": 1, "two_tracks": 1, "mass": 1, "x": 1}, CUT_NAMES, "same names"),
        (np.full(10, 4), CUT_NAMES, "outside 0-3"),
        (np.full(10, -1), CUT_NAMES, "outside 0-3"),
        (np.full(9, 1), CUT_NAMES, r"shape \(9,\); expected \(10,\)"),
        (np.ones(10, bool), CUT_NAMES, "names cuts"),
        (np.ones(10), CUT_NAMES, "names cuts"),
        ([1] * 10, CUT_NAMES, "names cuts"),
        (np.ones(10, np.int64), [], "names no cuts"),
        ({"trigger": 1}, [], "names no cuts"),
        ({"trigger": 1, "two_tracks": 1, "mass": np.ones(10)}, CUT_NAMES, "cut 'mass'.*float64"),
        ({"trigger": 1, "two_tracks": 1, "mass": np.ones(3, bool)}, CUT_NAMES, "cut 'mass'.*shape"),
    ],
)  # fmt: skip
def test_a_wrong_answer_is_one_plugin_error_line(answer, cuts, needle):
    if isinstance(answer, dict):  # 1: a good mask
        answer = {k: np.ones(10, bool) if isinstance(v, int) else v for k, v in answer.items()}
    with pytest.raises(PluginError, match=needle) as err:
        check_selection(answer, 10, cuts, "plugin p.py on f.root entries 0-10: select()")
    assert str(err.value).startswith("plugin p.py on f.root entries 0-10: select()")
    assert "\n" not in str(err.value)


# -- Results: state, merge, cut flows ---------------------------------------------------------
def _results(seed: int, cuts=("events read", "a", "b")) -> Results:
    rng = np.random.default_rng(seed)
    w = Histogram("m", hist.Hist.new.Reg(5, 0, 5, name="m", label="mass [GeV]").Weight())
    w.fill(rng.uniform(-1, 6, 200), weight=rng.normal(1, 0.3, 200))
    w.fill(rng.uniform(-1, 6, 50))
    d = Histogram(
        "xy", hist.Hist.new.Var([0, 1, 3], name="x").StrCat(["p", "q"], name="s").Double()
    )
    d.fill(rng.uniform(-1, 4, 100), rng.choice(["p", "q", "r"], 100), weight=rng.random(100))
    i = Histogram("n", hist.Hist.new.Integer(0, 4, name="n").Int64())
    i.fill(rng.integers(-1, 6, 100))
    counts = sorted(rng.integers(0, 1000, len(cuts)).tolist(), reverse=True)
    return Results({"m": w, "xy": d, "n": i}, list(zip(cuts, counts, strict=True)))


def test_results_round_trip_through_their_state():
    r = _results(1)
    back = Results.from_state(r.state())
    assert back.state() == r.state()
    assert back.cutflow == r.cutflow
    for name, h in r.histograms.items():
        assert back.histograms[name].same_booking(h)
        _assert_same(back.histograms[name].to_hist(), h.to_hist())
    assert back.histograms["m"].template.axes[0].label == "mass [GeV]"


def test_merging_results_is_exact_in_any_order():
    parts = [_results(seed) for seed in range(5)]
    states = {merge_all([parts[i] for i in order]).state() for order in
              ([0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 0, 4, 1, 3])}  # fmt: skip
    assert len(states) == 1
    total = merge_all(parts)
    assert total.cutflow == [
        (cut, sum(p.cutflow[k][1] for p in parts)) for k, (cut, _) in enumerate(parts[0].cutflow)
    ]
    for name in total.histograms:  # entries add up bin by bin
        np.testing.assert_array_equal(
            total.histograms[name].entries(), sum(p.histograms[name].entries() for p in parts)
        )
    # the parts are not aliased: filling one afterwards leaves the total alone
    before = total.state()
    parts[0].histograms["n"].fill(np.array([1, 2]))
    assert total.state() == before


def test_cut_flows_of_different_cuts_do_not_merge():
    a = _results(1)
    b = _results(2, cuts=("events read", "b", "a"))
    with pytest.raises(ValueError, match="cut flows of different cuts"):
        a.merge(b)
    assert merge_cutflows([], [("x", 1)]) == [("x", 1)]


def test_different_bookings_do_not_merge():
    a = Histogram("m", hist.Hist.new.Reg(5, 0, 5, name="m").Weight())
    b = Histogram("m", hist.Hist.new.Reg(5, 0, 6, name="m").Weight())
    c = Histogram("m", hist.Hist.new.Reg(5, 0, 5, name="m").Double())
    for other in (b, c):
        with pytest.raises(PluginError, match="'m': cannot merge two different bookings"):
            a.merge(other)


# -- booking ---------------------------------------------------------------------------------
class _Booker(Selection):
    def __init__(self, booked: Any) -> None:
        self.booked = booked

    def book(self):
        return self.booked

    def select(self, events):
        return np.ones(len(events), bool)


@pytest.mark.parametrize(
    ("booked", "needle"),
    [
        ({"c": hist.Hist.new.StrCat([], name="c", growth=True).Int64()}, "'c': axis c grows"),
        ({"i": hist.Hist.new.IntCat([1], name="i", growth=True).Int64()}, "'i': axis i grows"),
        ({"x": hist.Hist.new.Reg(4, 0, 1, name="x", growth=True).Double()}, "'x': axis x grows"),
        ({"m": hist.Hist.new.Reg(4, 0, 1).Mean()}, "'m': storage Mean"),
        ({"m": hist.Hist.new.Reg(4, 0, 1).WeightedMean()}, "'m': storage WeightedMean"),
        ({"u": bh.Histogram(bh.axis.Regular(4, 0, 1), storage=bh.storage.Unlimited())}, "Unlimited"),
        ({"pt lead": hist.Hist.new.Reg(4, 0, 1).Int64()}, "'pt lead'; use names like"),
        ({"1x": hist.Hist.new.Reg(4, 0, 1).Int64()}, "'1x'"),
        ({"": hist.Hist.new.Reg(4, 0, 1).Int64()}, "''"),
        ({5: hist.Hist.new.Reg(4, 0, 1).Int64()}, "5"),
        ([hist.Hist.new.Reg(4, 0, 1).Int64()], "must return a dict of name -> histogram, not list"),
        (None, "not NoneType"),
        ({"h": np.histogram([1, 2], bins=2)}, "'h': book a hist.Hist .* not tuple"),
    ],
)  # fmt: skip
def test_a_booking_that_cannot_merge_exactly_is_one_line(booked, needle):
    selection = _Booker(booked)
    with pytest.raises(PluginError, match=needle) as err:
        Filling(selection, "p.py", per_file=False)
    assert str(err.value).startswith("plugin p.py: ")
    assert "\n" not in str(err.value)


def test_booked_histograms_are_the_plugins_hists():
    selection = _Booker(
        {
            "a": hist.Hist.new.Reg(4, 0, 1, name="a").Int64(),
            "b": bh.Histogram(bh.axis.Integer(0, 3)),
        }
    )
    filling = Filling(selection, "p.py", per_file=False)
    assert list(selection.hists) == ["a", "b"]
    selection.hists["a"].fill(np.array([0.1, 0.9]))
    assert filling.results([["events read", 2]]).histograms["a"].entries().sum() == 2
    with pytest.raises(TypeError):
        selection.hists["c"] = selection.hists["a"]  # read-only mapping


@pytest.mark.parametrize(
    "axis", [hist.axis.Integer(0, 5, name="i"), hist.axis.IntCategory([1, 2], name="i")]
)
def test_a_weighted_fill_refuses_floats_on_integer_axes_as_boost_does(axis):
    h = Histogram("i", hist.Hist(axis, storage=hist.storage.Weight()))
    with pytest.raises((PluginError, TypeError)):  # today boost's own TypeError
        h.fill(np.array([1.0, 2.0]))
    with pytest.raises((PluginError, TypeError)):
        h.fill(np.array([1.5, 2.0]), weight=np.ones(2))  # today: 1.5 lands in bin 1


# -- written and read back ------------------------------------------------------------------
def _write(path: Path, results: Results) -> Path:
    with uproot.recreate(path) as file:
        write_results(file, results)
    return path


def test_written_histograms_and_cut_flow_read_back(tmp_path):
    r = _results(7)
    path = _write(tmp_path / "r.root", r)
    back = read_results(path)
    assert back is not None
    assert back.state() == r.state()
    with uproot.open(path) as file:
        m = file["m"]
        np.testing.assert_array_equal(
            m.values(flow=True), r.histograms["m"].to_hist().values(flow=True)
        )
        np.testing.assert_array_equal(
            m.variances(flow=True), r.histograms["m"].to_hist().variances(flow=True)
        )
        assert m.axes[0].member("fTitle") == "mass [GeV]"
        np.testing.assert_array_equal(file["n"].values(flow=True), r.histograms["n"].entries())
        assert list(file["cutflow"].axes[0].labels()) == [c for c, _ in r.cutflow]
        np.testing.assert_array_equal(file["cutflow"].values(), [n for _, n in r.cutflow])
    with uproot.recreate(tmp_path / "plain.root") as file:
        file["h"] = np.histogram([1, 2], bins=2)
    assert read_results(tmp_path / "plain.root") is None


def test_written_th2_keeps_the_flow_bins_of_a_category_axis(tmp_path):
    r = _results(8)
    path = _write(tmp_path / "r.root", r)
    want = r.histograms["xy"].to_hist()
    with uproot.open(path) as file:
        got = file["xy"].values(flow=True)  # ROOT: under- and overflow on both axes
    assert got.sum() == want.values(flow=True).sum()
    np.testing.assert_array_equal(got[:, 1:], want.values(flow=True))  # no underflow of s


# -- damaged states: a ValueError saying what, never anything else ----------------------------
def _state_doc() -> dict[str, Any]:
    return json.loads(_results(9).state())


def _read_damaged(tmp_path: Path, text: str, name: str = "d.root") -> Results | None:
    path = tmp_path / name
    with uproot.recreate(path) as file:
        file[STATE_KEY] = text
    return read_results(path)


def _set(path: list[Any], value: Any):
    def edit(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is KeyError:
            del target[path[-1]]
        else:
            target[path[-1]] = value

    return edit


def _cut(field: str, chars: int):
    return lambda doc: doc["histograms"][0].__setitem__(field, doc["histograms"][0][field][:-chars])


DAMAGES = {
    "not JSON": None,
    "version": _set(["version"], 2),
    "no histograms": _set(["histograms"], KeyError),
    "histograms not a list": _set(["histograms"], 5),
    "a histogram not a dict": _set(["histograms", 1], "xy"),
    "no axes": _set(["histograms", 0, "axes"], KeyError),
    "axes null": _set(["histograms", 0, "axes"], None),
    "axis type": _set(["histograms", 0, "axes", 0, "type"], "spline"),
    "bins zero": _set(["histograms", 0, "axes", 0, "bins"], 0),
    "bins text": _set(["histograms", 0, "axes", 0, "bins"], "5"),
    "bins more": _set(["histograms", 0, "axes", 0, "bins"], 6),
    "edges unsorted": _set(["histograms", 1, "axes", 0, "edges"], [3, 1, 0]),
    "storage": _set(["histograms", 0, "storage"], "mean"),
    "storage other": _set(["histograms", 0, "storage"], "int"),
    "storage list": _set(["histograms", 0, "storage"], ["weight"]),
    "counts short": _cut("counts", 12),
    "counts padding": _cut("counts", 1),
    "sumw short": _cut("sumw", 4),
    "sumw2 gone": _set(["histograms", 0, "sumw2"], KeyError),
    "sumw2 not base64": _set(["histograms", 0, "sumw2"], "!!!!"),
    "wcounts a number": _set(["histograms", 0, "wcounts"], 12),
    "cutflow rows": _set(["cutflow"], [["a"]]),
    "cutflow count": _set(["cutflow", 0, 1], "many"),
    "cutflow nan": _set(["cutflow", 0, 1], float("nan")),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_state_is_a_value_error_saying_what(tmp_path, damage):
    if DAMAGES[damage] is None:
        text = "{'version': 1, histograms"
    else:
        doc = _state_doc()
        DAMAGES[damage](doc)
        text = json.dumps(doc)
    with pytest.raises(ValueError, match=r"\w"):  # saying what
        _read_damaged(tmp_path, text)


def _mutations(text: str, rng: np.random.Generator, count: int):
    """Damage as storage and hand edits make it: truncated, a character gone or changed, a
    base64 field cut short or with a foreign character, a key dropped."""
    doc = json.loads(text)
    fields = [(i, k) for i in range(len(doc["histograms"])) for k in ("counts", "wcounts", "sumw", "sumw2")
              if doc["histograms"][i][k]]  # fmt: skip
    for _ in range(count):
        kind = rng.integers(0, 5)
        if kind == 0:
            yield text[: int(rng.integers(0, len(text)))]
        elif kind == 1:
            at = int(rng.integers(0, len(text)))
            yield text[:at] + text[at + 1 :]
        elif kind == 2:
            at = int(rng.integers(0, len(text)))
            yield text[:at] + chr(int(rng.integers(32, 127))) + text[at + 1 :]
        else:
            d = copy.deepcopy(doc)
            i, key = fields[int(rng.integers(0, len(fields)))]
            if kind == 3:
                value = d["histograms"][i][key]
                d["histograms"][i][key] = value[: int(rng.integers(0, len(value)))]
            else:
                victim = rng.choice(sorted(d["histograms"][i]))
                del d["histograms"][i][victim]
            yield json.dumps(d)


def test_a_fuzzed_state_is_read_or_refused_with_a_value_error(tmp_path):
    text = _results(10).state()
    rng = np.random.default_rng(26)
    refused: list[str] = []
    for k, damaged in enumerate(_mutations(text, rng, 150)):
        try:
            got = _read_damaged(tmp_path, damaged, f"f{k % 3}.root")
        except ValueError as err:  # anything else fails the test
            refused.append(str(err))
        else:  # a change that left a valid state (a digit of a count): it reads as one
            assert got is not None
            assert Results.from_state(got.state()).state() == got.state()
    assert len(refused) > 100
    assert all(message.strip() for message in refused)  # each says what


def test_a_damaged_root_file_is_a_value_error(tmp_path):
    path = _write(tmp_path / "r.root", _results(11))
    with uproot.open(path) as file:
        key = file.key(STATE_KEY)
        start, size = key.fSeekKey + key.fKeylen, key.data_compressed_bytes
    blob = path.read_bytes()
    assert size > 100
    assert start + size <= len(blob)
    damaged = {
        "cut.root": blob[: start + size // 2],  # ends inside the state's bytes
        "zeroed.root": blob[: start + 20] + bytes(size - 40) + blob[start + size - 20 :],
        "junk.root": b"not ROOT at all" * 50,
        "empty.root": b"",
    }
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=r"\w"):
            read_results(tmp_path / name)


def test_an_infinite_cut_flow_count_is_a_value_error(tmp_path):
    doc = _state_doc()
    doc["cutflow"][0][1] = float("inf")  # json writes Infinity; a hand edit of 1e999 too
    with pytest.raises(ValueError, match=r"\w"):
        _read_damaged(tmp_path, json.dumps(doc))


def test_two_histograms_of_one_name_are_a_value_error(tmp_path):
    doc = _state_doc()
    doc["histograms"][2]["name"] = doc["histograms"][0]["name"]
    with pytest.raises(ValueError, match="'m'"):
        _read_damaged(tmp_path, json.dumps(doc))


def test_a_damaged_states_error_is_one_line(tmp_path):
    doc = _state_doc()
    doc["histograms"][1]["axes"][1]["categories"] = [1, 2]  # ints on a string axis
    with pytest.raises(ValueError, match=r"\w") as err:
        _read_damaged(tmp_path, json.dumps(doc))
    assert "\n" not in str(err.value)


HUGE = """\
import json, resource
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
from hepstream.hists.store import Results
doc = json.loads({text!r})
doc["histograms"][0]["axes"][0]["bins"] = 1 << 14
doc["histograms"][0]["axes"].append(dict(doc["histograms"][0]["axes"][0], bins=1 << 14))
try:
    Results.from_state(json.dumps(doc))
except ValueError as err:
    print("ValueError", err)
except BaseException as err:
    print(type(err).__name__, err)
"""


def test_a_state_claiming_huge_axes_is_refused_before_allocating():
    text = json.dumps({"version": 1, "histograms": [_state_doc()["histograms"][0]], "cutflow": []})
    env = {**os.environ, "PYTHONPATH": str(Path(hepstream.__file__).parent.parent)}
    result = subprocess.run(
        [sys.executable, "-c", HUGE.format(text=text)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.stdout.startswith("ValueError"), result.stdout + result.stderr


def test_unpacked_state_arrays_are_int64_limbs():
    h = Histogram("w", hist.Hist.new.Reg(2, 0, 2, name="x").Weight())
    h.fill(np.array([0.5]), weight=np.array([0.75]))
    raw = base64.b64decode(h.state()["sumw"])
    assert len(raw) == 8 * 4 * exact.LIMBS
    limbs = np.frombuffer(raw, "<i8").reshape(4, exact.LIMBS)
    assert (limbs[:, :-1] >= 0).all()  # normalized: one representation per sum
    assert (limbs[:, :-1] < 2**32).all()
