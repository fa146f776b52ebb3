"""Run one job: stream inputs chunk by chunk, select, write, report.

A reader thread fetches and decompresses the next chunk while the main thread runs
the plugin on the current one; a bounded queue keeps at most ``prefetch`` chunks
waiting, so memory stays bounded whatever the input size.
"""

from __future__ import annotations

import itertools
import os
import queue
import resource
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hepstream.errors import ConfigError, HepstreamError, InputError, OutputError, PluginError
from hepstream.io import IOStats, StreamConfig, StreamingSource, expand_inputs, is_remote
from hepstream.io.config import MIB
from hepstream.plan import cache_for_layout, entries_for_bytes, passing_spans, plan_chunks
from hepstream.report import FileReport, JobReport, write_json_atomic
from hepstream.selection import Selection, check_mask, load_plugin


@dataclass(frozen=True)
class JobSpec:
    """Everything a job needs; the CLI and the VM agent build one of these."""

    plugin: str
    inputs: tuple[str, ...]
    output: str
    report: str | None = None
    site: str = field(default_factory=lambda: os.environ.get("HEPSTREAM_SITE", "local"))
    stream: StreamConfig = field(default_factory=StreamConfig)
    #: Size the cache from each file's basket layout (one chunk being read plus the next
    #: one prefetched); False keeps ``stream.cache`` exactly, as given on the command line.
    auto_cache: bool = True
    #: Uncompressed bytes per chunk: large enough to amortize Python overhead per call,
    #: small enough that a few chunks in flight keep a job far below 1 GB of memory.
    chunk_bytes: int = 8 * MIB
    #: Decompressed chunks waiting ahead of the selection; 1 hides I/O behind compute.
    prefetch: int = 1
    #: Input files opened, planned and first-chunk prefetched ahead of the one being read.
    open_ahead: int = 2
    #: Chunks of one file whose baskets are fetched ahead of the one being decoded. With
    #: one, the link idles one round trip per chunk once decoding outpaces it (30 ms RTT:
    #: 0.82x of the zero-delay rate on a 10-file bench job); two keep it busy.
    fetch_ahead: int = 2
    #: Threads that decompress baskets (zlib, lz4 and zstd release the GIL). The selection
    #: takes a small part of a core, so the job's cores are best spent decompressing.
    decompress_threads: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    # --- conditions (hepstream.conditions.job) -------------------------------------------
    #: Conditions sources tried in order: http(s):// service URLs or snapshot directories.
    conditions: tuple[str, ...] = ()
    #: Global tag the plugin's conditions records are resolved in.
    global_tag: str | None = None
    #: Accept an OPEN (still changing) global tag; for test jobs only.
    allow_open_tag: bool = False
    #: On-disk payload cache shared by jobs on this machine (default: see client.py).
    conditions_cache: str | None = None


@dataclass
class _Chunk:
    file_index: int
    start: int
    stop: int
    events: Any  # the events that passed preselection (all of them without one)
    io_wait: float


_DONE = object()


def _open_tree(
    path: str, tree_name: str, branches: list[str], stream: StreamConfig, threads: int = 1
):
    """Open a file's TTree through hepstream's source; clear errors for the usual faults."""
    import uproot

    options: dict[str, Any] = {}
    if threads > 1:  # uproot shuts the executor down with the file: one pool per file
        options["decompression_executor"] = ThreadPoolExecutor(
            threads, thread_name_prefix="hepstream-decompress"
        )
    try:
        # array_cache=None: a streaming job reads each basket once; uproot's default
        # 100 MB array cache would only hold memory.
        file = uproot.open(
            path, handler=StreamingSource, hepstream_config=stream, array_cache=None, **options
        )
    except HepstreamError:
        raise
    except ValueError as err:
        if "not a ROOT file" in str(err):
            raise InputError(f"{path} is not a ROOT file; check the input list") from None
        raise InputError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    except OSError as err:
        raise InputError(f"cannot read {path}: {str(err).splitlines()[0]}") from None
    try:
        tree = file[tree_name]
    except (KeyError, uproot.KeyInFileError):
        names = sorted({key.split(";")[0] for key in file.keys(recursive=False)})
        file.close()
        raise InputError(
            f"{path} has no TTree {tree_name!r} (it has {names}); fix the plugin's tree"
        ) from None
    if not hasattr(tree, "common_entry_offsets"):
        file.close()
        raise InputError(f"{path}: {tree_name!r} is not a TTree")
    missing = [b for b in branches if b not in tree]
    if missing:
        file.close()
        raise InputError(
            f"{path}: TTree {tree_name!r} has no branch {', '.join(missing)}; "
            f"fix the plugin's branches list"
        )
    return file, tree


