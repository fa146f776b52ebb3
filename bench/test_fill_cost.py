"""Suite ``fill`` (issue 26): what filling three histograms costs a job.

``bench/plugins/zmumu.py`` (the plain selection) against copies of
``bench/plugins/zmumu_hists.py`` (the same selection filling a 1D mass, a 2D leading pt x eta
and a variable-binned sub-leading pt), one copy per way of filling: ``Histogram.fill`` on the
selected events, with and without weights; ``fill_all`` on every event, with and without
weights; the numba path (``bins()`` + ``bin_index`` in select()'s kernel) on the selected
events and on every event; and two copies that compute what the fills use but book and fill
nothing (what the fills alone cost is a way's cost minus its copy's).

Each is a whole ``run_job`` on the layout matrix's ROOT-written files (TTree, RNTuple,
small-basket TTree; full run: 1M events each), local disk, one job at a time. A round runs
every variant once, in an order rotated round by round, each right before or after a plain
job of its own; a variant's cost is the median over rounds of its job wall over that plain
job's, minus one (CPU time likewise).

Every round is checked: each variant keeps the plain plugin's events, its histograms hold
one entry per selected (or per read) event, and the numba path's entries equal
``Histogram.fill``'s bin for bin.

Run it alone with ``python -m bench -k fill_cost``.
"""

from __future__ import annotations

import itertools
import os
import statistics
from pathlib import Path

import numpy as np
import pytest

from bench.layouts import LAYOUTS, PLUGINS, ensure
from bench.settings import BenchSettings, data_dir

pytestmark = pytest.mark.benchmark(group="fill")

PLAIN = "plain"
#: The ways of filling (``FILL`` of ``zmumu_hists.py``), in the tables' order.
VARIANTS = ("selected", "selected-weighted", "numba-selected", "selected-computed",
            "all", "all-weighted", "numba-all", "all-computed")  # fmt: skip
#: The variants that fill every event read (no preselection: fill_all sees what passes it).
EVERY = ("all", "all-weighted", "numba-all")
#: What each way of filling is compared with to get the fills alone: the job that computes
#: the same values and fills nothing (the numba path computes nothing the plain job does not).
TWIN = {"selected": "selected-computed", "selected-weighted": "selected-computed",
        "numba-selected": PLAIN, "all": "all-computed", "all-weighted": "all-computed",
        "numba-all": "all-computed"}  # fmt: skip
#: The layouts the Z -> mu mu plugins read: files ROOT wrote, a TTree and an RNTuple.
FILL_LAYOUTS = ("root-nanoaod", "root-nanoaod-rntuple", "smallbasket")
#: Timed rounds per layout (each variant once, beside a plain job), after one warm-up round.
ROUNDS = {"full": 9, "quick": 1}
TEMPLATE = PLUGINS / "zmumu_hists.py"


def variant_source(fill: str) -> str:
    """``zmumu_hists.py`` with ``FILL`` set to ``fill``."""
    text = TEMPLATE.read_text()
    line = 'FILL = "selected"\n'
    if line not in text or fill not in VARIANTS:
        raise ValueError(f"cannot make the {fill!r} copy of {TEMPLATE}")
    return text.replace(line, f'FILL = "{fill}"\n', 1)


def variant_plugins(directory: Path) -> dict[str, Path]:
    """``plain`` -> ``zmumu.py``, and each variant -> its copy of ``zmumu_hists.py`` in
    ``directory`` (rewritten only when changed: numba's cache of each copy survives)."""
    directory.mkdir(parents=True, exist_ok=True)
    plugins = {PLAIN: PLUGINS / "zmumu.py"}
    for fill in VARIANTS:
        path = directory / f"zmumu_hists_{fill.replace('-', '_')}.py"
        text = variant_source(fill)
        if not path.exists() or path.read_text() != text:  # atomically: others may read it
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        plugins[fill] = path
    return plugins


def check_fills(fill: str, report, output: str, reference: dict[str, np.ndarray] | None) -> dict:
    """What ``fill``'s job filled: one entry per selected (or read) event in each histogram,
    none for a "computed" copy; the entries per bin, checked against ``reference``'s."""
    from hepstream.hists.store import read_results

    results = read_results(output)
    if fill.endswith("computed"):
        assert results is None or not results.histograms, f"{fill}: booked histograms"
        return {}
    assert results is not None, f"{fill}: no histograms in {output}"
    want = report.events_read if fill in EVERY else report.events_selected
    entries = {name: h.entries() for name, h in results.histograms.items()}
    assert sorted(entries) == ["lead", "mll", "sub_pt"], f"{fill}: {sorted(entries)}"
    for name, got in entries.items():
        assert int(got.sum()) == want, f"{fill}: {name} holds {got.sum()} entries, not {want}"
        if reference is not None:
            assert np.array_equal(got, reference[name]), f"{fill}: {name} differs bin by bin"
    return entries


