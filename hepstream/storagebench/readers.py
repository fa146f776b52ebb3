"""The storage bench's readers: many asynchronous readers per process, and ``xrdcp`` copies.

A reader replays a :class:`~hepstream.storagebench.model.ReadPattern` request by request,
keeping as many requests in flight as the job's source would (``parallel_requests``, within
its cache bound), cycling through the file until its level's deadline or request bound. Over
XRootD the client's asynchronous API drives every reader of a process from its callback
threads; on a local path a small thread pool stands in for it. A few processes share the
readers, each with its own XRootD client and connection.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from multiprocessing import queues
from multiprocessing.context import SpawnContext, SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any, Protocol

from hepstream.errors import ConfigError, InputError
from hepstream.io import StreamConfig, is_remote
from hepstream.io.urls import split_url
from hepstream.io.xrootd import configure_client, readv_limits, split_readv
from hepstream.storagebench.model import MB, BenchConfig, JobResult, ReadPattern, Segments, stagger

#: Called with an error message (None: success) and the bytes delivered.
Done = Callable[[str | None, int], None]

#: What a reader process puts on its report queue: a kind (``ready``, ``error`` or
#: ``result``), its first reader's number, and the reader count, message or results.
Message = tuple[str, int, Any]


class _Status(Protocol):
    """What the bench reads of an XRootD client status."""

    @property
    def ok(self) -> bool: ...
    @property
    def message(self) -> str: ...


def _why(status: _Status) -> str:
    """One line from an XRootD status."""
    return " ".join(str(status.message).split())


class _File(Protocol):
    """One reader's open file: asynchronous open and requests, each ending in a callback."""

    def open(self, done: Done) -> None: ...
    def request(self, segments: Segments, done: Done) -> None: ...
    def close(self) -> None: ...


class _XRootDFile:
    """One reader's open file, driven by the XRootD client's asynchronous calls."""

    def __init__(self, url: str, timeout: int) -> None:
        # loaded for a root:// URL only: loading the client fixes its XRD_* settings and adds
        # an exit hook (hepstream.io.xrootd loads it the same way)
        from XRootD import client
        from XRootD.client.flags import OpenFlags

        self.url, self.timeout = url, timeout
        self.file = client.File()
        self.read_flag = OpenFlags.READ
        #: the server's readv limits (asked once per process), as the runner's backend obeys
        self.limits = readv_limits(split_url(url)[0], timeout=min(timeout, 10) or 10)

    def open(self, done: Done) -> None:
        def opened(status: _Status, _response: None, _hosts: object) -> None:
            done(None if status.ok else _why(status), 0)

        status = self.file.open(self.url, self.read_flag, timeout=self.timeout, callback=opened)
        if not status.ok:  # refused before it was sent: no callback will come
            done(_why(status), 0)

    def request(self, segments: Segments, done: Done) -> None:
        """One of the job's requests, cut into vector reads within the server's readv limits
        (as the runner's backend does); ``done`` once every piece has arrived."""
        parts = split_readv(tuple(segments), self.limits)
        gather = _Gather(len(parts), done)
        for part in parts:
            arrived = partial(_arrived, gather, len(part) == 1)
            if len(part) == 1:
                start, stop = part[0]
                status = self.file.read(start, stop - start, timeout=self.timeout, callback=arrived)
            else:
                chunks = [(start, stop - start) for start, stop in part]
                status = self.file.vector_read(chunks, timeout=self.timeout, callback=arrived)
            if not status.ok:  # refused before it was sent: no callback will come
                gather.one(_why(status), 0)

    def close(self) -> None:
        if self.file.is_open():
            self.file.close(timeout=self.timeout)


class _Gather:
    """Calls ``done`` once, when all ``parts`` pieces of one request have arrived."""

    def __init__(self, parts: int, done: Done) -> None:
        self.left, self.nbytes, self.done = parts, 0, done
        self.error: str | None = None
        self.lock = threading.Lock()

    def one(self, error: str | None, nbytes: int) -> None:
        with self.lock:
            self.nbytes += nbytes
            self.error = self.error or error
            self.left -= 1
            last = self.left == 0
        if last:
            self.done(self.error, 0 if self.error else self.nbytes)


