"""Run one job in this process: plugin -> chunks -> select -> write -> report.

The reader (:mod:`hepstream.job.reader`) fetches and decodes the next chunks while this
thread runs the plugin on the current one; the writer owns the output. A job with several
workers runs each worker's share this way, in a process of its own
(:mod:`hepstream.job.processes`).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hepstream.conditions.job import JobConditions, open_for_job
from hepstream.errors import ConfigError, HepstreamError, Interrupted
from hepstream.io import IOStats, expand_inputs, is_remote
from hepstream.io.viacache import cache_link
from hepstream.io.xrootd import configure_client, forget_gone, warm_up
from hepstream.job.accounting import (
    check_inputs,
    collect_io,
    count_chunk,
    error_line,
    fill_cutflow,
    peak_rss_mb,
    save_report,
    skip_file,
)
from hepstream.job.filling import Filling
from hepstream.job.reader import Chunk, FileEnd, Reader
from hepstream.job.writer import Columns, Output, OutputWriter, scratch_dir
from hepstream.jobspec import JobSpec, validate_spec
from hepstream.plugin.api import Selection
from hepstream.plugin.calls import call_plugin, check_mask, check_selection, output_columns
from hepstream.plugin.loader import load_plugin
from hepstream.plugin.take import take
from hepstream.report import FileReport, JobReport, keep_detail

__all__ = ["JobSpec", "run_job", "validate_spec"]

#: A piece of a chunk: events ``[start, stop)``, with the conditions payloads valid for all
#: of them (None for a plugin without conditions).
Piece = tuple[int, int, dict[str, Any] | None]


def run_job(
    spec: JobSpec,
    progress: Callable[[int, int], None] | None = None,
    *,
    output: Output | None = None,
    report: JobReport | None = None,
) -> JobReport:
    """Run a job to completion; the report is written (``ok`` or ``failed``) before return.

    Raises the job's :class:`HepstreamError` after writing a ``failed`` report. With
    ``spec.workers`` other than 1 the inputs are read by worker processes
    (:func:`~hepstream.job.processes.run_workers`). ``output`` replaces the job's output
    file (a worker's pipe); ``report`` is the record to fill (its caller then has it also
    when the job fails).
    """
    if spec.workers != 1 and output is None:
        # processes runs each worker's share through run_job: imported here, not at the top,
        # so that neither module needs the other half-loaded
        from hepstream.job.processes import run_workers

        return run_workers(spec, progress)
    if report is None:
        report = JobReport(plugin=spec.plugin, output=spec.output, site=spec.site)
    job = _Job(spec, report)
    # What is alive now (uproot, awkward, numba and their modules: most of the heap) lives
    # through the job: frozen, the cycle collector's full passes (each stops every thread)
    # skip it until the job ends. A caller that froze its own heap keeps it frozen:
    # unfreezing is all or nothing.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        for item in job.open(output):
            if isinstance(item, FileEnd):
                job.file_ended(item)
                continue
            job.select(item)
            if progress is not None:
                progress(item.stop - item.start, sum(f.entries for f in job.report.files))
        job.commit()
    except BaseException as err:
        job.fail(err)
        raise
    finally:
        if freeze:
            gc.unfreeze()
        job.close()
    return job.report


class _Job:
    """The state of one job in this process, built up step by step by :meth:`open` so that
    a failure part-way closes what was made: plugin, conditions, output, inputs."""

    selection: Selection
    paths: list[str]

    def __init__(self, spec: JobSpec, report: JobReport) -> None:
        self.spec = spec
        self.report = report
        report.readahead, report.cache = spec.stream.readahead, spec.stream.cache
        report.via_cache = spec.stream.site_cache
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.conditions: JobConditions | None = None  # when the plugin declares any
        self.writer: Output | None = None
        self.io_stats: dict[int, IOStats] = {}
        #: With skip_bad_files, each file's output columns wait here until the file has been
        #: read to its end: a file that breaks mid-way leaves nothing in the output.
        self.held: dict[int, list[Columns]] = {}

    # -- setup --------------------------------------------------------------------------
    def open(self, output: Output | None) -> Reader:
        """Load the plugin, resolve its conditions, open the output, check the inputs: the
        reader of the job's chunks."""
        spec, report = self.spec, self.report
        if is_remote(spec.output) or any(is_remote(p) for p in spec.inputs):
            forget_gone()  # a server an earlier job in this process gave up on may be back
            configure_client(spec.stream.connection_retry, spec.stream.connection_window)
            # connect and log in to the first input's server while the plugin (and numba)
            # load: on the WAN that handshake is several round trips. Through a site cache
            # that is the input's own connection to the cache (a cache that is down costs
            # a failed ping in the background; the open falls back as it would anyway)
            first = next((p for p in spec.inputs if is_remote(p)), None)
            warm_up(cache_link(first, spec.stream.site_cache) if first else spec.output)
        self.selection = load_plugin(spec.plugin)
        self.filling = Filling(self.selection, spec.plugin, per_file=spec.skip_bad_files)
        if spec.histograms_only and not self.filling:
            raise ConfigError(
                f"--histograms-only: plugin {spec.plugin} books no histograms; give it a "
                f"book() method (README, 'Histograms and cut flows') or drop the option"
            )
        # the plugin's global tag is resolved before any output exists
        self.conditions = open_for_job(
            self.selection,
            spec.conditions,
            spec.global_tag,
            spec.allow_open_tag,
            spec.conditions_cache,
            spec.plugin,
        )
        self.writer = output or OutputWriter(
            spec.output,
            tree=self.selection.tree,
            compression=spec.compression,
            events=not spec.histograms_only,
        )
        self.paths = expand_inputs(list(spec.inputs), allow_missing=True)  # checked just below
        report.files = [FileReport(path=p) for p in self.paths]
        missing = check_inputs(report, self.paths, spec)
        reader = Reader(self.paths, self.selection, spec, report.files, missing)
        self.io_stats = reader.stats
        return reader

    # -- per chunk ----------------------------------------------------------------------
    def select(self, chunk: Chunk) -> None:
        """Run the plugin on ``chunk``; write or hold its output columns; count it."""
        report = self.report
        where = (
            f"plugin {self.spec.plugin} on {self.paths[chunk.file_index]} entries "
            f"{chunk.start}-{chunk.stop}"
        )
        pieces = self._pieces(chunk)  # IOV lookups stay outside select_s
        self.filling.for_file(chunk.file_index)
        t0 = time.perf_counter()
        selected, cut_events, outputs = self._select_pieces(chunk, pieces, where)
        report.select_s += time.perf_counter() - t0
        report.io_wait_s += chunk.io_wait
        if self.spec.skip_bad_files:
            self.held.setdefault(chunk.file_index, []).extend(outputs)
        else:
            writer = self._writer()
            for columns in outputs:
                writer.write(columns, chunk.file_index)
        count_chunk(report, chunk, selected, cut_events)

    def _pieces(self, chunk: Chunk) -> Sequence[Piece]:
        """One piece per IOV of each conditions record; without conditions, the chunk."""
        if self.conditions is None:
            return [(0, len(chunk.events), None)]
        return self.conditions.pieces(chunk.events)

    def _select_pieces(
        self, chunk: Chunk, pieces: Sequence[Piece], where: str
    ) -> tuple[int, list[int], list[Columns]]:
        """fill_all(), select(), fill() and output() once per piece of ``chunk``, each with
        its payloads: the events selected, those passing each cut, each piece's columns."""
        selection, report, filling = self.selection, self.report, self.filling
        events_out = not self.spec.histograms_only
        selected, outputs = 0, []
        cut_events = [0] * len(selection.cuts)
        for lo, hi, payloads in pieces:
            events = chunk.events if hi - lo == len(chunk.events) else chunk.events[lo:hi]
            selection.set_payloads(payloads)
            if filling.fills_all:
                call_plugin(selection, where, "fill_all", self._preselected(events, where))
            mask, passing = check_selection(
                call_plugin(selection, where, "select", events),
                len(events),
                selection.cuts,
                f"{where}: select()",
            )
            if report.first_chunk_s == 0.0:  # the first selection result: compile included
                report.first_chunk_s = round(time.perf_counter() - self.wall0, 4)
            if filling.fills or events_out:
                kept = take(events, mask)
                if filling.fills:
                    call_plugin(selection, where, "fill", kept)
                if events_out:
                    outputs.append(output_columns(selection, kept, where))
            selected += int(np.count_nonzero(mask))
            cut_events = [a + b for a, b in zip(cut_events, passing, strict=True)]
        selection.set_payloads(None)
        return selected, cut_events, outputs

    def _preselected(self, events: Any, where: str) -> Any:
        """The events of a piece that pass the plugin's preselection: the reader hands
        select() whole clusters, and all of them once preselecting stops paying, so this is
        what makes fill_all() see the same events however the reader chose."""
        if not self.selection.preselect:
            return events
        mask = call_plugin(self.selection, where, "preselect_mask", events)
        return take(events, check_mask(mask, len(events), f"{where}: preselect_mask()"))

    def file_ended(self, end: FileEnd) -> None:
        """Input ``end.file_index`` is over: write what it held, or drop it (and its counts
        from the job's totals) if it was skipped."""
        columns = self.held.pop(end.file_index, [])
        if end.error is None:
            writer = self._writer()
            for piece in columns:
                writer.write(piece, end.file_index)
            self.report.files[end.file_index].status = "ok"
        else:
            skip_file(self.report, end.file_index, end.error)
        self.filling.file_ended(end.file_index, end.error is None)

    # -- the end: output committed or dropped, report finished --------------------------
    def commit(self) -> None:
        """Every input read: the output, with the conditions' provenance, at its target."""
        report, writer = self.report, self._writer()
        for entry in report.files:
            if entry.entries == 0 and entry.status == "pending":
                entry.status = "ok"
        if self.conditions is not None:  # provenance in the output file's metadata
            writer.metadata.update(self.conditions.metadata())
        fill_cutflow(report, self.selection.cuts)
        report.histograms = list(self.filling.totals)
        writer.add_results(self.filling.results(report.cutflow))
        report.output_bytes = writer.commit()
        skipped = any(entry.status == "skipped" for entry in report.files)
        report.status = "partial" if skipped else "ok"

    def fail(self, err: BaseException) -> None:
        """The job stopped on ``err``: no output, and the report says why."""
        report = self.report
        if self.writer is not None:
            self.writer.abort()
        report.status = "failed"
        if isinstance(err, HepstreamError | Interrupted):
            report.detail = keep_detail(err, self.spec.report, self.spec.output, scratch_dir())
        report.error = error_line(err)
        for entry in report.files:
            if entry.status == "pending" and entry.events_read:
                entry.status = "failed"

    def close(self) -> None:
        """Close the conditions; finish the report (I/O, times, memory) and save it."""
        report = self.report
        if self.conditions is not None:  # global tag, IOV hash and lookup cost
            report.conditions = self.conditions.report()
            self.conditions.close()
        collect_io(report, self.io_stats)
        report.select_s = round(report.select_s, 4)
        report.io_wait_s = round(report.io_wait_s, 4)
        report.peak_rss_mb = peak_rss_mb()
        report.finish(time.perf_counter() - self.wall0, time.process_time() - self.cpu0)
        save_report(report, self.spec.report)

    def _writer(self) -> Output:
        assert self.writer is not None, "open() made it"
        return self.writer
