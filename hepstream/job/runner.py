"""Run one job: plugin -> chunks -> select -> write -> report.

The reader (:mod:`hepstream.job.reader`) fetches and decodes the next chunks while this
thread runs the plugin on the current one; the writer owns the output.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hepstream.errors import HepstreamError, InputError, Interrupted, OutputError, PluginError
from hepstream.io import IOStats, expand_inputs, is_remote
from hepstream.io.source import missing_inputs
from hepstream.jobspec import JobSpec, validate_spec  # noqa: F401 (re-exported)
from hepstream.plugin.api import Selection, call_plugin, check_mask, load_plugin, take
from hepstream.report import FileReport, JobReport, keep_detail


def _output_columns(selection: Selection, selected: Any, where: str) -> dict[str, Any]:
    columns = call_plugin(selection, where, "output", selected)
    if not isinstance(columns, dict) or not columns:
        raise PluginError(f"{where}: output() must return a non-empty dict of column -> array")
    for name, column in columns.items():
        if len(column) != len(selected):
            raise PluginError(
                f"{where}: output() column {name!r} has {len(column)} entries, "
                f"expected {len(selected)} (one per selected event)"
            )
    return columns


def run_job(spec: JobSpec, progress: Callable[[int, int], None] | None = None, *,
            output: Any = None, report: JobReport | None = None) -> JobReport:  # fmt: skip
    """Run a job to completion; the report is written (``ok`` or ``failed``) before return.

    Raises the job's :class:`HepstreamError` after writing a ``failed`` report. With
    ``spec.workers`` other than 1 the inputs are read by worker processes
    (:func:`run_workers`). ``output`` replaces the job's output file (a worker's pipe): an
    object with ``write(columns, index)``, ``metadata``, ``commit()`` and ``abort()``;
    ``report`` is the record to fill (its caller then has it also when the job fails).
    """
    from hepstream.job.reader import FileEnd, Reader
    from hepstream.job.writer import OutputWriter, scratch_dir

    if spec.workers != 1 and output is None:
        return run_workers(spec, progress)
    if report is None:
        report = JobReport(plugin=spec.plugin, output=spec.output, site=spec.site)
    report.readahead, report.cache = spec.stream.readahead, spec.stream.cache
    wall0, cpu0 = time.perf_counter(), time.process_time()
    # What is alive now (uproot, awkward, numba and their modules: most of the heap) lives
    # through the job: the cycle collector's full passes skip it until the job ends. Each
    # full pass stops every thread; over 10 tau1n files they took 0.17 s, frozen 0.03 s.
    # A caller that froze its own heap keeps it frozen: unfreezing is all or nothing.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    writer: Any = None
    io_stats: dict[int, IOStats] = {}
    conditions = None  # hepstream.conditions.job.JobConditions when the plugin declares any
    try:
        if is_remote(spec.output) or any(is_remote(p) for p in spec.inputs):
            from hepstream.io.xrootd import configure_client, forget_gone, warm_up

            forget_gone()  # a server an earlier job in this process gave up on may be back
            configure_client(spec.stream.connection_retry, spec.stream.connection_window)
            # connect and log in to the first input's server while the plugin (and numba)
            # load: on the WAN that handshake is several round trips
            warm_up(next((p for p in spec.inputs if is_remote(p)), spec.output))
        selection = load_plugin(spec.plugin)
        # the plugin's global tag is resolved before any output exists
        from hepstream.conditions.job import open_for_job

        conditions = open_for_job(
            selection, spec.conditions, spec.global_tag, spec.allow_open_tag,
            spec.conditions_cache, spec.plugin,
        )  # fmt: skip
        writer = output or OutputWriter(
            spec.output, tree=selection.tree, compression=spec.compression
        )
        paths = expand_inputs(list(spec.inputs), allow_missing=True)  # listed just below
        report.files = [FileReport(path=p) for p in paths]
        missing = _check_inputs(report, paths, spec)
        reader = Reader(paths, selection, spec, report.files, missing)
        io_stats = reader.stats
        #: With skip_bad_files, each file's output columns wait here until the file has been
        #: read to its end: a file that breaks mid-way leaves nothing in the output.
        held: dict[int, list[dict[str, Any]]] = {}
        for chunk in reader:
            if isinstance(chunk, FileEnd):
                _file_ended(report, chunk, held, writer)
                continue
            where = (
                f"plugin {spec.plugin} on {paths[chunk.file_index]} entries "
                f"{chunk.start}-{chunk.stop}"
            )
            # one select() per piece of the chunk with one IOV per conditions record (IOV
            # lookups stay outside select_s); without conditions the chunk is one piece
            pieces: Sequence[tuple[int, int, dict[str, Any] | None]] = [
                (0, len(chunk.events), None)
            ]
            if conditions is not None:
                pieces = conditions.pieces(chunk.events)
            t0 = time.perf_counter()
            n_sel, outputs = 0, []
            for lo, hi, payloads in pieces:
                events = chunk.events if hi - lo == len(chunk.events) else chunk.events[lo:hi]
                selection._hepstream_payloads = payloads
                mask = check_mask(
                    call_plugin(selection, where, "select", events),
                    len(events),
                    f"{where}: select()",
                )
                if report.first_chunk_s == 0.0:  # the first selection result: compile included
                    report.first_chunk_s = round(time.perf_counter() - wall0, 4)
                outputs.append(_output_columns(selection, take(events, mask), where))
                n_sel += int(np.count_nonzero(mask))
            selection._hepstream_payloads = None
            report.select_s += time.perf_counter() - t0
            report.io_wait_s += chunk.io_wait
            if spec.skip_bad_files:
                held.setdefault(chunk.file_index, []).extend(outputs)
            else:
                for columns in outputs:
                    writer.write(columns, chunk.file_index)
            entry = report.files[chunk.file_index]
            entry.events_read += chunk.stop - chunk.start
            entry.events_selected += n_sel
            entry.events_preselected += len(chunk.events)
            report.events_read += chunk.stop - chunk.start
            report.events_preselected += len(chunk.events)
            report.clusters_skipped = sum(
                f.clusters_skipped for f in report.files if f.status != "skipped"
            )
            report.events_selected += n_sel
            if progress is not None:
                progress(chunk.stop - chunk.start, sum(f.entries for f in report.files))
        for entry in report.files:
            if entry.entries == 0 and entry.status == "pending":
                entry.status = "ok"
        if conditions is not None:  # provenance in the output file's metadata
            writer.metadata.update(conditions.metadata())
        report.output_bytes = writer.commit()
        skipped = any(entry.status == "skipped" for entry in report.files)
        report.status = "partial" if skipped else "ok"
    except BaseException as err:
        if writer is not None:
            writer.abort()
        report.status = "failed"
        if isinstance(err, HepstreamError | Interrupted):
            report.detail = keep_detail(err, spec.report, scratch_dir())
        report.error = _error_line(err)
        for entry in report.files:
            if entry.status == "pending" and entry.events_read:
                entry.status = "failed"
        raise
    finally:
        if freeze:
            gc.unfreeze()
        if conditions is not None:  # global tag, IOV hash and lookup cost
            report.conditions = conditions.report()
            conditions.close()
        _collect_io(report, io_stats)
        report.select_s = round(report.select_s, 4)
        report.io_wait_s = round(report.io_wait_s, 4)
        report.peak_rss_mb = _peak_rss_mb()
        report.finish(time.perf_counter() - wall0, time.process_time() - cpu0)
        _save_report(report, spec.report)
    return report


def _save_report(report: JobReport, target: str | None) -> None:
    """Write the finished report at ``target`` (if any). A lost report fails an ``ok`` job;
    a failed job's own error stays the one line, the lost report only a warning."""
    from hepstream.job.writer import write_report

    if not target:
        return
    try:
        write_report(report, target)
    except OutputError as err:
        if report.status == "ok":
            raise
        print(f"hepstream: warning: {err}", file=sys.stderr)


