"""Run one job: plugin -> chunks -> select -> write -> report.

The reader (:mod:`hepstream.reader`) fetches and decodes the next chunks while this
thread runs the plugin on the current one; the writer owns the output.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hepstream.errors import HepstreamError, Interrupted, OutputError, PluginError
from hepstream.io import IOStats, expand_inputs, is_remote
from hepstream.io.source import missing_inputs
from hepstream.jobspec import JobSpec, validate_spec  # noqa: F401 (re-exported)
from hepstream.report import FileReport, JobReport, keep_detail
from hepstream.selection import Selection, call_plugin, check_mask, load_plugin, take


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


def run_job(spec: JobSpec, progress: Callable[[int, int], None] | None = None) -> JobReport:
    """Run a job to completion; the report is written (``ok`` or ``failed``) before return.

    Raises the job's :class:`HepstreamError` after writing a ``failed`` report.
    """
    from hepstream.reader import FileEnd, Reader
    from hepstream.writer import OutputWriter, scratch_dir, write_report

    report = JobReport(
        plugin=spec.plugin,
        output=spec.output,
        site=spec.site,
        readahead=spec.stream.readahead,
        cache=spec.stream.cache,
    )
    wall0, cpu0 = time.perf_counter(), time.process_time()
    writer: OutputWriter | None = None
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
        writer = OutputWriter(spec.output, tree=selection.tree, compression=spec.compression)
        paths = expand_inputs(list(spec.inputs), allow_missing=True)  # listed just below
        report.files = [FileReport(path=p) for p in paths]
        # every input is there before any event is read (root:// ones asked all at once)
        missing = missing_inputs(paths, spec.stream.timeout or 30)
        if missing and not spec.skip_bad_files:
            for index, error in missing.items():
                report.files[index].status, report.files[index].error = "failed", str(error)
            raise next(iter(missing.values()))
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
                    writer.write(columns)
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
            report.error = str(err)
        elif isinstance(err, KeyboardInterrupt):
            report.error = "interrupted (SIGINT)"
        else:
            report.error = f"internal error: {type(err).__name__}: {err}"
        for entry in report.files:
            if entry.status == "pending" and entry.events_read:
                entry.status = "failed"
        raise
    finally:
        if conditions is not None:  # global tag, IOV hash and lookup cost
            report.conditions = conditions.report()
            conditions.close()
        _collect_io(report, io_stats)
        report.select_s = round(report.select_s, 4)
        report.io_wait_s = round(report.io_wait_s, 4)
        report.peak_rss_mb = _peak_rss_mb()
        report.finish(time.perf_counter() - wall0, time.process_time() - cpu0)
        if spec.report:
            try:
                write_report(report, spec.report)
            except OutputError as err:
                if report.status == "ok":
                    raise
                # the job's own error is the one line; the lost report only a warning
                print(f"hepstream: warning: {err}", file=sys.stderr)
    return report


def _file_ended(report: JobReport, end: Any, held: dict[int, list[dict[str, Any]]],
                writer: Any) -> None:  # fmt: skip
    """Input ``end.file_index`` is over: write what it held, or drop it (and its counts
    from the job's totals) if it was skipped."""
    entry = report.files[end.file_index]
    columns = held.pop(end.file_index, [])
    if end.error is None:
        for piece in columns:
            writer.write(piece)
        entry.status = "ok"
        return
    entry.status, entry.error = "skipped", str(end.error)
    report.events_read -= entry.events_read
    report.events_selected -= entry.events_selected
    report.events_preselected -= entry.events_preselected
    report.clusters_skipped = sum(f.clusters_skipped for f in report.files if f.status != "skipped")


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