def _read_chunks(
    paths: list[str],
    selection: Selection,
    spec: JobSpec,
    files: list[FileReport],
    out: queue.Queue,
    stop: threading.Event,
    io_stats: dict[int, IOStats],
) -> None:
    """Reader thread: put ``_Chunk``s, then ``_DONE`` (or the exception) on ``out``."""
    branches = list(selection.branches)
    cheap = list(selection.preselect)
    rest = [b for b in branches if b not in cheap]

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    # The next files are opened (open, stat, one read of header plus tail metadata),
    # planned, and their first chunk prefetched while this one is read: on the WAN a file
    # costs several round trips before its first basket, more than a short file takes to
    # read, so ``spec.open_ahead`` files are kept in preparation.
    opener = ThreadPoolExecutor(spec.open_ahead, thread_name_prefix="hepstream-open")
    closer = ThreadPoolExecutor(1, thread_name_prefix="hepstream-close")

    # Preselection pays only when whole clusters die. It is tried on the job's first chunk;
    # once a chunk keeps every cluster alive, the job reads all branches in one pass.
    mode = {"preselect": bool(selection.preselect)}

    def open_next(i: int):
        if i >= len(paths):
            return None
        # The job's first chunk over the network is fetched whole even when preselecting:
        # the probe would otherwise wait one more round trip for the other branches, and
        # at worst one chunk's baskets are read in vain. On local disk that wait is free.
        whole = i == 0 and is_remote(paths[i])
        return opener.submit(_prepare, paths[i], selection, spec, mode, whole=whole)

    ahead = deque(f for f in map(open_next, range(spec.open_ahead)) if f is not None)

    def keep_ahead(ready: _Ready, number: int, names: list[str]) -> None:
        """Keep ``spec.fetch_ahead`` chunks in flight past chunk ``number``, spilling into
        the next file near the end of this one, so the link never idles at a file edge."""
        ready.fetch_ahead(number, names)
        spill = spec.fetch_ahead - (len(ready.chunks) - number - 1)
        if spill > 0 and ahead:
            ahead[0].add_done_callback(partial(_prefetch_upto, count=spill, names=names))

    try:
        for index, path in enumerate(paths):
            ready = ahead.popleft().result()
            following_file = open_next(index + spec.open_ahead)
            if following_file is not None:
                ahead.append(following_file)
            tree, source, chunks = ready.tree, ready.source, ready.chunks
            files[index].entries = tree.num_entries
            files[index].cache = source.config.cache
            try:
                for number, (start, stop_) in enumerate(chunks):
                    began = time.perf_counter()
                    # the next chunks' baskets, while this one decodes
                    keep_ahead(ready, number, cheap if mode["preselect"] else branches)
                    if mode["preselect"]:
                        events, skipped = _read_preselected(
                            selection, spec, tree, path, ready.offsets, start, stop_
                        )
                        files[index].clusters_skipped += skipped
                        if not skipped:
                            mode["preselect"] = False
                            # what the cheap-only prefetches left out, here and for the
                            # next files' first chunks
                            keep_ahead(ready, number, branches)
                            for future in ahead:
                                future.add_done_callback(
                                    partial(_prefetch_upto, count=1, names=rest)
                                )
                    else:
                        events = _read_range(tree, path, branches, start, stop_)
                    if not put(_Chunk(index, start, stop_, events, time.perf_counter() - began)):
                        return
            finally:
                io_stats[index] = source.stats
                # closing a remote file is a round trip: do it off the reading path,
                # and off the opener's, which prepares the next file meanwhile
                closer.submit(ready.file.close)
        put(_DONE)
    except BaseException as err:
        put(err)
    finally:
        for future in ahead:
            if future.exception() is None:
                future.result().file.close()
        opener.shutdown(wait=True)
        closer.shutdown(wait=True)


