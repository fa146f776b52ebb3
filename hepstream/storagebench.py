"""``hepstream bench storage``: how fast a storage endpoint feeds N concurrent analysis jobs.

Reader processes replay a real job's read pattern (the file's basket layout, cluster by cluster)
through hepstream's streaming source, read-only and bounded in time and requests per level, so
site admins can run it against production storage.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hepstream.errors import ConfigError, InputError, OutputError

if TYPE_CHECKING:
    from hepstream.io import StreamConfig

MB = 1e6  # reported rates are decimal MB/s, like network links and the paper's plots


@dataclass(frozen=True)
class BenchConfig:
    """Load bounds of one benchmark run: each is a promise to the storage's operators."""

    #: Seconds each concurrency level runs: long enough for a steady rate, short enough
    #: to be harmless on shared production storage.
    duration: float = 10.0
    #: Backend requests one reader may issue per level, whatever the storage's speed.
    max_requests: int = 10_000
    #: Highest concurrency level; 0 means 2 x this machine's cores (a loaded worker node).
    max_jobs: int = 0
    #: Hard ceiling on --max-jobs: more processes than this is a load test, not a benchmark.
    jobs_ceiling: int = 256
    #: Seconds for reader processes to start, import and open the file.
    startup_timeout: float = 120.0
    #: Seconds past the deadline before a reader stuck in a request is terminated.
    grace: float = 30.0

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ConfigError(f"--duration {self.duration} must be > 0 seconds")
        if self.max_requests < 1:
            raise ConfigError(f"--max-requests {self.max_requests} must be >= 1")
        if not 0 <= self.max_jobs <= self.jobs_ceiling:
            raise ConfigError(
                f"--max-jobs {self.max_jobs} must be between 1 and {self.jobs_ceiling}"
            )

    @property
    def jobs(self) -> int:
        """The highest concurrency level actually used."""
        return self.max_jobs or 2 * (os.cpu_count() or 1)


# -- read pattern (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class BranchBaskets:
    """Where one branch's baskets sit in the file: seeks, sizes, first entry of each."""

    name: str
    seeks: tuple[int, ...]
    sizes: tuple[int, ...]
    entry_starts: tuple[int, ...]


@dataclass(frozen=True)
class Step:
    """One request a job makes: a single read (metadata) or one cluster's vector read."""

    ranges: tuple[tuple[int, int], ...]
    events: int = 0  # events this step completes (clusters only)
    vector: bool = True  # False: a single small read, where read-ahead applies

    @property
    def nbytes(self) -> int:
        return sum(stop - start for start, stop in self.ranges)


@dataclass(frozen=True)
class ReadPattern:
    """A job's reads of one file, in order: metadata reads, then one step per cluster."""

    url: str
    tree: str
    branches: tuple[str, ...]
    steps: tuple[Step, ...]

    @property
    def events(self) -> int:
        return sum(step.events for step in self.steps)

    @property
    def clusters(self) -> int:
        return sum(step.vector for step in self.steps)

    @property
    def nbytes(self) -> int:
        return sum(step.nbytes for step in self.steps)


def plan_clusters(
    baskets: Sequence[BranchBaskets], cluster_starts: Sequence[int], num_entries: int
) -> list[Step]:
    """One vector-read step per cluster, holding every chosen basket that starts in it.

    A job iterating cluster by cluster asks for all its branches' baskets of that cluster at
    once; a basket straddling clusters is fetched with the cluster where it starts.
    """
    bounds = sorted({*(s for s in cluster_starts if 0 <= s < num_entries), 0})
    bounds.append(num_entries)
    steps: list[Step] = []
    for lo, hi in itertools.pairwise(bounds):
        ranges = [
            (seek, seek + size)
            for branch in baskets
            for seek, size, first in zip(
                branch.seeks, branch.sizes, branch.entry_starts, strict=True
            )
            if lo <= first < hi and size > 0 and seek > 0
        ]
        if ranges:
            steps.append(Step(tuple(sorted(ranges)), events=hi - lo))
    return steps


