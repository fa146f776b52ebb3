"""A job's report beyond running it: inputs checked before any event is read, each chunk's
and each skipped file's counts, I/O collected, the error line, peak memory, and the report
saved at its target. Shared by a job in this process and one over worker processes."""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence
from typing import Any

from hepstream.errors import HepstreamError, InputError, Interrupted, OutputError
from hepstream.io import IOStats
from hepstream.io.source import missing_inputs
from hepstream.job.reader import Chunk
from hepstream.job.writer import write_report
from hepstream.jobspec import JobSpec
from hepstream.report import JobReport


def check_inputs(report: JobReport, paths: list[str], spec: JobSpec) -> dict[int, InputError]:
    """Every input is there before any event is read (root:// ones asked all at once): the
    missing ones (``skip_bad_files``), or the first one's error, marked in ``report``."""
    missing = missing_inputs(paths, spec.stream.timeout or 30, spec.stream)
    if missing and not spec.skip_bad_files:
        for index, error in missing.items():
            report.files[index].status, report.files[index].error = "failed", str(error)
        raise next(iter(missing.values()))
    return missing


def count_chunk(
    report: JobReport, chunk: Chunk, selected: int, cut_events: Sequence[int] = ()
) -> None:
    """Add ``chunk`` (``selected`` of its events kept, ``cut_events`` passing each cut) to
    its file's counts and the job's."""
    read, preselected = chunk.stop - chunk.start, len(chunk.events)
    entry = report.files[chunk.file_index]
    if cut_events:
        have = entry.cut_events or [0] * len(cut_events)
        entry.cut_events = [a + b for a, b in zip(have, cut_events, strict=True)]
    entry.events_read += read
    entry.events_selected += selected
    entry.events_preselected += preselected
    report.events_read += read
    report.events_preselected += preselected
    report.clusters_skipped = _clusters_skipped(report)
    report.events_selected += selected


def fill_cutflow(report: JobReport, cuts: Sequence[str]) -> None:
    """The report's ``cutflow`` from its files' counts (a skipped file's are out).

    Events the preselection dropped count as failing the first cut (the plugin's first cut
    is its preselection or stricter): so the flow does not depend on which clusters the
    reader chose to preselect."""
    rows: list[list[Any]] = [["events read", report.events_read]]
    if cuts:
        kept = [f.cut_events for f in report.files if f.status != "skipped" and f.cut_events]
        totals = [sum(column) for column in zip(*kept, strict=True)] or [0] * len(cuts)
        rows.extend([cut, n] for cut, n in zip(cuts, totals, strict=True))
    else:
        rows.append(["selected", report.events_selected])
    report.cutflow = rows


def skip_file(report: JobReport, index: int, error: BaseException) -> None:
    """Input ``index`` broke and is skipped: marked so, its counts out of the job's."""
    entry = report.files[index]
    entry.status, entry.error = "skipped", str(error)
    report.events_read -= entry.events_read
    report.events_selected -= entry.events_selected
    report.events_preselected -= entry.events_preselected
    report.clusters_skipped = _clusters_skipped(report)


def _clusters_skipped(report: JobReport) -> int:
    return sum(f.clusters_skipped for f in report.files if f.status != "skipped")


def collect_io(report: JobReport, io_stats: dict[int, IOStats]) -> None:
    """Add each input's I/O counters (by input index) to the job's and to its file's."""
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
        report.cache_bytes += stats.cache_bytes
        report.origin_bytes += stats.origin_bytes
        report.short_reads += stats.short_reads
        report.cache_fallback = report.cache_fallback or stats.cache_fallback
        report.cache_peak_bytes = max(report.cache_peak_bytes, stats.cache_peak)
        if index < len(report.files):
            entry = report.files[index]
            entry.bytes_read = stats.bytes_read
            entry.bytes_needed = stats.bytes_needed
            entry.bytes_unplanned = stats.unplanned_bytes
            entry.requests = stats.requests
            report.cache = max(report.cache, entry.cache)


def error_line(err: BaseException) -> str:
    """The failed report's ``error``: the job's own line, or what stopped it otherwise."""
    if isinstance(err, HepstreamError | Interrupted):
        return str(err)
    if isinstance(err, KeyboardInterrupt):
        return "interrupted (SIGINT)"
    return f"internal error: {type(err).__name__}: {err}"


def peak_rss_mb() -> float:
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


def save_report(report: JobReport, target: str | None) -> None:
    """Write the finished report at ``target`` (if any). A lost report fails an ``ok`` job;
    a failed job's own error stays the one line, the lost report only a warning."""
    if not target:
        return
    try:
        write_report(report, target)
    except OutputError as err:
        if report.status == "ok":
            raise
        print(f"hepstream: warning: {err}", file=sys.stderr)