def _error_line(err: BaseException) -> str:
    """The failed report's ``error``: the job's own line, or what stopped it otherwise."""
    if isinstance(err, HepstreamError | Interrupted):
        return str(err)
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    return f"internal error: {type(err).__name__}: {err}"


def _check_inputs(report: JobReport, paths: list[str], spec: JobSpec) -> dict[int, InputError]:
    """Every input is there before any event is read (root:// ones asked all at once): the
    missing ones (``skip_bad_files``), or the first one's error, marked in ``report``."""
    missing = missing_inputs(paths, spec.stream.timeout or 30)
    if missing and not spec.skip_bad_files:
        for index, error in missing.items():
            report.files[index].status, report.files[index].error = "failed", str(error)
        raise next(iter(missing.values()))
    return missing


def _file_ended(report: JobReport, end: Any, held: dict[int, list[dict[str, Any]]],
                writer: Any) -> None:  # fmt: skip
    """Input ``end.file_index`` is over: write what it held, or drop it (and its counts
    from the job's totals) if it was skipped."""
    entry = report.files[end.file_index]
    columns = held.pop(end.file_index, [])
    if end.error is None:
        for piece in columns:
            writer.write(piece, end.file_index)
        entry.status = "ok"
        return
    entry.status, entry.error = "skipped", str(end.error)
    report.events_read -= entry.events_read
    report.events_selected -= entry.events_selected
    report.events_preselected -= entry.events_preselected
    report.clusters_skipped = sum(f.clusters_skipped for f in report.files if f.status != "skipped")


