"""The storage bench's records: its load bounds, a job's read pattern, what readers measured.

Pure: no I/O. :mod:`~hepstream.storagebench.pattern` fills a :class:`ReadPattern` from a file,
:mod:`~hepstream.storagebench.readers` replays it into :class:`JobResult` records, and
:func:`summarise` aggregates those into one :class:`LevelResult` per concurrency level.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from hepstream.errors import ConfigError

MB = 1e6  # reported rates are decimal MB/s, like network links and the paper's plots
#: Seconds a pass through a site cache may take unless --duration says otherwise
#: (:mod:`~hepstream.storagebench.cachepass`): a pass must finish, since a cut cold pass
#: would leave the warm pass partly cold; a 2 GB file over a 100 Mbit/s link takes < 200 s.
PASS_TIMEOUT_S = 600.0


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
        requests: list[Segments] = []
        events: list[int] = []
        for step in self.steps:
            requests.extend(step.requests)
            events.extend(0 for _ in step.requests)
            if events:
                events[-1] += step.events
        return tuple(zip(requests, events, strict=True))

    @property
    def step_starts(self) -> list[int]:
        """Index in :attr:`requests` of each step that sends requests: where a reader may
        start its pass through the file (see :func:`stagger`)."""
        starts, at = [], 0
        for step in self.steps:
            if step.requests:
                starts.append(at)
            at += len(step.requests)
        return starts


def stagger(steps: int, job: int, jobs: int) -> int:
    """Step index reader ``job`` of ``jobs`` starts at, so readers do not move in lockstep."""
    return (job * steps) // jobs if jobs else 0


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
