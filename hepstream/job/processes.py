"""A job over worker processes: each reads and selects its share of the inputs
(:func:`~hepstream.job.runner.run_job` in a process of its own), and this process writes
their output in input order and one report.

The pure parts (who reads what, output order, the combined report) are in
:mod:`hepstream.job.workers`; here are the processes, their pipes and their stopping.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import pickle
import signal
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any, cast

from hepstream.errors import HepstreamError
from hepstream.hists.store import Results
from hepstream.io import StreamConfig, expand_inputs
from hepstream.job.accounting import (
    check_inputs,
    error_line,
    fill_cutflow,
    peak_rss_mb,
    save_report,
)
from hepstream.job.runner import run_job
from hepstream.job.signals import stop_on_signals
from hepstream.job.workers import InputOrder, combine, deal, worker_count
from hepstream.job.writer import Columns, OutputWriter
from hepstream.jobspec import JobSpec
from hepstream.plugin.loader import load_plugin
from hepstream.report import FileReport, JobReport

#: What a worker process starts with already imported: the forkserver loads these once,
#: and each worker is a fork of it (no interpreter start-up, no re-import per worker).
_PRELOAD = [
    "hepstream.job.processes",
    "hepstream.job.runner",
    "hepstream.job.reader",
    "hepstream.job.writer",
    "numba",
]
#: Seconds a worker told to stop (SIGTERM) gets to clean up before it is killed.
_STOP_GRACE = 10.0


def worker_context() -> ForkServerContext:
    """The multiprocessing context of worker processes, its forkserver starting (a fresh
    single-threaded process, safe to fork whatever threads this one runs)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def run_workers(spec: JobSpec, progress: Callable[[int, int], None] | None = None) -> JobReport:
    """Run ``spec`` over worker processes: each reads and selects its share of the inputs,
    this process writes their output in input order and the report.

    A worker that fails fails the job with the worker's error; the others are stopped and
    nothing reaches the output. The job's byte budget is shared between the workers.
    """
    report = JobReport(
        plugin=spec.plugin,
        output=spec.output,
        site=spec.site,
        readahead=spec.stream.readahead,
        cache=0,
        via_cache=spec.stream.site_cache,
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    paths = expand_inputs(list(spec.inputs), allow_missing=True)
    count = worker_count(spec.workers, len(paths))
    if count == 1:
        return run_job(dataclasses.replace(spec, workers=1), progress)
    report.files = [FileReport(path=p) for p in paths]
    workers = _Workers(spec, paths, deal(len(paths), count), report, progress, wall0)
    try:
        selection = load_plugin(spec.plugin)  # a broken plugin fails here, before any worker
        check_inputs(report, paths, spec)  # before any worker reads an event
        workers.cuts = list(selection.cuts)
        workers.start(selection.tree)
        workers.receive()
        workers.commit()
    except BaseException as err:
        workers.fail(err)
        raise
    finally:
        workers.close()
        cpu_self = time.process_time() - cpu0
        report.peak_rss_mb = round(report.peak_rss_mb + peak_rss_mb(), 1)
        report.finish(time.perf_counter() - wall0, report.cpu_s + cpu_self)
        save_report(report, spec.report)
    return report


class _Workers:
    """The worker processes of one job and what they sent: output columns (written here in
    input order as they come), progress, and their reports."""

    def __init__(
        self,
        spec: JobSpec,
        paths: list[str],
        shares: list[list[int]],
        report: JobReport,
        progress: Callable[[int, int], None] | None,
        wall0: float,
    ) -> None:
        self.spec, self.paths, self.shares = spec, paths, shares
        self.report, self.progress, self.wall0 = report, progress, wall0
        self.order = InputOrder(shares)
        self.procs: list[BaseProcess] = []
        self.conns: dict[Connection, int] = {}  # receiving end -> worker number
        self.writer: OutputWriter | None = None
        self.parts: dict[int, JobReport] = {}  # worker number -> its report, once sent
        self.totals = [0] * len(shares)  # entries each worker will read, as far as it knows yet
        self.combined = False
        self.cuts: list[str] = []  # the plugin's, for the job's cut flow

    def start(self, tree: str) -> None:
        """One process per share, each running its own job on its inputs; then the output
        (its TTree named ``tree``), opened while they read."""
        context = worker_context()
        for number, share in enumerate(self.shares):
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(
                target=_worker,
                args=(self._share_spec(share), send),
                daemon=True,
                name=f"hepstream-worker-{number}",
            )
            proc.start()
            send.close()  # the worker holds the only sending end: its exit is our EOF
            self.procs.append(proc)
            self.conns[receive] = number
        spec = self.spec
        self.writer = OutputWriter(
            spec.output, tree=tree, compression=spec.compression, events=not spec.histograms_only
        )

    def _share_spec(self, share: Sequence[int]) -> JobSpec:
        """The job of the worker reading inputs ``share``: its inputs, its share of the
        cache (unless sized from the read plans) and of the decompression threads."""
        spec, count = self.spec, len(self.shares)
        stream: StreamConfig = (
            spec.stream
            if spec.auto_cache
            else dataclasses.replace(spec.stream, cache=max(1, spec.stream.cache // count))
        )
        ranges = tuple(spec.entry_ranges[i] for i in share) if spec.entry_ranges else ()
        return dataclasses.replace(
            spec,
            inputs=tuple(self.paths[i] for i in share),
            workers=1,
            report=None,
            entry_ranges=ranges,
            stream=stream,
            decompress_threads=max(1, spec.decompress_threads // count),
        )

    def receive(self) -> None:
        """Take the workers' messages until each has sent its report; a worker left waiting
        (:meth:`InputOrder.waits`) is read only when no other one has anything."""
        while len(self.parts) < len(self.shares):
            running = [c for c, w in self.conns.items() if w not in self.parts]
            ready = [c for c in running if not self.order.waits(self.conns[c])] or running
            for conn in cast(list[Connection], wait(ready)):  # the pipes' ends given
                number = self.conns[conn]
                try:
                    message: tuple[Any, ...] = conn.recv()
                except EOFError:
                    raise self._died(number) from None
                self._take(number, message)

    def _take(self, number: int, message: tuple[Any, ...]) -> None:
        """One message of worker ``number``: columns, progress, its report, or its error."""
        writer = self.writer
        assert writer is not None, "opened before any message is read"
        if message[0] == "columns":
            _, local, columns = message
            size = sum(getattr(c, "nbytes", 0) for c in columns.values())
            for piece in self.order.add(number, self.shares[number][local], columns, size):
                writer.write(piece)
        elif message[0] == "progress":
            if self.report.first_chunk_s == 0.0:
                self.report.first_chunk_s = round(time.perf_counter() - self.wall0, 4)
            self.totals[number] = message[2]
            if self.progress is not None:
                self.progress(message[1], sum(self.totals))
        elif message[0] == "done":
            self.parts[number] = message[1]
            writer.metadata.update(message[2])
            writer.add_results(message[3])  # exact: the workers' order does not matter
            for piece in self.order.finish(number):
                writer.write(piece)
        else:  # "failed": the worker's own error is the job's
            self.parts[number] = message[2]
            raise message[1]

    def _died(self, number: int) -> HepstreamError:
        """Worker ``number`` closed its pipe before its report: how it ended."""
        proc = self.procs[number]
        proc.join(_STOP_GRACE)
        inputs = ", ".join(self.paths[i] for i in self.shares[number])
        return HepstreamError(
            f"worker {number} (inputs {inputs}) died ({_exit_text(proc.exitcode)}) before "
            f"finishing; check the machine's memory, or run with fewer --workers"
        )

    def commit(self) -> None:
        """Every worker done: one report of theirs, the output at its target."""
        for proc in self.procs:
            proc.join(_STOP_GRACE)
        combine(self.report, [(self.parts[w], self.shares[w]) for w in range(len(self.shares))])
        self.combined = True
        assert self.writer is not None
        fill_cutflow(self.report, self.cuts)
        self.writer.results.cutflow = [(str(c), int(n)) for c, n in self.report.cutflow]
        self.report.histograms = list(self.writer.results.histograms)
        self.report.output_bytes = self.writer.commit()

    def fail(self, err: BaseException) -> None:
        """The job stopped on ``err``: no output, the workers stopped, the report says why."""
        if self.writer is not None:
            self.writer.abort()
        _stop(self.procs)
        if not self.combined:  # what is known of the workers that reported
            combine(self.report, [(self.parts[w], self.shares[w]) for w in sorted(self.parts)])
        self.report.status = "failed"
        self.report.error = error_line(err)  # a worker's detail is in the log its line names

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


class _PipeOutput:
    """A worker's output: each chunk's columns go to the job's process, which writes."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.metadata: dict[str, str] = {}
        self.results = Results()

    def add_results(self, results: Results) -> None:
        self.results.merge(results)

    def write(self, columns: Columns, index: int = 0) -> None:
        self.conn.send(("columns", index, columns))

    def commit(self) -> int:
        return 0

    def abort(self) -> None:
        pass


def _worker(spec: JobSpec, conn: Connection) -> None:
    """A worker process: run ``spec`` (its share of the inputs), output and progress to the
    job's process through ``conn``; last its report, or its error."""
    sink = _PipeOutput(conn)
    report = JobReport(plugin=spec.plugin, output=spec.output, site=spec.site)
    try:
        with stop_on_signals():
            run_job(
                spec, lambda n, total: conn.send(("progress", n, total)), output=sink, report=report
            )
        conn.send(("done", report, sink.metadata, sink.results))
    except BaseException as err:
        try:
            pickle.dumps(err)
        except Exception:
            err = HepstreamError(f"{type(err).__name__}: {err}")
        with contextlib.suppress(OSError):  # the job's process is gone or stopped listening
            conn.send(("failed", err, report))
    finally:
        conn.close()


def _stop(procs: Sequence[BaseProcess]) -> None:
    """Stop the workers still running: SIGTERM (each cleans up), then SIGKILL."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + _STOP_GRACE
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join()


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"