# -- worker processes ------------------------------------------------------------------
#: What a worker process starts with already imported: the forkserver loads these once,
#: and each worker is a fork of it (no interpreter start-up, no re-import per worker).
_PRELOAD = ["hepstream.job.runner", "hepstream.job.reader", "hepstream.job.writer", "numba"]
#: Seconds a worker told to stop (SIGTERM) gets to clean up before it is killed.
_STOP_GRACE = 10.0


def worker_context() -> Any:
    """The multiprocessing context of worker processes, its forkserver starting (a fresh
    single-threaded process, safe to fork whatever threads this one runs)."""
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


class _PipeOutput:
    """A worker's output: each chunk's columns go to the job's process, which writes."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.metadata: dict[str, str] = {}

    def write(self, columns: dict[str, Any], index: int = 0) -> None:
        self.conn.send(("columns", index, columns))

    def commit(self) -> int:
        return 0

    def abort(self) -> None:
        pass


def _worker(spec: JobSpec, conn: Any) -> None:
    """A worker process: run ``spec`` (its share of the inputs), output and progress to the
    job's process through ``conn``; last its report, or its error."""
    import pickle

    from hepstream.job.signals import stop_on_signals

    sink = _PipeOutput(conn)
    report = JobReport(plugin=spec.plugin, output=spec.output, site=spec.site)
    try:
        with stop_on_signals():
            run_job(spec, lambda n, total: conn.send(("progress", n, total)), output=sink,
                    report=report)  # fmt: skip
        conn.send(("done", report, sink.metadata))
    except BaseException as err:
        try:
            pickle.dumps(err)
        except Exception:
            err = HepstreamError(f"{type(err).__name__}: {err}")
        with contextlib.suppress(OSError):  # the job's process is gone or stopped listening
            conn.send(("failed", err, report))
    finally:
        conn.close()


