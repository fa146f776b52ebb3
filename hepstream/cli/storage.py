"""``hepstream bench storage`` once its options are read: plan, sweep, and what it shows.

The progress line and bar on stderr, then the results table (or the ``--json`` document) on
stdout, and the plot; with ``--site-cache``, the cold and warm passes through the cache. :mod:`hepstream.cli.bench` imports this module only when the command
runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hepstream.errors import ConfigError, OutputError
from hepstream.io import StreamConfig, parse_size
from hepstream.plugin.loader import load_plugin
from hepstream.storagebench.cachepass import (
    CachePass,
    CacheRun,
    check_cache_options,
    run_cache_passes,
)
from hepstream.storagebench.model import MB, BenchConfig, LevelResult, ReadPattern
from hepstream.storagebench.pattern import read_pattern
from hepstream.storagebench.sweep import job_levels, run_sweep


def run(
    url: str,
    bench: BenchConfig,
    streams: list[StreamConfig],
    *,
    tree: str | None,
    branches: str | None,
    plugin: Path | None,
    chunk: str | None,
    xrdcp: bool,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Plan the job's reads of ``url`` for each stream setting, sweep the concurrency
    levels, then print the table (or the JSON document) and write the plot. The options
    as given: ``branches`` comma-separated, ``chunk`` a size."""
    levels = job_levels(bench.jobs)
    tree, branch_list = _tree_and_branches(tree, branches, plugin)
    chunk_bytes = parse_size(chunk) if chunk else None
    patterns = [(read_pattern(url, tree, branch_list, s, chunk_bytes), s) for s in streams]
    pattern = patterns[0][0]
    results = _sweep_with_progress(patterns, levels, bench, xrdcp, quiet=as_json)
    if plot is not None:
        write_plot(results, plot, f"{pattern.url.rsplit('/', 1)[-1]} ({pattern.tree})")
    if as_json:
        typer.echo(json.dumps(report_dict(pattern, bench, results), indent=2))
    else:
        output_console().print(results_table(results, pattern))
        if plot is not None:
            typer.echo(f"plot: {plot}")


def run_cache(
    url: str,
    bench: BenchConfig,
    stream: StreamConfig,
    site_cache: str,
    cache_dir: Path | None,
    *,
    tree: str | None,
    branches: str | None,
    plugin: Path | None,
    chunk: str | None,
    as_json: bool,
) -> None:
    """Plan the job's reads of ``url`` at the origin, then a cold and a warm pass of
    ``bench.jobs`` readers through ``site_cache``; print the table (or the JSON document)."""
    cache_dir = check_cache_options(url, cache_dir)
    tree, branch_list = _tree_and_branches(tree, branches, plugin)
    chunk_bytes = parse_size(chunk) if chunk else None
    pattern = read_pattern(url, tree, branch_list, stream, chunk_bytes)
    jobs = bench.jobs
    err = Console(stderr=True, soft_wrap=True)
    err.print(
        f"replaying {pattern.chunks} chunks ({pattern.nbytes / MB:.1f} MB, "
        f"{pattern.events:,} events) of {pattern.tree} through {site_cache}: a cold and a "
        f"warm pass of {jobs} reader{'s' if jobs != 1 else ''}",
        highlight=False,
    )

    def done(one: CachePass) -> None:
        if not as_json:
            err.print(f"{one.name} pass: {one.level.aggregate_mb_s:.1f} MB/s", highlight=False)

    run = run_cache_passes(pattern, stream, bench, site_cache, jobs, cache_dir, on_pass=done)
    if as_json:
        typer.echo(json.dumps(cache_report_dict(pattern, bench, run), indent=2))
        return
    console = output_console()
    console.print(cache_table(run, pattern))
    for line in cache_notes(run):
        console.print(line, highlight=False)


#: The cache table's columns.
_CACHE_HEADERS = (
    *("pass", "readers", "MB/s", "MB/s/reader", "events/s", "p50 ms", "p99 ms", "req"),
    *("wall s", "served MB", "from origin MB", "origin share", "failed"),
)


