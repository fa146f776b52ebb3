"""The job report: what a job read, kept, and how fast, per job and per site."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hepstream._version import __version__
from hepstream.io.partfiles import atomic_path


@dataclass
class FileReport:
    """One input file's share of the job."""

    path: str
    status: str = "pending"  # pending | ok | failed
    entries: int = 0
    events_read: int = 0
    events_selected: int = 0
    events_preselected: int = 0
    clusters_skipped: int = 0
    bytes_read: int = 0
    #: Planned basket/page bytes served plus the metadata read (see JobReport.bytes_needed).
    bytes_needed: int = 0
    #: Bytes read that no plan foresaw (0 when the read plan is exact).
    bytes_unplanned: int = 0
    requests: int = 0
    cache: int = 0
    error: str | None = None
    #: Events of this file passing each of the plugin's cuts and every one before it.
    cut_events: list[int] = field(default_factory=list)


@dataclass
class JobReport:
    """Counters and rates of one job; written as JSON by ``--report``.

    ``status`` is ``ok`` only when every input was read and the output is at its final
    path; a failed job's report says ``failed`` and carries the one-line ``error``.
    """

    status: str = "running"
    error: str | None = None
    #: Full text behind ``error`` when it is long (e.g. numba's compiler output).
    detail: str | None = None
    plugin: str = ""
    output: str = ""
    site: str = "local"
    events_read: int = 0
    events_selected: int = 0
    events_preselected: int = 0
    clusters_skipped: int = 0
    bytes_read: int = 0
    #: What the job needed: every planned basket/page it read, each counted once, plus the
    #: metadata read (header, keys, streamers, anchors, with their read-ahead).
    bytes_needed: int = 0
    bytes_unplanned: int = 0
    requests: int = 0
    vector_reads: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    cache_peak_bytes: int = 0
    reads_waited: int = 0
    #: Reads and opens sent again after a transient storage fault (stream.retries).
    read_retries: int = 0
    #: The site cache the job was set to read its remote inputs through (stream.site_cache),
    #: or None.
    via_cache: str | None = None
    #: Why it did not (the first reason: the cache refused, stopped answering, failed a
    #: request), one line; None when it did or none was set.
    cache_fallback: str | None = None
    #: Bytes answered by the site cache / by the origin directly (no cache, a fallback,
    #: short answers asked again there). What the cache itself fetched from the origin only
    #: the cache knows (``hepstream cache status``).
    cache_bytes: int = 0
    origin_bytes: int = 0
    #: Short answers (fewer bytes than asked) from the site cache, asked again at the
    #: origin; their bytes were never used.
    short_reads: int = 0
    output_bytes: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    select_s: float = 0.0
    io_wait_s: float = 0.0
    first_chunk_s: float = 0.0
    events_per_s: float = 0.0
    kb_per_s: float = 0.0
    peak_rss_mb: float = 0.0
    readahead: int = 0
    cache: int = 0
    files: list[FileReport] = field(default_factory=list)
    #: ``[cut, events]`` rows from the events read to the events selected: after
    #: preselection (when the plugin has one), then each named cut with every one before it
    #: (or ``selected``); each row at most the one before it, the last ``events_selected``.
    cutflow: list[list[Any]] = field(default_factory=list)
    #: Names of the histograms the job filled (in its output, or its sidecar for Parquet).
    histograms: list[str] = field(default_factory=list)
    #: Global tag, IOV hash, IOVs used and lookup cost; None for jobs without conditions.
    conditions: dict[str, Any] | None = None
    hostname: str = field(default_factory=lambda: os.uname().nodename)
    hepstream_version: str = __version__

    def finish(self, wall_s: float, cpu_s: float) -> None:
        """Fill in the rates from the totals."""
        self.wall_s = round(wall_s, 4)
        self.cpu_s = round(cpu_s, 4)
        if wall_s > 0:
            self.events_per_s = round(self.events_read / wall_s, 2)
            self.kb_per_s = round(self.bytes_read / 1024 / wall_s, 2)

    def asdict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.asdict(), indent=2, sort_keys=False) + "\n"

    def summary(self) -> str:
        """A few human lines for stderr."""
        frac = 100.0 * self.events_selected / self.events_read if self.events_read else 0.0
        lines = [
            f"hepstream: job {self.status} at site {self.site}"
            + (f": {self.error}" if self.error else ""),
            f"  events   {self.events_read:,} read, {self.events_selected:,} selected ({frac:.2f} %)",
            f"  rate     {self.events_per_s:,.0f} events/s, {self.kb_per_s:,.0f} KB/s "
            f"({self.wall_s:.2f} s wall, {self.cpu_s:.2f} s CPU)",
            f"  I/O      {self.bytes_read / 1e6:,.1f} MB read for {self.bytes_needed / 1e6:,.1f} MB "
            f"needed, in {self.requests:,} requests "
            f"({self.vector_reads:,} vector), cache {self.cache_hits:,} hits / "
            f"{self.cache_misses:,} misses, peak {self.cache_peak_bytes / 1e6:.1f} MB",
        ]
        if self.via_cache:
            lines.append(
                f"  cache    {self.via_cache}: {self.cache_bytes / 1e6:,.1f} MB from the cache, "
                f"{self.origin_bytes / 1e6:,.1f} MB from the origin"
                + (f" ({self.cache_fallback})" if self.cache_fallback else "")
            )
        if self.output:
            lines.append(f"  output   {self.output} ({self.output_bytes / 1e6:,.2f} MB)")
        return "\n".join(lines)


def write_json_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to a temp file beside ``path`` and rename it into place."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def keep_detail(
    err: BaseException,
    report_target: str | None,
    output: str | None = None,
    scratch: str | None = None,
) -> str | None:
    """The error's long ``detail`` (for the report), and its line told where to find it:
    the report's ``detail`` field, or, for a job with no report, a log file where the user
    will look rather than a temp directory: beside a local ``output``, else in the working
    directory, else (neither writable) in ``scratch``. It is named after the output
    (``out/o.root.error.log``: no ``*.root`` glob matches it), so a rerun replaces it."""
    detail = getattr(err, "detail", None)
    if not detail:
        return None
    where = f"the report's detail field ({report_target})"
    if not report_target:
        local = bool(output) and output != "-" and "://" not in str(output)
        base = Path(str(output).split("?")[0]).name if output and output != "-" else ""
        places = [Path(str(output)).parent] if local else []
        places += [Path(), *([Path(scratch)] if scratch else [])]
        for place in places:
            try:  # abspath asks for the working directory, which may be gone
                log = Path(os.path.abspath(place / f"{base or 'hepstream'}.error.log"))
                log.write_text(detail)
            except OSError:
                continue
            where = str(log)
            break
        else:
            return detail
    err.args = (f"{err}; full text in {where}",)
    return detail


def print_summary(report: JobReport, stream: TextIO | None = None) -> None:
    """The human summary, on stderr unless told otherwise."""
    print(report.summary(), file=stream or sys.stderr)