def run_workers(spec: JobSpec, progress: Callable[[int, int], None] | None = None) -> JobReport:
    """Run ``spec`` over worker processes (:mod:`hepstream.job.workers`): each reads and selects
    its share of the inputs, this process writes their output in input order and the report.

    A worker that fails fails the job with the worker's error; the others are stopped and
    nothing reaches the output. The job's byte budget is shared between the workers.
    """
    import dataclasses
    from multiprocessing.connection import wait

    from hepstream.job.workers import InputOrder, combine, deal, worker_count
    from hepstream.job.writer import OutputWriter

    report = JobReport(plugin=spec.plugin, output=spec.output, site=spec.site,
                       readahead=spec.stream.readahead, cache=0)  # fmt: skip
    wall0, cpu0 = time.perf_counter(), time.process_time()
    paths = expand_inputs(list(spec.inputs), allow_missing=True)
    count = worker_count(spec.workers, len(paths))
    if count == 1:
        return run_job(dataclasses.replace(spec, workers=1), progress)
    context = worker_context()
    shares = deal(len(paths), count)
    order = InputOrder(shares)
    report.files = [FileReport(path=p) for p in paths]
    stream = spec.stream if spec.auto_cache else dataclasses.replace(
        spec.stream, cache=max(1, spec.stream.cache // count)
    )  # fmt: skip
    procs: list[Any] = []
    conns: dict[Any, int] = {}
    writer: Any = None
    parts: dict[int, JobReport] = {}
    combined = False
    try:
        selection = load_plugin(spec.plugin)  # a broken plugin fails here, before any worker
        _check_inputs(report, paths, spec)  # before any worker reads an event
        for number, share in enumerate(shares):
            sub = dataclasses.replace(
                spec, inputs=tuple(paths[i] for i in share), workers=1, report=None,
                entry_ranges=tuple(spec.entry_ranges[i] for i in share) if spec.entry_ranges else (),
                stream=stream, decompress_threads=max(1, spec.decompress_threads // count),
            )  # fmt: skip
            receive, send = context.Pipe(duplex=False)
            proc = context.Process(target=_worker, args=(sub, send), daemon=True,
                                   name=f"hepstream-worker-{number}")  # fmt: skip
            proc.start()
            send.close()  # the worker holds the only sending end: its exit is our EOF
            procs.append(proc)
            conns[receive] = number
        writer = OutputWriter(spec.output, tree=selection.tree, compression=spec.compression)
        totals = [0] * count  # entries each worker will read, as far as it knows yet
        while len(parts) < count:
            running = [c for c, w in conns.items() if w not in parts]
            ready: list[Any] = wait([c for c in running if not order.waits(conns[c])] or running)
            for conn in ready:
                number = conns[conn]
                try:
                    message: tuple[Any, ...] = conn.recv()
                except EOFError:
                    procs[number].join(_STOP_GRACE)
                    code = procs[number].exitcode
                    raise HepstreamError(
                        f"worker {number} (inputs {', '.join(paths[i] for i in shares[number])}) "
                        f"died ({_exit_text(code)}) before finishing; check the machine's "
                        f"memory, or run with fewer --workers"
                    ) from None
                if message[0] == "columns":
                    _, local, columns = message
                    size = sum(getattr(c, "nbytes", 0) for c in columns.values())
                    for piece in order.add(number, shares[number][local], columns, size):
                        writer.write(piece)
                elif message[0] == "progress":
                    if report.first_chunk_s == 0.0:
                        report.first_chunk_s = round(time.perf_counter() - wall0, 4)
                    totals[number] = message[2]
                    if progress is not None:
                        progress(message[1], sum(totals))
                elif message[0] == "done":
                    parts[number] = message[1]
                    writer.metadata.update(message[2])
                    for piece in order.finish(number):
                        writer.write(piece)
                else:  # "failed": the worker's own error is the job's
                    parts[number] = message[2]
                    raise message[1]
        for proc in procs:
            proc.join(_STOP_GRACE)
        combine(report, [(parts[w], shares[w]) for w in range(count)])
        combined = True
        report.output_bytes = writer.commit()
    except BaseException as err:
        if writer is not None:
            writer.abort()
        _stop(procs)
        if not combined:  # what is known of the workers that reported
            combine(report, [(parts[w], shares[w]) for w in sorted(parts)])
        report.status = "failed"
        report.error = _error_line(err)  # a worker's detail is in the log its line names
        raise
    finally:
        for conn in conns:
            conn.close()
        cpu_self = time.process_time() - cpu0
        report.peak_rss_mb = round(report.peak_rss_mb + _peak_rss_mb(), 1)
        report.finish(time.perf_counter() - wall0, report.cpu_s + cpu_self)
        _save_report(report, spec.report)
    return report


def _stop(procs: Sequence[Any]) -> None:
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
    import signal

    if code is None:
        return "still running"
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit status {code}"


def _collect_io(report: JobReport, io_stats: dict[int, IOStats]) -> None:
    for index, stats in sorted(io_stats.items()):
        report.bytes_read += stats.bytes_read
        report.bytes_needed += stats.bytes_needed
        report.bytes_unplanned += stats.unplanned_bytes
        report.requests += stats.requests
        report.vector_reads += stats.vector_reads
        report.cache_hits += stats.cache_hits
        report.cache_misses += stats.cache_misses
        report.reads_waited += stats.reads_waited
        report.read_retries += stats.retries
        report.cache_peak_bytes = max(report.cache_peak_bytes, stats.cache_peak)
        if index < len(report.files):
            entry = report.files[index]
            entry.bytes_read = stats.bytes_read
            entry.bytes_needed = stats.bytes_needed
            entry.bytes_unplanned = stats.unplanned_bytes
            entry.requests = stats.requests
            report.cache = max(report.cache, entry.cache)


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. ``ru_maxrss`` is not used first: Linux
    carries the parent's peak across fork and exec, so a job launched from a big
    process would report the launcher's memory."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