def job_levels(max_jobs: int) -> list[int]:
    """Concurrency levels 1, 2, 4, ... up to and always including ``max_jobs``."""
    if max_jobs < 1:
        raise ConfigError(f"--max-jobs {max_jobs} must be >= 1")
    levels, n = [], 1
    while n < max_jobs:
        levels.append(n)
        n *= 2
    levels.append(max_jobs)
    return levels


def parse_size_list(text: str) -> list[int]:
    """Byte sizes from ``0,256k,1M,4M`` (each as :func:`hepstream.io.parse_size` reads it)."""
    from hepstream.io import parse_size

    sizes = [parse_size(part) for part in text.split(",") if part.strip()]
    if not sizes:
        raise ConfigError(f"--readahead-sweep {text!r} lists no size; e.g. 0,256k,1M,4M")
    return sizes


def step_request_bound(step: Step, config: StreamConfig) -> int:
    """Most backend requests ``step`` can cause (cache hits only lower it)."""
    from hepstream.io import plan_requests

    if not step.vector:
        return 1
    return len(
        plan_requests(
            step.ranges, gap=config.coalesce_gap, max_request_bytes=config.max_request_bytes
        )
    )


def stagger(steps: int, job: int, jobs: int) -> int:
    """Step index reader ``job`` of ``jobs`` starts at, so readers do not move in lockstep."""
    return (job * steps) // jobs if jobs else 0


# -- results (pure) ----------------------------------------------------------------------------


@dataclass
class JobResult:
    """What one reader process did during one level."""

    job: int
    elapsed: float = 0.0  # s from the common start to its last completed step
    bytes_read: int = 0  # bytes the storage delivered (read-ahead included)
    payload_bytes: int = 0  # bytes of baskets and metadata the job asked for
    requests: int = 0  # backend requests (one vector read counts once)
    steps: int = 0
    events: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    latencies: list[float] = field(default_factory=list, repr=False)
    error: str | None = None


@dataclass(frozen=True)
class LevelResult:
    """Aggregate of one concurrency level at one read-ahead setting."""

    jobs: int
    readahead: int
    cache: int
    wall_s: float
    bytes_read: int
    payload_bytes: int
    requests: int
    max_job_requests: int
    events: int
    aggregate_mb_s: float
    per_job_mb_s: tuple[float, ...]
    events_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    cache_hit_fraction: float

    @property
    def mean_job_mb_s(self) -> float:
        return sum(self.per_job_mb_s) / len(self.per_job_mb_s) if self.per_job_mb_s else 0.0

    def asdict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_job_mb_s"] = list(self.per_job_mb_s)
        out["mean_job_mb_s"] = self.mean_job_mb_s
        return out


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(results: Sequence[JobResult], readahead: int, cache: int) -> LevelResult:
    """Aggregate the readers of one level: the wall time is the slowest reader's."""
    wall = max((r.elapsed for r in results), default=0.0)
    total = sum(r.bytes_read for r in results)
    latencies = [lat for r in results for lat in r.latencies]
    hits = sum(r.cache_hits for r in results)
    lookups = hits + sum(r.cache_misses for r in results)
    return LevelResult(
        jobs=len(results),
        readahead=readahead,
        cache=cache,
        wall_s=wall,
        bytes_read=total,
        payload_bytes=sum(r.payload_bytes for r in results),
        requests=sum(r.requests for r in results),
        max_job_requests=max((r.requests for r in results), default=0),
        events=sum(r.events for r in results),
        aggregate_mb_s=total / MB / wall if wall > 0 else 0.0,
        per_job_mb_s=tuple(
            r.bytes_read / MB / r.elapsed if r.elapsed > 0 else 0.0 for r in results
        ),
        events_per_s=sum(r.events for r in results) / wall if wall > 0 else 0.0,
        latency_p50_ms=percentile(latencies, 50) * 1e3,
        latency_p99_ms=percentile(latencies, 99) * 1e3,
        cache_hit_fraction=hits / lookups if lookups else 0.0,
    )


# -- read-pattern extraction (I/O) ----------------------------------------------------------


