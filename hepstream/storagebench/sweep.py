"""``hepstream bench storage``: how fast a storage endpoint feeds N concurrent analysis jobs.

The runner's own reader opens the file and plans its reads (the same functions, the same
spans, the same request shaping); many asynchronous readers per process then replay those
requests, read-only and bounded in time and requests per level, so site admins can run it
against production storage, and compare with as many concurrent ``xrdcp`` copies.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hepstream.errors import ConfigError, InputError, OutputError

if TYPE_CHECKING:
    from hepstream.io import StreamConfig
    from hepstream.io.spans import FilePlan

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
    #: Hard ceiling on --max-jobs: more readers than this is a load test, not a benchmark.
    jobs_ceiling: int = 1024
    #: Asynchronous readers one process drives: each process has one XRootD client (its
    #: own connection and callback threads); 128 keeps 512 readers to 4 processes.
    readers_per_process: int = 128
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
        if self.readers_per_process < 1:
            raise ConfigError(f"--readers-per-process {self.readers_per_process} must be >= 1")

    @property
    def jobs(self) -> int:
        """The highest concurrency level actually used."""
        return self.max_jobs or 2 * (os.cpu_count() or 1)


# -- read pattern (pure) -----------------------------------------------------------------------


#: One backend request: the byte segments of one read (one segment) or vector read, in order.
Segments = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Step:
    """What a job asks the storage for at once: one metadata read, or one chunk's requests."""

    requests: tuple[Segments, ...]
    events: int = 0  # events this step completes (chunks only)
    metadata: bool = False  # True: a read made while opening the file, before the plan

    @property
    def ranges(self) -> Segments:
        return tuple(seg for request in self.requests for seg in request)

    @property
    def nbytes(self) -> int:
        return sum(stop - start for start, stop in self.ranges)


@dataclass(frozen=True)
class ReadPattern:
    """A job's requests of one file, in order: its metadata reads, then chunk after chunk."""

    url: str
    tree: str
    branches: tuple[str, ...]
    steps: tuple[Step, ...]
    #: The runner's planned spans ``(start, stop)`` of the file, in admission order.
    spans: tuple[tuple[int, int], ...] = ()
    #: Of the job's metadata reads, the fraction its read-ahead cache served.
    metadata_hit_fraction: float = 0.0

    @property
    def events(self) -> int:
        return sum(step.events for step in self.steps)

    @property
    def chunks(self) -> int:
        return sum(not step.metadata for step in self.steps)

    @property
    def nbytes(self) -> int:
        return sum(step.nbytes for step in self.steps)

    @property
    def requests(self) -> tuple[tuple[Segments, int], ...]:
        """Every request in order with the events it completes: a chunk's last request
        completes its events, and those of the chunks after it that need no new bytes."""
        out: list[list] = []
        for step in self.steps:
            out.extend([request, 0] for request in step.requests)
            if out:
                out[-1][1] += step.events
        return tuple((request, events) for request, events in out)


def chunk_steps(
    plan: FilePlan, chunks: Sequence[tuple[int, int]], max_request_bytes: int
) -> list[Step]:
    """One step per chunk of the runner's plan: the spans that chunk reads first, shaped into
    requests as the prefetcher shapes them (:func:`hepstream.io.prefetch.span_requests`)."""
    from hepstream.io.prefetch import span_requests

    firsts: list[list[tuple[int, int]]] = [[] for _ in chunks]
    for span in plan.spans:
        firsts[span.first_chunk].append((span.start, span.stop))
    return [
        Step(
            tuple(r.segments for r in span_requests(wanted, max_request_bytes)),
            events=stop - start,
        )
        for wanted, (start, stop) in zip(firsts, chunks, strict=True)
        if wanted or stop > start
    ]


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


def stagger(steps: int, job: int, jobs: int) -> int:
    """Step index reader ``job`` of ``jobs`` starts at, so readers do not move in lockstep."""
    return (job * steps) // jobs if jobs else 0