@dataclass
class _Ready:
    """An opened input with its chunk plan; its first chunk is already being fetched."""

    file: Any
    tree: Any
    source: StreamingSource
    offsets: list[int]
    chunks: list[tuple[int, int]]
    depth: int = 1
    #: Branches already requested, per chunk number: each basket is asked for once.
    requested: dict[int, set[str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def prefetch(self, number: int, names: list[str]) -> None:
        """Start fetching the baskets of ``names`` in chunk ``number`` not asked for yet."""
        if number >= len(self.chunks):
            return
        with self._lock:  # the reader and an opener's callback may both ask
            done = self.requested.setdefault(number, set())
            todo = [name for name in names if name not in done]
            done.update(todo)
        if todo:
            self.source.prefetch(_basket_ranges(self.tree, todo, *self.chunks[number]))

    def fetch_ahead(self, number: int, names: list[str]) -> None:
        """Keep the ``depth`` chunks after ``number`` in flight while ``number`` decodes."""
        for ahead in range(number + 1, min(number + 1 + self.depth, len(self.chunks))):
            self.prefetch(ahead, names)


def _prefetch_upto(done, count: int, names: list[str]) -> None:
    """Once the next file is open, prefetch ``names`` of its first ``count`` chunks."""
    if done.exception() is None:
        ready = done.result()
        for number in range(count):
            ready.prefetch(number, names)


def _prepare(
    path: str, selection: Selection, spec: JobSpec, mode: dict[str, bool], whole: bool = False
) -> _Ready:
    """Open ``path``, plan its chunks, size its cache and start fetching its first chunk."""
    branches = list(selection.branches)
    file, tree = _open_tree(path, selection.tree, branches, spec.stream, spec.decompress_threads)
    try:
        source = file.file.source
        per_entry = sum(tree[b].uncompressed_bytes for b in branches) / max(1, tree.num_entries)
        entries = entries_for_bytes(spec.chunk_bytes, per_entry, tree.num_entries)
        offsets = tree.common_entry_offsets()
        chunks = plan_chunks(offsets, entries)
        if spec.auto_cache:
            source.resize(cache=cache_for_layout(
                [sum(b - a for a, b in _basket_ranges(tree, branches, lo, hi)) for lo, hi in chunks],
                spec.stream, ahead=spec.fetch_ahead,
            ))  # fmt: skip
        ready = _Ready(file, tree, source, offsets, chunks, depth=spec.fetch_ahead)
        ready.prefetch(
            0, list(selection.preselect) if mode["preselect"] and not whole else branches
        )
    except BaseException:
        file.close()
        raise
    return ready


def _basket_ranges(tree, names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
    """Byte ranges of the baskets that hold entries ``[start, stop)`` of branches ``names``."""
    return [
        where
        for name in names
        for _, where in tree[name].entries_to_ranges_or_baskets(start, stop)
        if isinstance(where, tuple)
    ]


def _read_range(tree, path: str, names: list[str], start: int, stop: int):
    """Branches ``names`` for entries ``[start, stop)``; damaged data is an InputError."""
    try:
        return tree.arrays(names, entry_start=start, entry_stop=stop, library="ak")
    except HepstreamError:
        raise
    except (OSError, ValueError, zlib.error, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise InputError(
            f"{path}: cannot read entries {start}-{stop} ({type(err).__name__}: {first}); "
            f"the file may be corrupt, copy it again"
        ) from err


def _read_preselected(selection: Selection, spec: JobSpec, tree, path, offsets, start, stop):
    """Read the cheap branches, preselect, then the rest only for clusters still alive."""
    import awkward as ak

    cheap = list(selection.preselect)
    rest = [b for b in selection.branches if b not in cheap]
    pre = _read_range(tree, path, cheap, start, stop)
    where = f"plugin {spec.plugin} on {path} entries {start}-{stop}"
    premask = check_mask(
        _call_plugin(selection, where, "preselect_mask", pre), len(pre),
        f"{where}: preselect_mask()",
    )  # fmt: skip
    boundaries = [start, *(o for o in offsets if start < o < stop), stop]
    spans = passing_spans(boundaries, premask)
    skipped = sum(
        1 for lo, hi in itertools.pairwise(boundaries) if not premask[lo - start : hi - start].any()
    )
    # Whole surviving clusters go to select() (contiguous views, no per-event gather);
    # select() gives the full answer on any event, so nothing is lost.
    if not spans:
        spans_cheap = [pre[0:0]]  # zero entries still carry the branch types
        spans_rest = [_read_range(tree, path, rest, start, start)] if rest else []
    else:
        spans_cheap = [pre[lo - start : hi - start] for lo, hi in spans]
        spans_rest = [_read_range(tree, path, rest, lo, hi) for lo, hi in spans] if rest else []
    cheap_part = spans_cheap[0] if len(spans_cheap) == 1 else ak.concatenate(spans_cheap)
    rest_part = None
    if spans_rest:
        rest_part = spans_rest[0] if len(spans_rest) == 1 else ak.concatenate(spans_rest)
    fields = {
        name: cheap_part[name] if name in cheap else rest_part[name] for name in selection.branches
    }
    return ak.zip(fields, depth_limit=1), skipped


def _call_plugin(selection: Selection, where: str, method: str, *args):
    try:
        return getattr(selection, method)(*args)
    except HepstreamError:
        raise
    except Exception as err:
        raise PluginError(f"{where}: {method}() raised {type(err).__name__}: {err}") from err


def _output_columns(selection: Selection, selected: Any, where: str) -> dict[str, Any]:
    columns = _call_plugin(selection, where, "output", selected)
    if not isinstance(columns, dict) or not columns:
        raise PluginError(f"{where}: output() must return a non-empty dict of column -> array")
    for name, column in columns.items():
        if len(column) != len(selected):
            raise PluginError(
                f"{where}: output() column {name!r} has {len(column)} entries, "
                f"expected {len(selected)} (one per selected event)"
            )
    return columns


def iterate_chunks(
    paths: list[str],
    selection: Selection,
    spec: JobSpec,
    files: list[FileReport],
    io_stats: dict[int, IOStats],
) -> Iterator[_Chunk]:
    """Chunks from a reader thread, prefetching ``spec.prefetch`` ahead."""
    out: queue.Queue = queue.Queue(maxsize=max(1, spec.prefetch))
    stop = threading.Event()
    reader = threading.Thread(
        target=_read_chunks,
        args=(paths, selection, spec, files, out, stop, io_stats),
        name="hepstream-reader",
        daemon=True,
    )
    reader.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def run_job(spec: JobSpec, progress: Callable[[int, int], None] | None = None) -> JobReport:
    """Run a job to completion; the report is written (``ok`` or ``failed``) before return.

    Raises the job's :class:`HepstreamError` after writing a ``failed`` report.
    """
    from hepstream.writer import OutputWriter

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
    conditions = None  # conditions hook: hepstream.conditions.job.JobConditions or None
    try:
        if is_remote(spec.output) or any(is_remote(p) for p in spec.inputs):
            from hepstream.io.xrootd import configure_client, warm_up

            configure_client(spec.stream.connection_retry, spec.stream.connection_window)
            # connect and log in to the first input's server while the plugin (and numba)
            # load: on the WAN that handshake is several round trips
            warm_up(next((p for p in spec.inputs if is_remote(p)), spec.output))
        selection = load_plugin(spec.plugin)
        # --- conditions hook 1/4: resolve the plugin's global tag before any output exists
        from hepstream.conditions.job import open_for_job

        conditions = open_for_job(
            selection, spec.conditions, spec.global_tag, spec.allow_open_tag,
            spec.conditions_cache, spec.plugin,
        )  # fmt: skip
        # --- end conditions hook 1/4
        remote_output = is_remote(spec.output)
        local_output = spec.output
        if remote_output:
            suffix = Path(spec.output.split("?")[0]).suffix
            local_output = str(Path(_scratch_dir()) / f"hepstream-output-{os.getpid()}{suffix}")
        writer = OutputWriter(local_output, tree=selection.tree)
        paths = expand_inputs(list(spec.inputs))
        report.files = [FileReport(path=p) for p in paths]
        first_columns = None
        for chunk in iterate_chunks(paths, selection, spec, report.files, io_stats):
            where = (
                f"plugin {spec.plugin} on {paths[chunk.file_index]} entries "
                f"{chunk.start}-{chunk.stop}"
            )
            # --- conditions hook 2/4: one select() per piece of the chunk with one IOV per
            # record; plugins without conditions get the whole chunk as one piece
            pieces = [(0, len(chunk.events), None)]
            if conditions is not None:
                pieces = conditions.pieces(chunk.events)
            t0 = time.perf_counter()
            n_sel, outputs = 0, []
            for lo, hi, payloads in pieces:
                events = chunk.events if hi - lo == len(chunk.events) else chunk.events[lo:hi]
                selection._hepstream_payloads = payloads
                mask = check_mask(
                    _call_plugin(selection, where, "select", events),
                    len(events),
                    f"{where}: select()",
                )
                if report.first_chunk_s == 0.0:  # the first selection result: compile included
                    report.first_chunk_s = round(time.perf_counter() - wall0, 4)
                selected = events[mask]
                outputs.append(columns := _output_columns(selection, selected, where))
                n_sel += int(np.count_nonzero(mask))
            selection._hepstream_payloads = None
            # --- end conditions hook 2/4
            report.select_s += time.perf_counter() - t0
            report.io_wait_s += chunk.io_wait
            for piece_columns in outputs:
                writer.write(piece_columns)
            if first_columns is None:
                first_columns = columns
            entry = report.files[chunk.file_index]
            entry.events_read += chunk.stop - chunk.start
            entry.events_selected += n_sel
            if entry.events_read == entry.entries:
                entry.status = "ok"
            report.events_read += chunk.stop - chunk.start
            report.events_preselected += len(chunk.events)
            report.clusters_skipped = sum(f.clusters_skipped for f in report.files)
            report.events_selected += n_sel
            if progress is not None:
                progress(chunk.stop - chunk.start, sum(f.entries for f in report.files))
        for entry in report.files:
            if entry.entries == 0:
                entry.status = "ok"
        # --- conditions hook 3/4: provenance in the output file's metadata
        if conditions is not None:
            writer.metadata.update(conditions.metadata())
        # --- end conditions hook 3/4
        report.output_bytes = writer.commit()
        if remote_output:
            try:
                from hepstream.io.xrootd import upload

                upload(local_output, spec.output)
            finally:
                Path(local_output).unlink(missing_ok=True)
        report.status = "ok"
    except BaseException as err:
        if writer is not None:
            writer.abort()
        report.status = "failed"
        if isinstance(err, HepstreamError):
            report.error = str(err)
        elif isinstance(err, KeyboardInterrupt):
            report.error = "interrupted"
        else:
            report.error = f"internal error: {type(err).__name__}: {err}"
        for entry in report.files:
            if entry.status == "pending" and entry.events_read:
                entry.status = "failed"
        raise
    finally:
        # --- conditions hook 4/4: global tag, IOV hash and lookup cost in the report
        if conditions is not None:
            report.conditions = conditions.report()
            conditions.close()
        # --- end conditions hook 4/4
        _collect_io(report, io_stats)
        report.select_s = round(report.select_s, 4)
        report.io_wait_s = round(report.io_wait_s, 4)
        report.peak_rss_mb = _peak_rss_mb()
        report.finish(time.perf_counter() - wall0, time.process_time() - cpu0)
        if spec.report:
            _write_report(report, spec.report)
    return report


def _collect_io(report: JobReport, io_stats: dict[int, IOStats]) -> None:
    for index, stats in sorted(io_stats.items()):
        report.bytes_read += stats.bytes_read
        report.requests += stats.requests
        report.vector_reads += stats.vector_reads
        report.cache_hits += stats.cache_hits
        report.cache_misses += stats.cache_misses
        report.cache_peak_bytes = max(report.cache_peak_bytes, stats.cache_peak)
        if index < len(report.files):
            entry = report.files[index]
            entry.bytes_read = stats.bytes_read
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


def _scratch_dir() -> str:
    return os.environ.get("HEPSTREAM_SCRATCH") or os.environ.get("TMPDIR") or "/tmp"


def _write_report(report: JobReport, target: str) -> None:
    """Write the report locally (atomic) or upload it to a ``root://`` location."""
    text = report.to_json()
    if not is_remote(target):
        try:
            write_json_atomic(target, text)
        except OSError as err:
            raise OutputError(f"cannot write report {target}: {err.strerror}") from None
        return
    from hepstream.io.xrootd import upload

    local = Path(_scratch_dir()) / f"hepstream-report-{os.getpid()}.json"
    write_json_atomic(local, text)
    try:
        upload(str(local), target)
    finally:
        local.unlink(missing_ok=True)


def validate_spec(spec: JobSpec) -> None:
    """Cheap checks before any I/O: a bad option fails in milliseconds."""
    if not spec.inputs:
        raise ConfigError("no input files given; pass one or more paths or root:// URLs")
    if spec.chunk_bytes < 1:
        raise ConfigError("chunk size must be at least 1 byte")
    if spec.fetch_ahead < 0 or spec.open_ahead < 1 or spec.decompress_threads < 1:
        raise ConfigError(
            "fetch_ahead must be >= 0, open_ahead and decompress_threads >= 1; "
            f"got {spec.fetch_ahead}, {spec.open_ahead}, {spec.decompress_threads}"
        )