def read_pattern(
    url: str, tree: str | None = None, branches: Sequence[str] | None = None
) -> ReadPattern:
    """Open ``url`` read-only and derive a job's read pattern from its TTree basket layout.

    ``branches`` may hold names or glob patterns; default: every branch that has baskets.
    """
    import fnmatch

    import uproot

    from hepstream.io import StreamConfig, StreamingSource

    opens: list[tuple[int, int]] = []

    class _Recording(StreamingSource):
        def chunk(self, start: int, stop: int):
            opens.append((start, stop))
            return super().chunk(start, stop)

    with uproot.open(url, handler=_Recording, hepstream_config=StreamConfig()) as file:
        ttree = _find_tree(file, url, tree)
        all_branches = [b for b in ttree.itervalues(recursive=True) if b.num_baskets > 0]
        chosen = all_branches
        if branches:
            chosen = [
                b for b in all_branches if any(fnmatch.fnmatchcase(b.name, p) for p in branches)
            ]
            if not chosen:
                raise ConfigError(
                    f"--branches {','.join(branches)} matches no branch with data in {url}; "
                    f"e.g. {', '.join(b.name for b in all_branches[:5])}"
                )
        layout = [_baskets(b) for b in chosen]
        clusters = plan_clusters(layout, ttree.common_entry_offsets(), ttree.num_entries)
        name = ttree.object_path.lstrip("/").split(";")[0]
    if not clusters:
        raise InputError(f"tree {name} in {url} has no baskets to read; pick a file with entries")
    meta = [Step(((start, stop),), vector=False) for start, stop in opens]
    return ReadPattern(url, name, tuple(b.name for b in chosen), (*meta, *clusters))


def _find_tree(file, url: str, tree: str | None):
    if tree is not None:
        try:
            obj = file[tree]
        except Exception:
            raise ConfigError(f"no object {tree!r} in {url}; see its keys with uproot") from None
        if not hasattr(obj, "num_entries"):
            raise ConfigError(f"{tree!r} in {url} is a {type(obj).__name__}, not a TTree")
        return obj
    names = [k for k, cls in file.classnames().items() if cls in ("TTree", "TNtuple")]
    if not names:
        raise InputError(f"{url} holds no TTree; pass a file with event data")
    return file[names[0]]


def _baskets(branch) -> BranchBaskets:
    n = branch.num_baskets
    return BranchBaskets(
        name=branch.name,
        seeks=tuple(int(s) for s in branch.member("fBasketSeek")[:n]),
        sizes=tuple(int(s) for s in branch.member("fBasketBytes")[:n]),
        entry_starts=tuple(int(e) for e in branch.entry_offsets[:n]),
    )


# -- reader processes (edge) -------------------------------------------------------------------


def _replay(
    pattern: ReadPattern, stream: StreamConfig, bench: BenchConfig, job: int, jobs: int, go, report
) -> None:
    """Child process: open read-only, wait for the common start, replay until a bound hits."""
    import queue

    from hepstream.io import open_source

    result = JobResult(job=job)
    try:
        src = open_source(pattern.url, stream)
    except Exception as err:
        report.put(("error", job, str(err)))
        return
    try:
        bounds = [step_request_bound(step, stream) for step in pattern.steps]
        report.put(("ready", job, None))
        if not go.wait(bench.startup_timeout):
            return
        began = time.perf_counter()
        deadline = began + bench.duration
        index = stagger(len(pattern.steps), job, jobs)
        issued = 0
        while time.perf_counter() < deadline:
            if issued + bounds[index] > bench.max_requests:
                break
            if index == 0:
                src.cache.clear()  # a new pass is a new file for the job: nothing cached yet
            step = pattern.steps[index]
            before = src.stats.requests
            if step.vector:
                for chunk in src.chunks(list(step.ranges), notifications=queue.Queue()):
                    chunk.wait()
            else:
                src.chunk(*step.ranges[0])
            issued += src.stats.requests - before
            result.steps += 1
            result.events += step.events
            result.payload_bytes += step.nbytes
            result.elapsed = time.perf_counter() - began
            index = (index + 1) % len(pattern.steps)
        stats = src.stats
        result.bytes_read = stats.bytes_read
        result.requests = stats.requests
        result.cache_hits = stats.cache_hits
        result.cache_misses = stats.cache_misses
        result.latencies = list(stats.latencies)
    except Exception as err:
        result.error = f"{type(err).__name__}: {err}"
    finally:
        src.close()
    report.put(("result", job, result))