def _arrived(gather: _Gather, single: bool, status: _Status, response: Any, _hosts: object) -> None:
    """The XRootD client's callback for one piece of a request (``response``: the bytes of a
    read, the chunks of a vector read)."""
    if not status.ok:
        gather.one(_why(status), 0)
    elif single:
        gather.one(None, len(response or b""))
    else:
        gather.one(None, sum(len(c.buffer) for c in response.chunks))


class _LocalFile:
    """One reader's open local file; requests run on the process's small thread pool."""

    def __init__(self, path: str, pool: ThreadPoolExecutor) -> None:
        self.path, self.pool = path.removeprefix("file://"), pool
        self.fd: int | None = None

    def open(self, done: Done) -> None:
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except OSError as err:
            done(f"{err.strerror}", 0)
            return
        done(None, 0)

    def request(self, segments: Segments, done: Done) -> None:
        def read() -> None:
            try:
                assert self.fd is not None
                n = sum(len(os.pread(self.fd, stop - start, start)) for start, stop in segments)
            except OSError as err:
                done(f"{err.strerror}", 0)
                return
            done(None, n)

        self.pool.submit(read)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class _Reader:
    """One replaying job: a window of requests in flight, the next sent as one lands."""

    def __init__(
        self,
        job: int,
        file: _File,
        requests: Sequence[tuple[Segments, int]],
        first: int,
        stream: StreamConfig,
        bench: BenchConfig,
        finished: Callable[[], None],
    ) -> None:
        self.file, self.requests, self.next = file, requests, first
        self.parallel, self.cache = stream.parallel_requests, stream.cache
        self.max_requests = bench.max_requests
        self.result = JobResult(job=job)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.bytes_in_flight = 0
        self.began = 0.0
        self.deadline = 0.0
        self.stopped = False
        self.finished = finished

    def start(self, began: float, deadline: float) -> None:
        self.began, self.deadline = began, deadline
        self._pump()

    def _pump(self) -> None:
        """Send requests while the window, the cache bound, the deadline and the request
        bound allow; report the reader finished once nothing is left in flight."""
        sends = []
        with self.lock:
            while not self.stopped:
                segments, events = self.requests[self.next]
                size = sum(b - a for a, b in segments)
                if self.in_flight >= self.parallel or (
                    self.in_flight and self.bytes_in_flight + size > self.cache
                ):
                    break
                if (
                    self.result.requests >= self.max_requests
                    or time.perf_counter() >= self.deadline
                ):
                    self.stopped = True
                    break
                self.result.requests += 1
                self.in_flight += 1
                self.bytes_in_flight += size
                self.next = (self.next + 1) % len(self.requests)
                sends.append((segments, size, events))
            done = self.stopped and not self.in_flight
        for segments, size, events in sends:
            sent = time.perf_counter()
            self.file.request(segments, partial(self._landed, size=size, events=events, sent=sent))
        if done:
            self.finished()

    def _landed(self, error: str | None, nbytes: int, size: int, events: int, sent: float) -> None:
        now = time.perf_counter()
        with self.lock:
            self.in_flight -= 1
            self.bytes_in_flight -= size
            if error is not None:
                self.result.error = self.result.error or error
                self.stopped = True
            else:
                result = self.result
                result.bytes_read += nbytes
                result.payload_bytes += size
                result.events += events
                result.steps += bool(events)
                result.latencies.append(now - sent)
                result.elapsed = now - self.began
        self._pump()