def cache_table(run: CacheRun, pattern: ReadPattern) -> Table:
    """One row per pass: rates, latencies, and what the cache fetched from the origin."""
    table = Table(
        title=f"{pattern.url} through {run.cache_url.split('//')[1].split('/')[0]} "
        f"({pattern.tree}, {len(pattern.branches)} branches)"
    )
    for header in _CACHE_HEADERS:
        table.add_column(header, justify="right", no_wrap=True)
    for one in run.passes:
        lv = one.level
        share = one.origin_share
        table.add_row(
            one.name,
            *_rate_cells(lv),
            f"{lv.wall_s:.2f}",
            f"{one.served_bytes / MB:.1f}",
            "unknown" if one.origin_bytes is None else f"{one.origin_bytes / MB:.1f}",
            "unknown" if share is None else f"{share:.2f}",
            str(lv.failed),
        )
    return table


def cache_notes(run: CacheRun) -> list[str]:
    """The lines under the table: warm against cold, and what the origin's share means."""
    notes = []
    ratio = run.warm_vs_cold
    if ratio is not None:
        notes.append(f"warm pass / cold pass: {ratio:.2f}x MB/s")
    if run.cache_dir is None:
        notes.append(
            "origin share unknown: only the cache knows what it fetched; run on the cache host "
            "with --cache-dir DIR (the cache's --dir). Without it the bench cannot tell either "
            "whether the cache held the file before: the cold pass is cold only for a file the "
            "cache has not served"
        )
    elif run.cached_before:
        notes.append(
            f"warning: the cache held {run.cached_before:.0%} of this file's blocks before the "
            f"cold pass, which was therefore not cold: pick a file it has not served yet"
        )
    return notes


def cache_report_dict(pattern: ReadPattern, bench: BenchConfig, run: CacheRun) -> dict[str, Any]:
    """The ``--json`` document of a cache run."""
    return {
        "url": run.url,
        "cache_url": run.cache_url,
        "cache_dir": run.cache_dir,
        "tree": pattern.tree,
        "branches": list(pattern.branches),
        "chunks": pattern.chunks,
        "events_per_pass": pattern.events,
        "bytes_per_pass": pattern.nbytes,
        "requests_per_pass": len(pattern.requests),
        "readers": run.passes[0].level.jobs,
        "duration_s": bench.duration,
        "readers_per_process": bench.readers_per_process,
        "cached_before": run.cached_before,
        "warm_vs_cold": run.warm_vs_cold,
        "passes": [one.asdict() for one in run.passes],
    }


def _tree_and_branches(
    tree: str | None, branches: str | None, plugin: Path | None
) -> tuple[str | None, list[str] | None]:
    """The tree and branches to replay: the options', else the plugin's (as its job reads)."""
    branch_list = [b.strip() for b in branches.split(",") if b.strip()] if branches else None
    if plugin is not None:
        selection = load_plugin(plugin)
        tree, branch_list = tree or selection.tree, branch_list or list(selection.branches)
    return tree, branch_list


def _sweep_with_progress(
    patterns: list[tuple[ReadPattern, StreamConfig]],
    levels: list[int],
    bench: BenchConfig,
    xrdcp: bool,
    quiet: bool,
) -> list[LevelResult]:
    """:func:`~hepstream.storagebench.sweep.run_sweep`, saying on stderr what it replays and
    showing each level's rate as it ends (no bar when ``quiet``)."""
    pattern = patterns[0][0]
    err = Console(stderr=True, soft_wrap=True)  # a long line stays one line in a log
    err.print(
        f"replaying {pattern.chunks} chunks ({pattern.nbytes / MB:.1f} MB, "
        f"{pattern.events:,} events) of {pattern.tree}: levels {levels}, "
        f"{bench.duration:g} s each",
        highlight=False,
    )
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=quiet) as bar:
        task = bar.add_task("levels", total=len(patterns) * len(levels))

        def done(level: LevelResult) -> None:
            bar.update(
                task, advance=1, description=f"{level.jobs} jobs: {level.aggregate_mb_s:.0f} MB/s"
            )

        return run_sweep(patterns, levels, bench, on_level=done, xrdcp=xrdcp)


