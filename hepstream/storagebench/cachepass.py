"""``hepstream bench storage --site-cache``: a cold and a warm pass through a site's XCache.

The job's read pattern is planned at the origin (the URL given, as a job's inputs name it), so
the cache sees the file first in the cold pass; then ``jobs`` readers replay the whole pattern
exactly once through the cache (the cold pass), and once more (the warm pass). With the cache's
directory (``--cache-dir``, on the cache host) each pass also gets the **origin's share**:
bytes the cache fetched from the origin for the file during the pass, by its own ``.cinfo``
record, over the bytes it served the readers. Without it that share is unknown: only the cache
knows what it fetched.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hepstream.errors import ConfigError, InputError
from hepstream.io import StreamConfig, is_remote
from hepstream.io.urls import split_url, via_cache
from hepstream.storagebench.model import BenchConfig, LevelResult, ReadPattern
from hepstream.storagebench.sweep import run_level
from hepstream.tools.sitecache import CachedFile, CacheStatus, parse_pfc_print, pfc_print

#: How long the cache's record of the file must stay unchanged before it is read as final,
#: and the most to wait for that. XrdPfc writes a file's ``.cinfo`` when its last reader
#: closes and its write queue has drained, which lags the readers' exit a little.
SETTLE_S, SETTLE_MAX_S = 1.0, 15.0

PASSES = ("cold", "warm")


@dataclass(frozen=True)
class CachePass:
    """One pass of every reader through the cache, and what the cache fetched meanwhile."""

    name: str
    level: LevelResult
    #: Bytes the cache fetched from the origin for this file during the pass (its ``.cinfo``
    #: record after minus before); None without the cache's directory.
    origin_bytes: int | None = None

    @property
    def served_bytes(self) -> int:
        """Bytes the cache delivered to the readers (their own count). Not the cache's access
        records: XrdPfc keeps only the last 20 opens of a file, fewer than a pass of many
        readers makes."""
        return self.level.bytes_read

    @property
    def origin_share(self) -> float | None:
        """Fetched from the origin / served: ~1 for a cold pass of one reader (above 1 when
        the reads touch a small part of each 1 MiB block), 1/N for N readers sharing a cold
        file, 0 when warm. None when unknown."""
        if self.origin_bytes is None or not self.served_bytes:
            return None
        return self.origin_bytes / self.served_bytes

    def asdict(self) -> dict[str, Any]:
        return {
            "pass": self.name,
            **self.level.asdict(),
            "served_bytes": self.served_bytes,
            "origin_bytes": self.origin_bytes,
            "origin_share": self.origin_share,
        }


@dataclass(frozen=True)
class CacheRun:
    """The cold and the warm pass of one file through one cache."""

    url: str
    cache_url: str
    cache_dir: str | None
    passes: tuple[CachePass, ...]
    #: Share of the file's blocks the cache held before the cold pass (0: really cold);
    #: None without the cache's directory.
    cached_before: float | None = None

    def by_name(self, name: str) -> CachePass:
        return next(p for p in self.passes if p.name == name)

    @property
    def warm_vs_cold(self) -> float | None:
        """Warm pass MB/s over cold pass MB/s."""
        cold, warm = self.by_name("cold").level, self.by_name("warm").level
        return warm.aggregate_mb_s / cold.aggregate_mb_s if cold.aggregate_mb_s else None


def cache_record(cache_dir: Path, path: str) -> CachedFile | None:
    """The cache's own record of ``path`` (``/data/x.root``) under ``cache_dir``, or None
    when it holds nothing of it yet."""
    data = cache_dir / path.lstrip("/")
    cinfo = data.with_name(data.name + ".cinfo")
    if not cinfo.exists():
        return None
    record = parse_pfc_print(path, pfc_print(cinfo))
    if record.complete and data.exists():  # exact; the record gives kB
        record = replace(record, size=data.stat().st_size)
    return record


def fetched(record: CachedFile | None) -> int:
    """Bytes the cache has fetched from the origin for one file: its blocks on disk and what
    it passed straight through (:attr:`CacheStatus.bytes_fetched`, for this file)."""
    return 0 if record is None else CacheStatus("", (record,)).bytes_fetched


def settled_record(
    cache_dir: Path, path: str, settle: float = SETTLE_S, wait: float = SETTLE_MAX_S
) -> CachedFile | None:
    """The record once it has stayed the same for ``settle`` seconds (at most ``wait``)."""
    deadline = time.monotonic() + wait
    last = cache_record(cache_dir, path)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(min(0.25, settle))
        now = cache_record(cache_dir, path)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle:
            break
    return last


def check_cache_options(url: str, cache_dir: Path | None) -> Path | None:
    """Refuse what a cache run cannot do: a local file, a cache directory that is not one."""
    if not is_remote(url):
        raise ConfigError(
            f"--site-cache reads a root:// file through the cache, not {url}; give the file's "
            f"URL at the origin, as a job's input names it"
        )
    split_url(url)  # a clear line for a URL that is not XRootD's
    if cache_dir is None:
        return None
    if not cache_dir.is_dir():
        raise ConfigError(
            f"--cache-dir {cache_dir} is not a directory: give the cache's --dir, on the cache "
            f"host (or leave it out: the origin's share is then unknown)"
        )
    return cache_dir


def run_cache_passes(
    pattern: ReadPattern,
    stream: StreamConfig,
    bench: BenchConfig,
    site_cache: str,
    jobs: int,
    cache_dir: Path | None = None,
    on_pass: Callable[[CachePass], None] | None = None,
) -> CacheRun:
    """A cold then a warm pass of ``jobs`` readers through ``site_cache``: each reader sends
    every request of ``pattern`` (planned at the origin) once, within ``bench.duration``."""
    cache_url = via_cache(pattern.url, site_cache)
    _, path = split_url(pattern.url)
    requests = len(pattern.requests)
    if requests > bench.max_requests:
        raise ConfigError(
            f"one pass over {pattern.url} is {requests} requests, above --max-requests "
            f"{bench.max_requests}: raise --max-requests to at least {requests}"
        )
    one_pass = replace(bench, max_requests=requests)
    through = replace(pattern, url=cache_url)
    before = cache_record(cache_dir, path) if cache_dir is not None else None
    cached_before = None
    if cache_dir is not None:
        cached_before = before.blocks_cached / before.blocks if before and before.blocks else 0.0
    passes = []
    for name in PASSES:
        level = run_level(through, stream, one_pass, jobs)
        if level.requests < jobs * requests:
            raise InputError(
                f"the {name} pass through {site_cache} did not finish within {bench.duration:g} s "
                f"({level.requests} of {jobs * requests} requests): raise --duration"
            )
        origin = None
        if cache_dir is not None:
            after = settled_record(cache_dir, path)
            if after is None:
                raise ConfigError(
                    f"{cache_dir} holds no record of {path} after reading it through "
                    f"{site_cache}: is it that cache's --dir, on this host?"
                )
            origin = fetched(after) - fetched(before)
            before = after
        done = CachePass(name, level, origin)
        passes.append(done)
        if on_pass is not None:
            on_pass(done)
    return CacheRun(
        pattern.url,
        cache_url,
        None if cache_dir is None else str(cache_dir),
        tuple(passes),
        cached_before,
    )
