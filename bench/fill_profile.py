"""Where the fill-cost bench's time goes (issue 26): ``python -m bench.fill_profile``.

Two measurements behind docs/performance.md's "Filling histograms" section:

- ``jobs``: the fill plugins' ``run_job`` on one layout file, interleaved, with timers around
  the plugin's calls, ``Histogram.fill``, the histograms' writing and numba's cache loads
  (medians, ms);
- ``entries``: ``Histogram.fill`` alone on arrays of 1M/6 events (a chunk), per event and
  histogram, unweighted and weighted, against boost-histogram's own fill.

Timers change what they time a little; the bench (``python -m bench -k fill_cost``) is the
measurement, this says where its differences come from.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from bench.layouts import LAYOUTS, ensure
from bench.settings import FULL, data_dir
from bench.test_fill_cost import PLAIN, VARIANTS, variant_plugins

SUB_PT = [0, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 80, 100, 150, 250]


def _timed(acc: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t0

    return wrapper


def profile_jobs(layout: str, variants: list[str], rounds: int) -> None:
    import numba.core.caching as caching

    import hepstream.job.runner as runner
    import hepstream.job.writer as writer
    from hepstream.hists.booked import Histogram
    from hepstream.job.runner import JobSpec, run_job

    acc: dict[str, float] = collections.defaultdict(float)
    caching.Cache.load_overload = _timed(acc, "numba cache loads", caching.Cache.load_overload)
    writer.write_results = _timed(acc, "histograms written", writer.write_results)
    Histogram.fill = _timed(acc, "Histogram.fill", Histogram.fill)
    call = runner.call_plugin

    def call_plugin(selection: Any, where: str, method: str, *args: Any) -> Any:
        return _timed(acc, f"plugin {method}()", call)(selection, where, method, *args)

    runner.call_plugin = call_plugin
    plugins = variant_plugins(data_dir() / "fill-plugins")
    path = str(ensure(layout, LAYOUTS[layout].full_events, FULL.seed))
    rows: dict[str, dict[str, list[float]]] = {v: collections.defaultdict(list) for v in variants}

    def job(variant: str) -> Any:
        spec = JobSpec(str(plugins[variant]), (path,), f"/tmp/fill-profile-{variant}.root")
        return run_job(spec)

    for variant in variants:  # warm-up: page cache, hepstream's own kernels
        job(variant)
    for k in range(rounds):
        for variant in variants[k % len(variants) :] + variants[: k % len(variants)]:
            acc.clear()
            report = job(variant)
            rows[variant]["job wall"].append(report.wall_s)
            rows[variant]["job CPU"].append(report.cpu_s)
            for key, value in acc.items():
                rows[variant][key].append(value)
    keys = sorted({key for row in rows.values() for key in row})
    print(f"{layout}, {rounds} interleaved rounds: medians in ms")
    print("| variant | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for variant, row in rows.items():
        cells = [f"{1e3 * statistics.median(row[k] + [0.0] * (rounds - len(row[k]))):.1f}"
                 for k in keys]  # fmt: skip
        print(f"| {variant} | " + " | ".join(cells) + " |")


def profile_entries(events: int = 1_000_000 // 6, repeat: int = 7) -> None:
    import hist

    from hepstream.hists.booked import Histogram

    rng = np.random.default_rng(1)
    mass, pt, eta = (
        rng.uniform(50, 130, events),
        rng.exponential(20, events),
        rng.normal(0, 1.5, events),
    )
    weight = rng.uniform(0.95, 1.0, events)
    shapes = {
        "mll (1D regular)": (lambda h: h.Reg(60, 60, 120), (mass,)),
        "lead (2D regular)": (lambda h: h.Reg(50, 0, 200).Reg(48, -2.4, 2.4), (pt, eta)),
        "sub_pt (variable)": (lambda h: h.Var(SUB_PT), (pt,)),
    }
    print(f"ns per event and histogram, {events:,} events per fill, best of {repeat}")
    print("| histogram | boost Int64 | Histogram Int64 | Histogram Weight, weighted |")
    print("|---|---|---|---|")
    for name, (axes, columns) in shapes.items():
        plain = axes(hist.Hist.new).Int64()
        ints = Histogram(name.split()[0], axes(hist.Hist.new).Int64())
        weighted = Histogram(name.split()[0], axes(hist.Hist.new).Weight())
        cells = []
        fills = (
            partial(plain.fill, *columns),
            partial(ints.fill, *columns),
            partial(weighted.fill, *columns, weight=weight),
        )
        for fill in fills:
            fill()  # compiled kernels loaded
            best = min(_once(fill) for _ in range(repeat))
            cells.append(f"{1e9 * best / events:.1f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def _once(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fill_profile", description=__doc__)
    parser.add_argument("--layout", default="root-nanoaod-rntuple", choices=sorted(LAYOUTS))
    parser.add_argument("--variants", default=",".join((PLAIN, *VARIANTS)))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("what", nargs="*", default=["jobs", "entries"])
    args = parser.parse_args(argv)
    if "entries" in args.what:
        profile_entries()
    if "jobs" in args.what:
        profile_jobs(args.layout, args.variants.split(","), args.rounds)


if __name__ == "__main__":
    main()