@pytest.fixture(scope="module")
def fill_plugins() -> dict[str, Path]:
    return variant_plugins(data_dir() / "fill-plugins")


def _events(settings: BenchSettings, name: str) -> int:
    layout = LAYOUTS[name]
    return layout.quick_events if settings.layout_quick else layout.full_events


def _median_ratio(pairs: list[tuple[float, float]]) -> float:
    """The median over pairs of ``variant / plain - 1``."""
    return statistics.median(v / p - 1.0 for v, p in pairs)


@pytest.mark.parametrize("name", FILL_LAYOUTS)
def test_fill_cost(benchmark, settings: BenchSettings, fill_plugins, tmp_path, name) -> None:
    from hepstream.job.runner import JobSpec, run_job

    path = ensure(name, _events(settings, name), settings.seed)
    #: Per variant, per round: (variant's job, the plain job run right before or after it).
    walls: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    cpus: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    last: dict = {}
    counter = itertools.count()

    def job(variant: str):
        out = str(tmp_path / f"{variant}.root")
        report = run_job(JobSpec(str(fill_plugins[variant]), (str(path),), out, site="bench"))
        assert report.status == "ok", f"{variant}: {report.error}"
        return report

    def one_round() -> None:
        k = next(counter)
        reports = {}
        for i, variant in enumerate(VARIANTS[k % len(VARIANTS) :] + VARIANTS[: k % len(VARIANTS)]):
            # each variant next to a plain job of its own (which goes first alternates), so
            # a burst of other load on the machine moves both sides of a ratio alike
            if (k + i) % 2:
                reports[variant], plain = job(variant), job(PLAIN)
            else:
                plain, reports[variant] = job(PLAIN), job(variant)
            walls[variant].append((reports[variant].wall_s, plain.wall_s))
            cpus[variant].append((reports[variant].cpu_s, plain.cpu_s))
        last["plain"] = plain
        by_way: dict[str, dict[str, np.ndarray]] = {}
        for variant in VARIANTS:  # in this order: the python fills first, numba after
            report = reports[variant]
            assert report.events_read == plain.events_read
            assert report.events_selected == plain.events_selected, variant
            python_twin = variant.replace("numba-", "") if variant.startswith("numba") else None
            by_way[variant] = check_fills(
                variant, report, str(tmp_path / f"{variant}.root"), by_way.get(python_twin)
            )

    load_before = os.getloadavg()[0]
    benchmark.pedantic(one_round, rounds=ROUNDS[settings.mode], warmup_rounds=1)
    for pairs in (*walls.values(), *cpus.values()):
        del pairs[0]  # the warm-up round: it loaded numba's caches and the file's pages
    costs = {v: _median_ratio(pairs) for v, pairs in walls.items()}
    ratio = {v: [w / p - 1.0 for w, p in pairs] for v, pairs in walls.items()}
    plain_walls = [p for pairs in walls.values() for _, p in pairs]
    plain = last["plain"]
    benchmark.extra_info.update({
        "suite": "fill", "layout": name, "kind": LAYOUTS[name].kind,
        "writer": LAYOUTS[name].writer, "mode": settings.mode, "rounds": len(walls[VARIANTS[0]]),
        "events": plain.events_read, "selected": plain.events_selected,
        "plain_wall_s": statistics.median(plain_walls),
        "plain_cpu_s": statistics.median(p for pairs in cpus.values() for _, p in pairs),
        "wall_s": {v: statistics.median(w for w, _ in pairs) for v, pairs in walls.items()},
        "cost": costs, "cpu_cost": {v: _median_ratio(pairs) for v, pairs in cpus.items()},
        "fills_cost": {v: costs[v] - costs.get(twin, 0.0) for v, twin in TWIN.items()},
        "cost_range": {v: [min(r), max(r)] for v, r in ratio.items()},
        "load_avg": [load_before, os.getloadavg()[0]], "pairs": walls,
    })  # fmt: skip