class _Countdown:
    """Set once ``count`` readers have called :meth:`one`."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.lock = threading.Lock()
        self.done = threading.Event()

    def one(self) -> None:
        with self.lock:
            self.left -= 1
            if not self.left:
                self.done.set()


# -- one reader process ------------------------------------------------------------------------


def _open_all(jobs: list[int], files: list[_File], timeout: float) -> tuple[int, str] | None:
    """Open every reader's file at once and wait for all; the first failure as (reader,
    message), or None when every file opened."""
    opened = threading.Semaphore(0)
    errors: dict[int, str] = {}

    def on_open(job: int) -> Done:
        def done(error: str | None, _n: int) -> None:
            if error is not None:
                errors[job] = error
            opened.release()

        return done

    for job, file in zip(jobs, files, strict=True):
        file.open(on_open(job))
    deadline = time.monotonic() + timeout
    for _ in jobs:
        if not opened.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return jobs[0], "timed out opening the file"
    if errors:
        return next(iter(sorted(errors.items())))
    return None


def _replay(readers: list[_Reader], finished: _Countdown, timeout: float, duration: float) -> None:
    """Start every reader at one instant, for ``duration`` seconds; wait ``timeout`` for all
    to finish, marking failed each reader with a request still in flight then."""
    began = time.perf_counter()
    for reader in readers:
        reader.start(began, began + duration)
    if not finished.done.wait(timeout):
        for reader in readers:
            with reader.lock:
                if reader.in_flight:
                    reader.result.error = reader.result.error or "a request never returned"


def _reader_process(
    pattern: ReadPattern,
    stream: StreamConfig,
    bench: BenchConfig,
    jobs: list[int],
    total: int,
    go: Event,
    report: queues.Queue[Message],
) -> None:
    """Child process: open every reader's file, wait for the common start, replay, report."""
    pool = None
    if is_remote(pattern.url):
        configure_client(stream.connection_retry, stream.connection_window)
    else:
        pool = ThreadPoolExecutor(
            min(32, 4 * stream.parallel_requests), thread_name_prefix="hepstream-bench"
        )
    files: list[_File] = [
        _XRootDFile(pattern.url, stream.timeout) if pool is None else _LocalFile(pattern.url, pool)
        for _ in jobs
    ]
    try:
        failed = _open_all(jobs, files, bench.startup_timeout)
        if failed is not None:
            report.put(("error", *failed))
            return
        requests, starts = pattern.requests, pattern.step_starts
        finished = _Countdown(len(jobs))
        readers = [
            _Reader(
                job,
                file,
                requests,
                starts[stagger(len(starts), job, total)],
                stream,
                bench,
                finished.one,
            )
            for job, file in zip(jobs, files, strict=True)
        ]
        report.put(("ready", jobs[0], len(jobs)))
        if not go.wait(bench.startup_timeout):
            return
        _replay(readers, finished, bench.duration + bench.grace + stream.timeout, bench.duration)
        report.put(("result", jobs[0], [reader.result for reader in readers]))
    finally:
        for file in files:
            try:
                file.close()
            except Exception:
                continue
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# -- the processes of one level ----------------------------------------------------------------


