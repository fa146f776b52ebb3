"""The fill-cost bench (bench/test_fill_cost.py): its plugins keep zmumu.py's events and fill
what they claim, against histograms filled here from an independent awkward answer; its
targets and table (bench/render.py) from a hand-made document."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import hist
import numpy as np
import pytest

from bench.answers import mll_leading_pair, zmumu
from bench.render import TARGETS, records, render
from bench.settings import data_dir
from bench.test_fill_cost import PLAIN, VARIANTS, check_fills, variant_plugins

N_EVENTS = 4_000
MISSING = -10.0  # what the plugin fills for a muon (or pair) an event lacks
SUB_PT = [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 80, 100, 150, 250]


def _nanoaod_like(path: Path, n: int, seed: int) -> Path:
    """nMuon, Muon_pt/eta/phi/charge/mass and MET_pt, as NanoAOD names them (uproot): soft
    muons everywhere and a back-to-back pair of 30-50 GeV (m ~ 80-100) in a fifth of events."""
    import uproot

    rng = np.random.default_rng(seed)
    pairs = rng.random(n) < 0.2
    counts = rng.poisson(0.7, n) + 2 * pairs
    total = int(counts.sum())
    pt = 3.0 + rng.exponential(10.0, total)
    eta, phi = rng.uniform(-2.6, 2.6, total), rng.uniform(-np.pi, np.pi, total)
    starts = np.cumsum(counts) - counts
    first = starts[pairs]
    pt[first], pt[first + 1] = rng.uniform(30, 50, first.size), rng.uniform(30, 50, first.size)
    eta[first], eta[first + 1] = 0.3 * rng.standard_normal((2, first.size))
    phi[first + 1] = phi[first] - np.pi
    muons = ak.unflatten(ak.zip({
        "pt": pt.astype(np.float32), "eta": eta.astype(np.float32),
        "phi": phi.astype(np.float32), "mass": np.full(total, 0.1057, np.float32),
        "charge": rng.choice(np.array([-1, 1], np.int32), total),
    }), counts)  # fmt: skip
    muons = muons[ak.argsort(muons.pt, ascending=False)]  # pt-ordered, as NanoAOD stores them
    with uproot.recreate(path) as file:
        tree = file.mktree("Events", {"Muon": muons.type.content, "MET_pt": "f4"})
        tree.extend({"Muon": muons, "MET_pt": rng.exponential(30.0, n).astype(np.float32)})
    return path


def _expected(path: Path) -> dict[str, dict[str, hist.Hist]]:
    """The three histograms, filled here with ``hist`` from the awkward answer: on the
    selected events (bench.answers.zmumu) and on every event."""
    import uproot

    answer = zmumu([str(path)])
    events = uproot.open(path)["Events"].arrays()
    n = ak.num(events.Muon_pt)

    def lead(k: int, field: str, values=None) -> np.ndarray:
        got = ak.to_numpy(ak.fill_none(ak.pad_none(events[f"Muon_{field}"], 2)[:, k], MISSING))
        return got.astype(np.float64)

    two = events[n >= 2]
    mll_all = np.full(len(events), MISSING)
    mll_all[ak.to_numpy(n >= 2)] = mll_leading_pair(two)
    pt, eta = answer.column("Muon_pt"), answer.column("Muon_eta")
    filled = {
        "selected": (answer.column("mll"), pt[:, 0], eta[:, 0], pt[:, 1]),
        "all": (mll_all, lead(0, "pt"), lead(0, "eta"), lead(1, "pt")),
    }
    out = {}
    for way, (mll, pt1, eta1, pt2) in filled.items():
        h = {"mll": hist.Hist.new.Reg(60, 60, 120).Int64(),
             "lead": hist.Hist.new.Reg(50, 0, 200).Reg(48, -2.4, 2.4).Int64(),
             "sub_pt": hist.Hist.new.Var(SUB_PT).Int64()}  # fmt: skip
        h["mll"].fill(np.asarray(mll, np.float64))
        h["lead"].fill(np.asarray(pt1, np.float64), np.asarray(eta1, np.float64))
        h["sub_pt"].fill(np.asarray(pt2, np.float64))
        out[way] = h
    return out


@pytest.mark.slow  # seconds; the first run compiles the 7 plugin copies (~30 s)
def test_fill_plugins_keep_zmumu_events_and_fill_what_they_claim(tmp_path: Path) -> None:
    from hepstream.hists.store import read_results
    from hepstream.job.runner import JobSpec, run_job

    path = _nanoaod_like(tmp_path / "nano.root", N_EVENTS, seed=5)
    expected = _expected(path)
    plugins = variant_plugins(data_dir() / "fill-plugins")
    reports = {}
    for variant in (PLAIN, *VARIANTS):
        out = str(tmp_path / f"{variant}.root")
        reports[variant] = report = run_job(JobSpec(str(plugins[variant]), (str(path),), out))
        assert report.status == "ok", (variant, report.error)
    plain = reports[PLAIN]
    assert 0 < plain.events_selected < N_EVENTS // 4
    written = _columns(tmp_path / f"{PLAIN}.root")
    for variant in VARIANTS:
        report, out = reports[variant], str(tmp_path / f"{variant}.root")
        assert report.events_selected == plain.events_selected, variant
        assert _columns(Path(out)) == written, variant  # the same output, mass included
        entries = check_fills(variant, report, out, None)  # entries: one per event filled
        if variant.endswith("computed"):
            continue
        way = "selected" if "selected" in variant else "all"
        for name, want in expected[way].items():  # bin for bin, flow bins included
            assert np.array_equal(entries[name], want.view(flow=True)), (variant, name)
        if variant.endswith("weighted"):
            results = read_results(out)
            assert results is not None
            sumw = results.histograms["mll"].to_hist().sum(flow=True).value
            assert 0.9 * entries["mll"].sum() < sumw < entries["mll"].sum()  # 0.9-1 each


def _columns(path: Path) -> list:
    import uproot

    with uproot.open(path) as file:
        return file["Events"].arrays(["mll", "MET_pt", "Muon_pt"]).to_list()


def _fill_bench(layout: str, costs: dict[str, float], mode: str = "full") -> dict:
    info = {"suite": "fill", "layout": layout, "kind": "ttree", "writer": "ROOT", "mode": mode,
            "rounds": 11, "events": 1_000_000, "selected": 65_271, "plain_wall_s": 0.55,
            "plain_cpu_s": 0.5, "cost": costs, "cpu_cost": costs, "pooled_cost": costs,
            "fills_cost": costs, "cost_range": {k: [v - 0.01, v + 0.01] for k, v in costs.items()},
            "load_avg": [0.5, 0.6]}  # fmt: skip
    return {"name": f"fill-{layout}", "stats": {"median": 6.0, "rounds": 11}, "extra_info": info}


def _costs(selected: float, every: float) -> dict[str, float]:
    return {v: (every if v.startswith("all") or v == "numba-all" else selected)
            for v in VARIANTS}  # fmt: skip


def test_fill_targets_are_the_worst_layout_and_full_run_only() -> None:
    doc = {"benchmarks": [_fill_bench("root-nanoaod", _costs(0.03, 0.10)),
                          _fill_bench("smallbasket", _costs(0.06, 0.12))],
           "machine_info": {}}  # fmt: skip
    got = {t.name: t.evaluate_where(records(doc)) for t in TARGETS if t.name.startswith("fill")}
    selected = got["fill: 3 histograms on every selected event <= 5 % of job wall"]
    every = got["fill: 3 histograms on all events <= 15 % of job wall"]
    assert selected[:2] == (pytest.approx(6.0), "miss")
    assert "smallbasket" in selected[2]
    assert every[:2] == (pytest.approx(12.0), "pass")
    text = render(doc)
    assert "+6.0 % ✗" in text
    assert "+10.0 % ✓" in text
    quick = {"benchmarks": [_fill_bench("root-nanoaod", _costs(0.2, 0.3), "quick")]}
    for target in TARGETS:
        if target.name.startswith("fill"):
            assert target.evaluate(records(quick)) == (None, "not run")