def run_level(
    pattern: ReadPattern, stream: StreamConfig, bench: BenchConfig, jobs: int
) -> LevelResult:
    """Run ``jobs`` reader processes together once; every one starts at the same instant."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # no fork: the XRootD client's threads do not survive it
    report = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(
            target=_replay,
            args=(pattern, stream, bench, job, jobs, go, report),
            name=f"hepstream-bench-{job}",
            daemon=True,
        )
        for job in range(jobs)
    ]
    results: dict[int, JobResult] = {}
    try:
        for proc in procs:
            proc.start()
        ready = 0
        deadline = time.monotonic() + bench.startup_timeout
        while ready < jobs:
            kind, job, payload = _next(report, deadline, "start")
            if kind == "error":
                raise InputError(f"reader {job} cannot open {pattern.url}: {payload}")
            ready += kind == "ready"
        go.set()
        deadline = time.monotonic() + bench.duration + bench.grace + stream.timeout
        while len(results) < jobs:
            kind, job, payload = _next(report, deadline, "finish")
            if kind == "result":
                if payload.error:
                    raise InputError(f"reader {job} failed on {pattern.url}: {payload.error}")
                results[job] = payload
    finally:
        for proc in (p for p in procs if p.pid is not None):  # the started ones
            if len(results) < jobs and proc.is_alive():
                proc.terminate()  # failed level: stop loading the storage at once
            proc.join(bench.grace)
            if proc.is_alive():
                proc.kill()
                proc.join()
            if proc.exitcode is not None:
                proc.close()
        report.close()
        report.join_thread()
    return summarise([results[j] for j in sorted(results)], stream.readahead, stream.cache)


def _next(report, deadline: float, what: str):
    import queue

    try:
        return report.get(timeout=max(0.0, deadline - time.monotonic()))
    except queue.Empty:
        raise InputError(
            f"benchmark readers did not {what} in time; the storage may be overloaded or down"
        ) from None


def run_sweep(
    pattern: ReadPattern,
    streams: Sequence[StreamConfig],
    levels: Sequence[int],
    bench: BenchConfig,
    on_level: Callable[[LevelResult], None] | None = None,
) -> list[LevelResult]:
    """Every read-ahead setting at every concurrency level, one level at a time."""
    out = []
    for stream in streams:
        for jobs in levels:
            level = run_level(pattern, stream, bench, jobs)
            out.append(level)
            if on_level is not None:
                on_level(level)
    return out


# -- output ------------------------------------------------------------------------------------


def write_plot(levels: Sequence[LevelResult], path: Path, title: str) -> Path:
    """Aggregate MB/s against concurrent jobs, one line per read-ahead (PNG, atomic write)."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--plot needs matplotlib: pip install 'hepstream[plot]'") from None
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

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
    for unit, scale in (("M", 1 << 20), ("k", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return str(n)


def _table(levels: Sequence[LevelResult], pattern: ReadPattern):
    from rich.table import Table

    table = Table(title=f"{pattern.url} ({pattern.tree}, {len(pattern.branches)} branches)")
    headers = (
        "readahead",
        "jobs",
        "MB/s",
        "MB/s/job",
        "events/s",
        "p50 ms",
        "p99 ms",
        "req",
        "hits",
    )
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for lv in levels:
        table.add_row(
            _size(lv.readahead),
            str(lv.jobs),
            f"{lv.aggregate_mb_s:.1f}",
            f"{lv.mean_job_mb_s:.1f}",
            f"{lv.events_per_s:,.0f}",
            f"{lv.latency_p50_ms:.1f}",
            f"{lv.latency_p99_ms:.1f}",
            str(lv.requests),
            f"{lv.cache_hit_fraction:.0%}",
        )
    return table


def report_dict(pattern: ReadPattern, bench: BenchConfig, levels: Sequence[LevelResult]) -> dict:
    """The ``--json`` document."""
    return {
        "url": pattern.url,
        "tree": pattern.tree,
        "branches": list(pattern.branches),
        "clusters": pattern.clusters,
        "events_per_pass": pattern.events,
        "bytes_per_pass": pattern.nbytes,
        "duration_s": bench.duration,
        "max_requests": bench.max_requests,
        "levels": [lv.asdict() for lv in levels],
    }


# -- command -----------------------------------------------------------------------------------


def storage_cmd(
    url: Annotated[str, typer.Argument(help="root://host:port//path/file.root or a local path.")],
    tree: Annotated[str | None, typer.Option(help="TTree to replay; default: the first.")] = None,
    branches: Annotated[
        str | None,
        typer.Option(help="Comma-separated branch names or globs; default: all branches."),
    ] = None,
    max_jobs: Annotated[
        int | None,
        typer.Option(help="Highest number of concurrent readers; default 2 x cores."),
    ] = None,
    readahead: Annotated[str, typer.Option(help="Read-ahead window, e.g. 1M.")] = "1M",
    cache: Annotated[str, typer.Option(help="Per-reader cache bound, e.g. 10M.")] = "10M",
    readahead_sweep: Annotated[
        str | None,
        typer.Option(help="Repeat for each read-ahead, e.g. 0,256k,1M,4M (overrides --readahead)."),
    ] = None,
    duration: Annotated[
        float, typer.Option(help="Seconds per concurrency level.")
    ] = BenchConfig.duration,
    max_requests: Annotated[
        int, typer.Option(help="Backend requests per reader per level, at most.")
    ] = BenchConfig.max_requests,
    plot: Annotated[
        Path | None, typer.Option(help="Write aggregate MB/s vs jobs as a PNG here.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Measure how a storage endpoint serves 1, 2, 4, ... concurrent analysis jobs.

    Each reader process replays a real job's reads of the file (metadata, then every basket of
    a cluster in one vector read, cluster after cluster) through hepstream's streaming source.
    Read-only; each level stops after --duration seconds or --max-requests per reader.

    \b
    Example:
        hepstream bench storage root://xrootd.example.org//data/tau1n_mc_000.root \\
            --max-jobs 8 --readahead-sweep 0,1M,4M --duration 10 --plot storage.png
    """
    from hepstream.io import StreamConfig, parse_size

    if max_jobs is not None and max_jobs < 1:
        raise ConfigError(f"--max-jobs {max_jobs} must be >= 1")
    bench = BenchConfig(duration=duration, max_requests=max_requests, max_jobs=max_jobs or 0)
    sizes = parse_size_list(readahead_sweep) if readahead_sweep else [parse_size(readahead)]
    streams = [StreamConfig(readahead=size, cache=parse_size(cache)) for size in sizes]
    levels = job_levels(bench.jobs)
    branch_list = [b.strip() for b in branches.split(",") if b.strip()] if branches else None
    pattern = read_pattern(url, tree, branch_list)

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    err.print(
        f"replaying {pattern.clusters} clusters ({pattern.nbytes / MB:.1f} MB, "
        f"{pattern.events:,} events) of {pattern.tree}: levels {levels}, "
        f"{bench.duration:g} s each",
        highlight=False,
    )
    total = len(streams) * len(levels)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
        console=err, transient=True, disable=as_json,
    ) as bar:  # fmt: skip
        task = bar.add_task("levels", total=total)

        def done(level: LevelResult) -> None:
            bar.update(
                task, advance=1, description=f"{level.jobs} jobs: {level.aggregate_mb_s:.0f} MB/s"
            )

        results = run_sweep(pattern, streams, levels, bench, on_level=done)
    if plot is not None:
        write_plot(results, plot, f"{pattern.url.rsplit('/', 1)[-1]} ({pattern.tree})")
    if as_json:
        typer.echo(json.dumps(report_dict(pattern, bench, results), indent=2))
    else:
        Console().print(_table(results, pattern))
        if plot is not None:
            typer.echo(f"plot: {plot}")