def split_jobs(jobs: int, per_process: int) -> list[list[int]]:
    """Reader numbers ``0..jobs-1`` dealt to as few processes as hold ``per_process`` each,
    evenly (``[[0, 2], [1, 3]]`` for 4 readers, 2 per process)."""
    if per_process < 1:
        raise ConfigError(f"--readers-per-process {per_process} must be >= 1")
    processes = max(1, -(-jobs // per_process))
    return [list(range(p, jobs, processes)) for p in range(processes)]


# -- results (pure) ----------------------------------------------------------------------------


@dataclass
class JobResult:
    """What one reader did during one level."""

    job: int
    elapsed: float = 0.0  # s from the common start to its last completed request
    bytes_read: int = 0  # bytes the storage delivered
    payload_bytes: int = 0  # bytes the job's requests asked for
    requests: int = 0  # backend requests (one vector read counts once)
    steps: int = 0
    events: int = 0
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
    failed: int = 0
    processes: int = 1
    #: ``xrdcp`` of the same file by as many concurrent copies, when compared.
    xrdcp_mb_s: float | None = None
    xrdcp_failed: int | None = None

    @property
    def mean_job_mb_s(self) -> float:
        return sum(self.per_job_mb_s) / len(self.per_job_mb_s) if self.per_job_mb_s else 0.0

    @property
    def vs_xrdcp(self) -> float | None:
        if not self.xrdcp_mb_s:
            return None
        return self.aggregate_mb_s / self.xrdcp_mb_s

    def asdict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_job_mb_s"] = list(self.per_job_mb_s)
        out["mean_job_mb_s"] = self.mean_job_mb_s
        out["vs_xrdcp"] = self.vs_xrdcp
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


def summarise(
    results: Sequence[JobResult],
    readahead: int,
    cache: int,
    hit_fraction: float = 0.0,
    processes: int = 1,
) -> LevelResult:
    """Aggregate the readers of one level: the wall time is the slowest reader's."""
    wall = max((r.elapsed for r in results), default=0.0)
    total = sum(r.bytes_read for r in results)
    latencies = [lat for r in results for lat in r.latencies]
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
        cache_hit_fraction=hit_fraction,
        failed=sum(r.error is not None for r in results),
        processes=processes,
    )


# -- read-pattern extraction (I/O): the runner's own reader opens and plans ------------------


def read_pattern(
    url: str,
    tree: str | None = None,
    branches: Sequence[str] | None = None,
    stream: StreamConfig | None = None,
    chunk_bytes: int | None = None,
) -> ReadPattern:
    """The requests a ``hepstream run`` job makes of ``url``: open it read-only with the
    reader's own functions (:func:`hepstream.job.reader.open_store`, ``file_chunks``,
    ``chunk_wants``, :func:`hepstream.io.spans.plan_reads`), recording the metadata
    requests the open makes, then each chunk's planned spans shaped as the prefetcher does.

    ``branches`` may hold names or glob patterns; default: every branch with data.
    """
    from hepstream.io import StreamConfig, StreamingSource
    from hepstream.io.budget import Budget
    from hepstream.io.prefetch import Prefetcher
    from hepstream.io.spans import plan_reads
    from hepstream.job.reader import chunk_wants, file_chunks, open_store
    from hepstream.jobspec import JobSpec

    stream = stream or StreamConfig()
    chunk_bytes = chunk_bytes or JobSpec.chunk_bytes
    name, names = _discover(url, tree, branches, stream)
    metadata: list[Segments] = []

    class _Recording(StreamingSource):
        def _fetch(self, segments, kind=""):
            if self.reads is None:  # before the plan: the job's metadata reads
                metadata.append(tuple((int(a), int(b)) for a, b in segments))
            return super()._fetch(segments, kind)

    prefetcher = Prefetcher(Budget(stream.cache))
    file, store = open_store(url, name, names, stream, prefetcher=prefetcher, handler=_Recording)
    try:
        chunks = file_chunks(store, names, chunk_bytes)
        plan = plan_reads(chunk_wants(store, chunks, names, []))
        source = file.file.source
        hits, misses = source.cache.hits, source.cache.misses
    finally:
        file.close()
    steps = chunk_steps(plan, chunks, stream.max_request_bytes)
    if not plan.spans:
        raise InputError(
            f"{store.kind} {name} in {url} has no data to read; pick a file with entries"
        )
    return ReadPattern(
        url, name, tuple(names),
        (*(Step((segs,), metadata=True) for segs in metadata), *steps),
        spans=tuple((span.start, span.stop) for span in plan.spans),
        metadata_hit_fraction=hits / (hits + misses) if hits + misses else 0.0,
    )  # fmt: skip


def _discover(
    url: str, tree: str | None, branches: Sequence[str] | None, stream: StreamConfig
) -> tuple[str, list[str]]:
    """The tree's name and the branches to read (globs expanded), from one read-only open."""
    import fnmatch

    import uproot

    from hepstream.io import StreamingSource
    from hepstream.root.header import open_checked

    opener = partial(uproot.open, url, handler=StreamingSource, hepstream_config=stream)
    try:
        file = open_checked(url, opener)
    except FileNotFoundError:
        raise InputError(f"input file not found: {url}; check the path") from None
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {url}: {str(err).splitlines()[0]}") from None
    with file:
        obj = _find_tree(file, url, tree)
        if hasattr(obj, "itervalues"):
            with_data = [b.name for b in obj.itervalues(recursive=True) if b.num_baskets > 0]
        else:  # an RNTuple: its top-level fields
            with_data = list(obj.keys())
        chosen = with_data
        if branches:
            chosen = [b for b in with_data if any(fnmatch.fnmatchcase(b, p) for p in branches)]
            if not chosen:
                raise ConfigError(
                    f"--branches {','.join(branches)} matches no branch with data in {url}; "
                    f"e.g. {', '.join(with_data[:5])}"
                )
        name = obj.object_path.lstrip("/").split(";")[0]
    return name, chosen


def _find_tree(file, url: str, tree: str | None):
    if tree is not None:
        try:
            obj = file[tree]
        except Exception:
            raise ConfigError(f"no object {tree!r} in {url}; see its keys with uproot") from None
        if not hasattr(obj, "num_entries"):
            raise ConfigError(f"{tree!r} in {url} is a {type(obj).__name__}, not a TTree")
        return obj
    kinds = ("TTree", "TNtuple", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")
    names = [k for k, cls in file.classnames().items() if cls in kinds]
    if not names:
        raise InputError(f"{url} holds no TTree; pass a file with event data")
    return file[names[0]]


# -- reader processes (edge) -------------------------------------------------------------------


def run_level(
    pattern: ReadPattern, stream: StreamConfig, bench: BenchConfig, jobs: int
) -> LevelResult:
    """Run ``jobs`` readers together once, ``bench.readers_per_process`` asynchronous
    readers per process; every one starts at the same instant."""
    from hepstream.storagebench.readers import run_readers

    groups = split_jobs(jobs, bench.readers_per_process)
    results = run_readers(pattern, stream, bench, jobs, groups)
    level = summarise(
        results, stream.readahead, stream.cache, pattern.metadata_hit_fraction, len(groups)
    )
    failed = [r for r in results if r.error is not None]
    if failed:
        raise InputError(
            f"{len(failed)} of {jobs} readers failed on {pattern.url}; "
            f"reader {failed[0].job}: {failed[0].error}"
        )
    return level


def run_sweep(
    patterns: Sequence[tuple[ReadPattern, StreamConfig]],
    levels: Sequence[int],
    bench: BenchConfig,
    on_level: Callable[[LevelResult], None] | None = None,
    xrdcp: bool = False,
) -> list[LevelResult]:
    """Every read-ahead setting at every concurrency level, one level at a time; with
    ``xrdcp``, each level is followed by as many concurrent ``xrdcp`` copies of the file."""
    from dataclasses import replace

    from hepstream.storagebench.readers import xrdcp_level

    copies: dict[int, tuple[float, int]] = {}
    out = []
    for pattern, stream in patterns:
        for jobs in levels:
            level = run_level(pattern, stream, bench, jobs)
            if xrdcp:
                if jobs not in copies:
                    copies[jobs] = xrdcp_level(pattern.url, jobs, bench)
                rate, failed = copies[jobs]
                level = replace(level, xrdcp_mb_s=rate, xrdcp_failed=failed)
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


def results_table(levels: Sequence[LevelResult], pattern: ReadPattern):
    from rich.table import Table

    table = Table(title=f"{pattern.url} ({pattern.tree}, {len(pattern.branches)} branches)")
    compared = any(lv.xrdcp_mb_s is not None for lv in levels)
    headers = [
        "readahead", "jobs", "MB/s", "MB/s/job", "events/s", "p50 ms", "p99 ms", "req",
        "meta hits", "failed",
    ]  # fmt: skip
    if compared:
        headers += ["xrdcp MB/s", "vs xrdcp"]
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for lv in levels:
        row = [
            _size(lv.readahead),
            str(lv.jobs),
            f"{lv.aggregate_mb_s:.1f}",
            f"{lv.mean_job_mb_s:.1f}",
            f"{lv.events_per_s:,.0f}",
            f"{lv.latency_p50_ms:.1f}",
            f"{lv.latency_p99_ms:.1f}",
            str(lv.requests),
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


def output_console():
    """A rich console for stdout that never cuts a table: full width when piped or
    redirected (rich would otherwise assume 80 columns and truncate cells with ``…``)."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=10_000, soft_wrap=True)


def report_dict(pattern: ReadPattern, bench: BenchConfig, levels: Sequence[LevelResult]) -> dict:
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