def write_plot(levels: Sequence[LevelResult], path: Path, title: str) -> Path:
    """Aggregate MB/s against concurrent jobs, one line per read-ahead (PNG, atomic write)."""
    try:  # an optional dependency, and slow to import: only --plot loads it
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'hepstream[plot]'") from None
    matplotlib.use("Agg")
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for readahead in sorted({lv.readahead for lv in levels}):
        mine = sorted((lv for lv in levels if lv.readahead == readahead), key=lambda lv: lv.jobs)
        ax.plot(
            [lv.jobs for lv in mine],
            [lv.aggregate_mb_s for lv in mine],
            marker="o",
            label=f"read-ahead {_size(readahead)}",
        )
    ax.set_xticks(sorted({lv.jobs for lv in levels}))
    ax.set_xlabel("concurrent jobs")
    ax.set_ylabel("aggregate throughput [MB/s]")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=120)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OutputError(
            f"cannot write plot {path}: {err.strerror}; check the directory"
        ) from None
    return path


def _size(n: int) -> str:
    """A read-ahead size as the options spell it: ``1M``, ``256k``, or bytes."""
    for unit, scale in (("M", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


#: The table's columns; the two ``xrdcp`` ones follow when the run compared with it.
_HEADERS = (
    *("readahead", "jobs", "MB/s", "MB/s/job", "events/s", "p50 ms", "p99 ms", "req"),
    *("meta hits", "failed"),
)
_XRDCP_HEADERS = ("xrdcp MB/s", "vs xrdcp")


def results_table(levels: Sequence[LevelResult], pattern: ReadPattern) -> Table:
    """One row per level: rates, latencies, requests and failures (and ``xrdcp``'s rate)."""
    table = Table(title=f"{pattern.url} ({pattern.tree}, {len(pattern.branches)} branches)")
    compared = any(lv.xrdcp_mb_s is not None for lv in levels)
    for header in (*_HEADERS, *(_XRDCP_HEADERS if compared else ())):
        table.add_column(header, justify="right", no_wrap=True)
    for lv in levels:
        row = [
            _size(lv.readahead),
            *_rate_cells(lv),
            f"{lv.cache_hit_fraction:.0%}",
            str(lv.failed),
        ]
        if compared:
            ratio = lv.vs_xrdcp
            row += [
                "-" if lv.xrdcp_mb_s is None else f"{lv.xrdcp_mb_s:.1f}",
                "-" if ratio is None else f"{ratio:.2f}x",
            ]
        table.add_row(*row)
    return table


def output_console() -> Console:
    """A rich console for stdout that never cuts a table: full width when piped or
    redirected (rich would otherwise assume 80 columns and truncate cells with ``…``)."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=10_000, soft_wrap=True)


def report_dict(
    pattern: ReadPattern, bench: BenchConfig, levels: Sequence[LevelResult]
) -> dict[str, Any]:
    """The ``--json`` document."""
    return {
        "url": pattern.url,
        "tree": pattern.tree,
        "branches": list(pattern.branches),
        "chunks": pattern.chunks,
        "events_per_pass": pattern.events,
        "bytes_per_pass": pattern.nbytes,
        "duration_s": bench.duration,
        "max_requests": bench.max_requests,
        "readers_per_process": bench.readers_per_process,
        "levels": [lv.asdict() for lv in levels],
    }


def _rate_cells(lv: LevelResult) -> list[str]:
    """The cells a sweep level and a cache pass share: jobs, rates, latencies, requests."""
    return [
        str(lv.jobs),
        f"{lv.aggregate_mb_s:.1f}",
        f"{lv.mean_job_mb_s:.1f}",
        f"{lv.events_per_s:,.0f}",
        f"{lv.latency_p50_ms:.1f}",
        f"{lv.latency_p99_ms:.1f}",
        str(lv.requests),
    ]
