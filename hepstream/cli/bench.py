"""``hepstream bench``: the site admin's storage benchmark and the performance suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from hepstream.errors import ConfigError
from hepstream.io import StreamConfig, is_remote, parse_size
from hepstream.io.config import site_cache_url
from hepstream.storagebench.model import PASS_TIMEOUT_S, BenchConfig

app = typer.Typer(
    help="Benchmarks: storage throughput and the performance suites.", no_args_is_help=True
)


@app.command("storage")
def storage_cmd(
    url: Annotated[str, typer.Argument(help="root://host:port//path/file.root or a local path.")],
    tree: Annotated[str | None, typer.Option(help="TTree to replay; default: the first.")] = None,
    branches: Annotated[
        str | None,
        typer.Option(help="Comma-separated branch names or globs; default: all branches."),
    ] = None,
    plugin: Annotated[
        Path | None,
        typer.Option(help="Replay this selection plugin's tree and branches (as its job reads)."),
    ] = None,
    max_jobs: Annotated[
        int | None,
        typer.Option(
            help="Highest number of concurrent readers (<= 1024); default 2 x cores. With "
            "--site-cache: the readers of each pass, default 1."
        ),
    ] = None,
    readers_per_process: Annotated[
        int, typer.Option(help="Asynchronous readers per reader process.")
    ] = BenchConfig.readers_per_process,
    readahead: Annotated[str, typer.Option(help="Read-ahead window, e.g. 1M.")] = "1M",
    cache: Annotated[str, typer.Option(help="Per-reader cache bound, e.g. 10M.")] = "10M",
    chunk: Annotated[
        str | None, typer.Option(help="The job's chunk size, as hepstream run --chunk.")
    ] = None,
    readahead_sweep: Annotated[
        str | None,
        typer.Option(help="Repeat for each read-ahead, e.g. 0,256k,1M,4M (overrides --readahead)."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            help=f"Seconds per concurrency level (default {BenchConfig.duration:g}); with "
            f"--site-cache, the bound on each pass (default {PASS_TIMEOUT_S:g})."
        ),
    ] = None,
    max_requests: Annotated[
        int, typer.Option(help="Backend requests per reader per level, at most.")
    ] = BenchConfig.max_requests,
    xrdcp: Annotated[
        bool, typer.Option("--xrdcp", help="Also time as many concurrent xrdcp copies per level.")
    ] = False,
    plot: Annotated[
        Path | None, typer.Option(help="Write aggregate MB/s vs jobs as a PNG here.")
    ] = None,
    site_cache: Annotated[
        str | None,
        typer.Option(
            help="Read URL (the file at the origin) through this site cache, root://host:port: "
            "a cold pass, then a warm pass of the same reads, by --max-jobs readers (default 1)."
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="With --site-cache, on the cache host: the cache's --dir, whose records give "
            "the origin's share of each pass (bytes fetched from the origin / bytes served)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Measure how a storage endpoint serves 1, 2, 4, ... concurrent analysis jobs.

    The runner's own reader opens the file and plans a job's reads (its metadata reads, then
    each chunk's baskets as the prefetcher requests them); many asynchronous readers per
    process replay those requests, cycling through the file. Read-only; each level stops
    after --duration seconds or --max-requests per reader.

    With --site-cache, URL is read through a site's XCache instead: the job's reads are
    planned at the origin, then every reader replays them once through the cache (cold) and
    once more (warm); with --cache-dir, on the cache host, each pass shows the bytes the cache
    fetched from the origin over the bytes it served.

    \b
    Example:
        hepstream bench storage root://xrootd.example.org//data/tau1n_mc_000.root \\
            --max-jobs 512 --readahead-sweep 0,1M --duration 10 --xrdcp --plot storage.png
        hepstream bench storage root://central.example.org//data/tau1n_mc_000.root \\
            --site-cache root://xcache.example.org:1094 --cache-dir /var/cache/hepstream
    """
    if site_cache is not None:
        site_cache = site_cache_url(site_cache, "--site-cache")
        if site_cache is None:
            raise ConfigError("--site-cache is empty: give root://host:port of the cache")
        _refuse_with_cache(xrdcp, readahead_sweep, plot)
    elif cache_dir is not None:
        raise ConfigError("--cache-dir goes with --site-cache: name the cache to read through")
    if duration is None:
        duration = BenchConfig.duration if site_cache is None else PASS_TIMEOUT_S
    if site_cache is not None and max_jobs is None:
        max_jobs = 1  # a job's first and second read of a file
    bench = _bench_config(url, xrdcp, max_jobs, readers_per_process, duration, max_requests)
    sizes = parse_size_list(readahead_sweep) if readahead_sweep else [parse_size(readahead)]
    # the endpoint is the one named here: $HEPSTREAM_SITE_CACHE, which sends a job's reads
    # through a cache, must not send the planning reads somewhere the readers do not go
    streams = [
        StreamConfig(readahead=size, cache=parse_size(cache), site_cache=None) for size in sizes
    ]
    # the bench (its readers, the runner's reader, rich's table) loads only when it runs
    from hepstream.cli import storage

    if site_cache is not None:
        storage.run_cache(
            url,
            bench,
            streams[0],
            site_cache,
            cache_dir,
            tree=tree,
            branches=branches,
            plugin=plugin,
            chunk=chunk,
            as_json=as_json,
        )
        return

    storage.run(
        url,
        bench,
        streams,
        tree=tree,
        branches=branches,
        plugin=plugin,
        chunk=chunk,
        xrdcp=xrdcp,
        plot=plot,
        as_json=as_json,
    )