def split_jobs(jobs: int, per_process: int) -> list[list[int]]:
    """Reader numbers ``0..jobs-1`` dealt to as few processes as hold ``per_process`` each,
    evenly (``[[0, 2], [1, 3]]`` for 4 readers, 2 per process)."""
    if per_process < 1:
        raise ConfigError(f"--readers-per-process {per_process} must be >= 1")
    processes = max(1, -(-jobs // per_process))
    return [list(range(p, jobs, processes)) for p in range(processes)]


class _ReaderProcesses:
    """The reader processes of one level, the queue they report on and the event that
    starts them all."""

    def __init__(
        self,
        pattern: ReadPattern,
        stream: StreamConfig,
        bench: BenchConfig,
        jobs: int,
        groups: list[list[int]],
    ) -> None:
        ctx: SpawnContext = mp.get_context("spawn")  # no fork: XRootD's threads do not survive it
        self.report: queues.Queue[Message] = ctx.Queue()
        self.go = ctx.Event()
        self.grace = bench.grace
        self.reported = 0
        self.procs: list[SpawnProcess] = [
            ctx.Process(
                target=_reader_process,
                args=(pattern, stream, bench, group, jobs, self.go, self.report),
                name=f"hepstream-bench-{number}",
                daemon=True,
            )
            for number, group in enumerate(groups)
        ]

    def start(self) -> None:
        for proc in self.procs:
            proc.start()

    def wait_ready(self, url: str, timeout: float) -> None:
        """Wait until every process has opened its readers' files."""
        ready = 0
        deadline = time.monotonic() + timeout
        while ready < len(self.procs):
            kind, job, payload = self._next_message(deadline, "start")
            if kind == "error":
                raise InputError(f"reader {job} cannot open {url}: {payload}")
            ready += kind == "ready"

    def results(self, timeout: float) -> dict[int, JobResult]:
        """Start every reader at once; each reader's result, by reader number."""
        self.go.set()
        results: dict[int, JobResult] = {}
        deadline = time.monotonic() + timeout
        while self.reported < len(self.procs):
            kind, _job, payload = self._next_message(deadline, "finish")
            if kind == "result":
                self.reported += 1
                results.update((r.job, r) for r in payload)
        return results

    def stop(self) -> None:
        """End every started process: at once if the level failed, else as each exits."""
        for proc in (p for p in self.procs if p.pid is not None):  # the started ones
            if self.reported < len(self.procs) and proc.is_alive():
                proc.terminate()  # failed level: stop loading the storage at once
            proc.join(self.grace)
            if proc.is_alive():
                proc.kill()
                proc.join()
            if proc.exitcode is not None:
                proc.close()
        self.report.close()
        self.report.join_thread()

    def _next_message(self, deadline: float, what: str) -> Message:
        while True:
            try:
                return self.report.get(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pass
            dead = [p for p in self.procs if p.exitcode not in (None, 0)]
            if dead:
                raise InputError(
                    f"benchmark reader process {dead[0].name} died (exit {dead[0].exitcode}) "
                    f"before it reported; see its message above"
                )
            if time.monotonic() >= deadline:
                raise InputError(
                    f"benchmark readers did not {what} in time; "
                    f"the storage may be overloaded or down"
                )


def run_readers(
    pattern: ReadPattern,
    stream: StreamConfig,
    bench: BenchConfig,
    jobs: int,
    groups: list[list[int]],
) -> list[JobResult]:
    """Start one process per group of reader numbers; all readers start together; their
    results in reader order."""
    procs = _ReaderProcesses(pattern, stream, bench, jobs, groups)
    try:
        procs.start()
        procs.wait_ready(pattern.url, bench.startup_timeout)
        results = procs.results(bench.duration + 2 * bench.grace + stream.timeout)
    finally:
        procs.stop()
    return [results[j] for j in sorted(results)]


# -- the xrdcp comparison ----------------------------------------------------------------------


def xrdcp_level(url: str, jobs: int, bench: BenchConfig) -> tuple[float, int]:
    """``jobs`` concurrent ``xrdcp`` copies of ``url`` to /dev/null, started together:
    aggregate MB/s (bytes copied by the copies that succeeded / wall time of all) and how
    many failed. Bounded: copies still running after the deadline are killed and failed."""
    binary = shutil.which("xrdcp")
    if binary is None:
        raise ConfigError("--xrdcp needs the xrdcp command: apt-get install xrootd-client")
    size = _remote_size(url)
    split_url(url)  # a clear line for a URL that is not XRootD's
    timeout = bench.startup_timeout + bench.grace + 60.0
    began = time.perf_counter()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(jobs):
            procs.append(
                subprocess.Popen(
                    [binary, "--nopbar", "--force", url, "-"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        failed = _wait_copies(procs, time.monotonic() + timeout)
        wall = time.perf_counter() - began
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    copied = (jobs - failed) * size
    return (copied / MB / wall if wall > 0 else 0.0), failed


def _wait_copies(procs: list[subprocess.Popen[bytes]], deadline: float) -> int:
    """Wait for every copy until ``deadline``, killing the late ones; how many failed."""
    failed = 0
    for proc in procs:
        try:
            code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        failed += code != 0
    return failed


def _remote_size(url: str) -> int:
    from XRootD import client  # a root:// URL only: see _XRootDFile

    server, path = split_url(url)
    status, info = client.FileSystem(server).stat(path, timeout=30)
    if not status.ok:
        raise InputError(f"cannot stat {url}: {_why(status)}")
    return int(info.size)
