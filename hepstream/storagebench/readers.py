"""The storage bench's readers: many asynchronous readers per process, and ``xrdcp`` copies.

A reader replays a :class:`~hepstream.storagebench.sweep.ReadPattern` request by request, keeping
as many requests in flight as the job's source would (``parallel_requests``, within its cache
bound), cycling through the file until its level's deadline or request bound. Over XRootD the
client's asynchronous API drives every reader of a process from its callback threads; on a
local path a small thread pool stands in for it. A few processes share the readers, each
with its own XRootD client and connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Any

from hepstream.errors import ConfigError, InputError

if TYPE_CHECKING:
    from hepstream.io import StreamConfig
    from hepstream.storagebench.sweep import BenchConfig, JobResult, ReadPattern, Segments

#: Called with an error message (None: success) and the bytes delivered.
Done = Callable[[str | None, int], None]


class _XRootDFile:
    """One reader's open file, driven by the XRootD client's asynchronous calls."""

    def __init__(self, url: str, timeout: int) -> None:
        from XRootD import client

        from hepstream.io.urls import split_url
        from hepstream.io.xrootd import readv_limits

        self.url, self.timeout = url, timeout
        self.file = client.File()
        #: the server's readv limits (asked once per process), as the runner's backend obeys
        self.limits = readv_limits(split_url(url)[0], timeout=min(timeout, 10) or 10)

    def open(self, done: Done) -> None:
        from XRootD.client.flags import OpenFlags

        def opened(status, _response, _hosts) -> None:
            done(None if status.ok else " ".join(str(status.message).split()), 0)

        self._check(self.file.open(self.url, OpenFlags.READ, timeout=self.timeout,
                                   callback=opened), done)  # fmt: skip

    def request(self, segments: Segments, done: Done) -> None:
        """One of the job's requests, cut into vector reads within the server's readv limits
        (as the runner's backend does); ``done`` once every piece has arrived."""
        from hepstream.io.xrootd import split_readv

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
                gather.one(" ".join(str(status.message).split()), 0)

    @staticmethod
    def _check(status, done: Done) -> None:
        if not status.ok:  # refused before it was sent: no callback will come
            done(" ".join(str(status.message).split()), 0)

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


def _arrived(gather: _Gather, single: bool, status, response, _hosts) -> None:
    """The XRootD client's callback for one piece of a request."""
    if not status.ok:
        gather.one(" ".join(str(status.message).split()), 0)
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

    def __init__(self, job: int, file: Any, requests: Sequence[tuple[Segments, int]],
                 first: int, stream: StreamConfig, bench: BenchConfig,
                 finished: Callable[[], None]) -> None:  # fmt: skip
        from hepstream.storagebench.sweep import JobResult

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
            self.file.request(
                segments, lambda error, n, s=size, e=events, t=sent: self._landed(error, n, s, e, t)
            )
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


def _reader_process(pattern: ReadPattern, stream: StreamConfig, bench: BenchConfig,
                    jobs: list[int], total: int, go, report) -> None:  # fmt: skip
    """Child process: open every reader's file, wait for the common start, replay, report."""
    from hepstream.io import is_remote
    from hepstream.storagebench.sweep import stagger

    remote = is_remote(pattern.url)
    pool = None
    if remote:
        from hepstream.io.xrootd import configure_client

        configure_client(stream.connection_retry, stream.connection_window)
    else:
        pool = ThreadPoolExecutor(min(32, 4 * stream.parallel_requests),
                                  thread_name_prefix="hepstream-bench")  # fmt: skip
    requests = pattern.requests
    step_starts, at = [], 0
    for step in pattern.steps:
        if step.requests:  # readers start at steps that send requests
            step_starts.append(at)
        at += len(step.requests)
    files = [
        _XRootDFile(pattern.url, stream.timeout) if pool is None else _LocalFile(pattern.url, pool)
        for _ in jobs
    ]
    opened = threading.Semaphore(0)
    errors: dict[int, str] = {}

    def on_open(job: int) -> Done:
        def done(error: str | None, _n: int) -> None:
            if error is not None:
                errors[job] = error
            opened.release()

        return done

    left = [len(jobs)]
    all_done = threading.Event()
    left_lock = threading.Lock()

    def finished() -> None:
        with left_lock:
            left[0] -= 1
            if not left[0]:
                all_done.set()

    try:
        for job, file in zip(jobs, files, strict=True):
            file.open(on_open(job))
        deadline = time.monotonic() + bench.startup_timeout
        for _ in jobs:
            if not opened.acquire(timeout=max(0.0, deadline - time.monotonic())):
                report.put(("error", jobs[0], "timed out opening the file"))
                return
        if errors:
            job, message = next(iter(sorted(errors.items())))
            report.put(("error", job, message))
            return
        readers = [
            _Reader(job, file, requests, step_starts[stagger(len(step_starts), job, total)],
                    stream, bench, finished)
            for job, file in zip(jobs, files, strict=True)
        ]  # fmt: skip
        report.put(("ready", jobs[0], len(jobs)))
        if not go.wait(bench.startup_timeout):
            return
        began = time.perf_counter()
        for reader in readers:
            reader.start(began, began + bench.duration)
        if not all_done.wait(bench.duration + bench.grace + stream.timeout):
            for reader in readers:
                with reader.lock:
                    if reader.in_flight:
                        reader.result.error = reader.result.error or "a request never returned"
        report.put(("result", jobs[0], [reader.result for reader in readers]))
    finally:
        for file in files:
            try:
                file.close()
            except Exception:
                continue
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def run_readers(pattern: ReadPattern, stream: StreamConfig, bench: BenchConfig, jobs: int,
                groups: list[list[int]]) -> list[JobResult]:  # fmt: skip
    """Start one process per group of reader numbers; all readers start together; their
    results in reader order."""
    import multiprocessing as mp
    import queue

    ctx = mp.get_context("spawn")  # no fork: the XRootD client's threads do not survive it
    report = ctx.Queue()
    go = ctx.Event()
    procs = [
        ctx.Process(
            target=_reader_process,
            args=(pattern, stream, bench, group, jobs, go, report),
            name=f"hepstream-bench-{number}",
            daemon=True,
        )
        for number, group in enumerate(groups)
    ]

    def next_message(deadline: float, what: str):
        while True:
            try:
                return report.get(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                pass
            dead = [p for p in procs if p.exitcode not in (None, 0)]
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

    results: dict[int, JobResult] = {}
    reported = 0
    try:
        for proc in procs:
            proc.start()
        ready = 0
        deadline = time.monotonic() + bench.startup_timeout
        while ready < len(procs):
            kind, job, payload = next_message(deadline, "start")
            if kind == "error":
                raise InputError(f"reader {job} cannot open {pattern.url}: {payload}")
            ready += kind == "ready"
        go.set()
        deadline = time.monotonic() + bench.duration + 2 * bench.grace + stream.timeout
        while reported < len(procs):
            kind, job, payload = next_message(deadline, "finish")
            if kind == "result":
                reported += 1
                results.update((r.job, r) for r in payload)
    finally:
        for proc in (p for p in procs if p.pid is not None):  # the started ones
            if reported < len(procs) and proc.is_alive():
                proc.terminate()  # failed level: stop loading the storage at once
            proc.join(bench.grace)
            if proc.is_alive():
                proc.kill()
                proc.join()
            if proc.exitcode is not None:
                proc.close()
        report.close()
        report.join_thread()
    return [results[j] for j in sorted(results)]


def xrdcp_level(url: str, jobs: int, bench: BenchConfig) -> tuple[float, int]:
    """``jobs`` concurrent ``xrdcp`` copies of ``url`` to /dev/null, started together:
    aggregate MB/s (bytes copied by the copies that succeeded / wall time of all) and how
    many failed. Bounded: copies still running after the deadline are killed and failed."""
    from hepstream.io.xrootd import split_url
    from hepstream.storagebench.sweep import MB

    binary = shutil.which("xrdcp")
    if binary is None:
        raise ConfigError("--xrdcp needs the xrdcp command: apt-get install xrootd-client")
    size = _remote_size(url)
    split_url(url)  # a clear line for a URL that is not XRootD's
    timeout = bench.startup_timeout + bench.grace + 60.0
    began = time.perf_counter()
    procs = []
    try:
        for _ in range(jobs):
            procs.append(subprocess.Popen(
                [binary, "--nopbar", "--force", url, "-"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))  # fmt: skip
        deadline = time.monotonic() + timeout
        failed = 0
        for proc in procs:
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            failed += code != 0
        wall = time.perf_counter() - began
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    copied = (jobs - failed) * size
    return (copied / MB / wall if wall > 0 else 0.0), failed


def _remote_size(url: str) -> int:
    from XRootD import client

    from hepstream.io.xrootd import split_url

    server, path = split_url(url)
    status, info = client.FileSystem(server).stat(path, timeout=30)
    if not status.ok:
        raise InputError(f"cannot stat {url}: {' '.join(str(status.message).split())}")
    return int(info.size)