def _bench_config(
    url: str,
    xrdcp: bool,
    max_jobs: int | None,
    readers_per_process: int,
    duration: float,
    max_requests: int,
) -> BenchConfig:
    """The run's load bounds, from the options; ``--xrdcp`` needs a root:// URL."""
    if max_jobs is not None and max_jobs < 1:
        raise ConfigError(f"--max-jobs {max_jobs} must be >= 1")
    if xrdcp and not is_remote(url):
        raise ConfigError(f"--xrdcp compares with a root:// URL, not {url}; drop --xrdcp")
    return BenchConfig(
        duration=duration,
        max_requests=max_requests,
        max_jobs=max_jobs or 0,
        readers_per_process=readers_per_process,
    )


def _refuse_with_cache(xrdcp: bool, readahead_sweep: str | None, plot: Path | None) -> None:
    """A cache run is two passes of one setting: nothing to sweep, compare or plot."""
    for given, name in (
        (xrdcp, "--xrdcp"),
        (readahead_sweep, "--readahead-sweep"),
        (plot, "--plot"),
    ):
        if given:
            raise ConfigError(
                f"{name} does not go with --site-cache (a cold and a warm pass of one setting); "
                f"run it without --site-cache"
            )


def parse_size_list(text: str) -> list[int]:
    """Byte sizes from ``0,256k,1M,4M`` (each as :func:`hepstream.io.parse_size` reads it)."""
    sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise ConfigError(f"--readahead-sweep {text!r} lists no size; e.g. 0,256k,1M,4M")
    return sizes


#: A source checkout: the package's parent directory holds bench/ (not installed with it).
_CHECKOUT = Path(__file__).resolve().parents[2]


@app.command("run")
def run_cmd(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small samples, 1-2 rounds (the CI smoke test).")
    ] = False,
    keyword: Annotated[
        str | None, typer.Option("-k", help="Only benchmarks matching this pytest -k expression.")
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option(
            "--results-dir", help="Where latest.json and latest.md go (default: bench/results)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Cache of generated samples (default: bench/.data)."),
    ] = None,
) -> None:
    """Run the performance suites of a source checkout ('python -m bench' in it).

    Needs the repository's bench/ directory, pytest-benchmark and Debian's xrootd. Writes
    bench/results/latest.json and latest.md and prints the targets.

    \b
    Example:
        hepstream bench run --quick
        hepstream bench run -k layouts --results-dir /tmp/bench
        python -m bench                  # the same, full run
    """
    if not (_CHECKOUT / "bench" / "runner.py").is_file():
        raise ConfigError(
            "hepstream bench run needs a source checkout (bench/ is not installed with the "
            "package): run `make bench` or `python -m bench` in the repository"
        )
    cmd = [sys.executable, "-m", "bench"]
    cmd += ["--quick"] if quick else []
    cmd += ["-k", keyword] if keyword else []
    cmd += ["--results-dir", str(results_dir)] if results_dir else []
    cmd += ["--data-dir", str(data_dir)] if data_dir else []
    code = subprocess.call(cmd, cwd=_CHECKOUT)
    if code:
        raise typer.Exit(code)
