"""A site's XCache: Debian's ``xrootd`` as a caching proxy in front of the central storage.

XCache is XRootD's proxy file cache (``libXrdPss`` forwards to the origin, ``libXrdPfc`` keeps
the blocks it fetched on the site's disk). Jobs at a site read ``root://cache//data/...``
instead of ``root://central//data/...``; the first read of a block crosses the WAN once, every
later read of it is served from the site's disk, and a fully cached file is served with the
origin gone.

The cache authenticates to the origin with ``sss`` (its own key, which the origin's keytab
must hold) and asks its own clients for ``sss`` like ``hepstream serve`` does. The limits,
with their reasons:

- ``block`` 1 MiB: the unit fetched from the origin and kept. hepstream's reads are exact
  plans of baskets and pages, mostly 64 KiB-2 MiB; 1 MiB blocks keep the over-read small and
  the ``.cinfo`` bitmaps short. Partial reads and vector reads fetch only the blocks they
  touch (there is no block prefetch: ``pfc.prefetch 0``; a plan already asks for what it needs).
- ``ram`` 1 GiB: a cap on blocks in flight in memory, not an allocation. xrootd 5.5 refuses
  less. When it is exhausted, 5.5.3 fails reads of >= 2 MiB and returns 0 bytes for smaller
  ones (xrootd#2308): hepstream's client checks every read's length and never takes a short
  read for data (:mod:`hepstream.io.xrootd`).
- ``disk`` 0.90: purging starts when the cache's filesystem is fuller than this and removes
  least recently used files down to 5 points below it. Keep the cache on its own filesystem:
  with that filesystem full, xrootd 5.5.3 keeps fetching from the origin without storing.
- ``connect_timeout`` 10 s, one connection retry, ``request_timeout`` 20 s to the origin:
  XrdCl's defaults (minutes; 30 min for a request) would make an uncached read with the
  origin down or stalled hang; this way it fails within ~20 s and the job says so (or skips
  the file with ``--skip-bad-files``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from hepstream.errors import ConfigError, InputError
from hepstream.io.auth import check_keytab
from hepstream.io.config import MIB, parse_size
from hepstream.io.urls import split_url
from hepstream.tools.serve import (
    LOOPBACK_ONLY,
    ServerConfig,
    XRootDServer,
    _can,
    _give,
    _is_loopback,
    private_copy,
    security_lines,
)

#: The least ``pfc.ram`` xrootd 5.5 accepts.
MIN_RAM = 1 << 30


@dataclass(frozen=True)
class CacheLimits:
    """What the cache may use: block size, RAM for blocks in flight, disk watermark."""

    block: int = 1 * MIB
    ram: int = MIN_RAM
    #: Fraction of the cache filesystem above which the cache purges (LRU) down to
    #: ``disk - 0.05``.
    disk: float = 0.90
    #: Seconds for one connection attempt to the origin.
    connect_timeout: int = 10
    #: Connection attempts to the origin after the first.
    connection_retry: int = 1
    #: Seconds the cache waits for the origin to answer one request before it fails the
    #: client's read: below a job's own per-request timeout (30 s), so a job hears "the
    #: origin did not answer" from the cache instead of timing out on it.
    request_timeout: int = 20

    def __post_init__(self) -> None:
        if self.ram < MIN_RAM:
            raise ConfigError(
                f"cache RAM {self.ram} bytes is below the 1g xrootd accepts (pfc.ram is a cap, "
                f"not an allocation): use --ram 1g or more"
            )
        if not 0.1 <= self.disk <= 0.99:
            raise ConfigError(
                f"cache disk watermark {self.disk:.2f} must be between 10% and 99% of the "
                f"cache filesystem, e.g. --disk 90%"
            )
        if self.block < 64 * 1024 or self.block & (self.block - 1):
            raise ConfigError(f"cache block {self.block} must be a power of two >= 64k, e.g. 1M")


def parse_fraction(text: str | float) -> float:
    """``0.8``, ``80%`` -> 0.8."""
    raw = str(text).strip()
    try:
        return float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a fraction: use e.g. 90% or 0.9") from None


def parse_limits(
    ram: str | int = MIN_RAM, disk: str | float = 0.90, block: str | int = MIB
) -> CacheLimits:
    """:class:`CacheLimits` from command-line spellings (``1g``, ``90%``, ``1M``)."""
    return CacheLimits(block=parse_size(block), ram=parse_size(ram), disk=parse_fraction(disk))


class SiteCache(XRootDServer):
    """An ``xrootd`` caching proxy for ``origin``, keeping blocks under ``cache_dir``.

    Parameters
    ----------
    origin
        The central storage, ``root://host:port``.
    cache_dir
        Where cached files live (their ``.cinfo`` bitmaps beside them); it survives restarts,
        so a restarted cache serves what it held.
    limits
        Block size, RAM and disk bounds (:class:`CacheLimits`).
    keytab
        Keys of the site's users who may read through the cache; default: the caller's own.
    origin_keytab
        The key the cache presents to the origin; default: ``keytab``.
    port, host, admin_dir, cleanup, config, auth
        As for :class:`~hepstream.tools.serve.XRootDServer`.
    """

    def __init__(
        self,
        origin: str,
        cache_dir: str | Path,
        *,
        limits: CacheLimits | None = None,
        keytab: str | Path | None = None,
        origin_keytab: str | Path | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        admin_dir: str | Path | None = None,
        cleanup: bool = True,
        config: ServerConfig | None = None,
        auth: bool = True,
    ) -> None:
        super().__init__(
            cache_dir,
            port=port,
            host=host,
            admin_dir=admin_dir,
            cleanup=cleanup,
            config=config,
            auth=auth,
            keytab=keytab,
        )
        server, _ = split_url(origin.rstrip("/") + "//")
        self.origin = server
        self.limits = limits or CacheLimits()
        self.origin_keytab = Path(origin_keytab) if origin_keytab is not None else None
        self._origin_secret: Path | None = None

    @property
    def cache_dir(self) -> Path:
        return self.data_dir

    def _checked_data_dir(self, ident: tuple[int, set[int]] | None) -> Path:
        cache = self.data_dir
        cache.mkdir(parents=True, exist_ok=True)
        cache = cache.resolve()
        if not os.listdir(cache):
            _give(cache, ident)
        if not _can(cache, ident, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(
                f"cannot cache in {self.data_dir}: not writable by the '{self.config.user}' user "
                f"the daemon runs as; chown {self.config.user} it and make its parents a+x"
            )
        return cache

    def _config(self, ident: tuple[int, set[int]] | None, data_dir: Path) -> str:
        assert self.admin_dir is not None
        hostport = self.origin.split("://", 1)[1]
        lim = self.limits
        lines = [
            f"xrd.port {self.port or 'any'}",
            "xrd.network nodnr",
            "all.export /data r/o",
            f"oss.localroot {data_dir}",
            f"all.adminpath {self.admin_dir}",
            f"all.pidpath {self.admin_dir}",
            "ofs.osslib libXrdPss.so",
            "pss.cachelib libXrdPfc.so",
            f"pss.origin {hostport}",
            f"pss.setopt ConnectTimeout {lim.connect_timeout}",
            f"pss.setopt ConnectionRetry {lim.connection_retry}",
            f"pfc.blocksize {lim.block // 1024}k",
            f"pfc.ram {max(1, lim.ram >> 30)}g",
            f"pfc.diskusage {lim.disk - 0.05:.2f} {lim.disk:.2f}",
            "pfc.prefetch 0",
        ]
        if _is_loopback(self.host):
            lines += LOOPBACK_ONLY
        if self.auth:
            lines += security_lines(*self._keys(ident))
            origin_key = self.origin_keytab or self.keytab
            assert origin_key is not None  # _keys settled the keytab
            check_keytab(origin_key)
            self._origin_secret = private_copy(origin_key, self.admin_dir / "origin.keytab", ident)
        return "\n".join([*lines, ""])

    def _environment(self) -> dict[str, str] | None:
        env = dict(os.environ)
        # the proxy's XrdCl reads these at load: 5.5's pss.setopt RequestTimeout left a read
        # of a stalled origin hanging until the client's stream gave up (60 s), the variable
        # fails it at 20 s; deadlines are checked every second, not every 15 s
        env["XRD_REQUESTTIMEOUT"] = str(self.limits.request_timeout)
        env["XRD_TIMEOUTRESOLUTION"] = "1"
        if self._origin_secret is not None:
            # the proxy's own XrdCl logs in to the origin with sss and this key
            env.update(XrdSecPROTOCOL="sss", XrdSecSSSKT=str(self._origin_secret))
            env.pop("XrdSecsssKT", None)
        return env

    def __repr__(self) -> str:
        return f"SiteCache({self.origin!r}, {str(self.data_dir)!r}, url={self.url!r})"


@dataclass(frozen=True)
class CachedFile:
    """One file as the cache's own ``.cinfo`` record describes it (via ``xrdpfc_print``)."""

    path: str
    size: int
    block: int
    blocks: int
    blocks_cached: int
    #: Bytes the cache served from its disk or RAM, fetched from the origin into blocks, and
    #: passed straight through (RAM full), over the access records kept (``pfc.acchistorysize``,
    #: the last 20 opens by default). xrdpfc_print gives kB: the sums are good to 1 KiB a record.
    hit: int = 0
    miss: int = 0
    bypass: int = 0

    @property
    def bytes_cached(self) -> int:
        """Bytes of the file held on the cache's disk (whole blocks; the last may be short)."""
        if self.blocks_cached == self.blocks:
            return self.size
        return min(self.size, self.blocks_cached * self.block)

    @property
    def complete(self) -> bool:
        return self.blocks_cached == self.blocks


@dataclass(frozen=True)
class CacheStatus:
    """What a cache directory holds, summed over its files."""

    directory: str
    files: tuple[CachedFile, ...]

    @property
    def bytes_cached(self) -> int:
        return sum(f.bytes_cached for f in self.files)

    @property
    def blocks(self) -> int:
        return sum(f.blocks for f in self.files)

    @property
    def blocks_cached(self) -> int:
        return sum(f.blocks_cached for f in self.files)

    @property
    def complete_files(self) -> int:
        return sum(f.complete for f in self.files)

    @property
    def bytes_served(self) -> int:
        """Bytes the cache's clients read, over the access records kept."""
        return sum(f.hit + f.miss + f.bypass for f in self.files)

    @property
    def bytes_fetched(self) -> int:
        """Bytes the cache fetched from the origin: the blocks it holds and what it passed
        straight through."""
        return self.bytes_cached + sum(f.bypass for f in self.files)

    @property
    def hit_ratio(self) -> float | None:
        """1 - fetched / served: the share of what clients read that did not cross the WAN
        for them. XrdPfc's own ``B_hit`` counts bytes found in RAM while a block was still
        arriving for the same client as hits, which makes a first, cold read look 90 % hit;
        this ratio is 0 for a cold pass and tends to 1 for repeats. None before a read."""
        served = self.bytes_served
        return max(0.0, 1 - self.bytes_fetched / served) if served else None

    def asdict(self) -> dict[str, object]:
        return {
            "directory": self.directory,
            "files": len(self.files),
            "complete_files": self.complete_files,
            "bytes_cached": self.bytes_cached,
            "blocks": self.blocks,
            "blocks_cached": self.blocks_cached,
            "bytes_served": self.bytes_served,
            "bytes_fetched": self.bytes_fetched,
            "hit_ratio": self.hit_ratio,
            "per_file": [
                {
                    "path": f.path,
                    "size": f.size,
                    "bytes_cached": f.bytes_cached,
                    "blocks": f.blocks,
                    "blocks_cached": f.blocks_cached,
                    "hit": f.hit,
                    "miss": f.miss,
                    "bypass": f.bypass,
                }
                for f in self.files
            ],
        }


_HEAD = re.compile(r"file_size (\d+) kB, buffer_size (\d+) kB, n_blocks (\d+), n_downloaded (\d+)")
_ACCESS = re.compile(r"^\d+\s+\S+\s+\S+\s+\S+\s+\d+\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def parse_pfc_print(path: str, text: str) -> CachedFile:
    """A :class:`CachedFile` from ``xrdpfc_print`` output (xrootd 5.5's format; sizes in kB)."""
    head = _HEAD.search(text)
    if head is None:
        raise InputError(f"cannot read the cache record of {path}: unexpected xrdpfc_print output")
    kb_size, kb_block, blocks, cached = (int(g) for g in head.groups())
    hit = miss = bypass = 0
    for line in text.splitlines():
        access = _ACCESS.match(line)
        if access:
            h, m, b = (int(g) * 1024 for g in access.groups())
            hit, miss, bypass = hit + h, miss + m, bypass + b
    return CachedFile(
        path=path,
        size=kb_size * 1024,
        block=kb_block * 1024,
        blocks=blocks,
        blocks_cached=cached,
        hit=hit,
        miss=miss,
        bypass=bypass,
    )


def cache_status(directory: str | Path) -> CacheStatus:
    """What ``directory`` (a :class:`SiteCache`'s ``cache_dir``) holds, from each file's
    ``.cinfo`` record (read with Debian's ``xrdpfc_print``)."""
    root = Path(directory)
    if not root.is_dir():
        raise ConfigError(
            f"cache directory {directory} does not exist; give the --dir of the cache"
        )
    files = []
    for cinfo in sorted(root.rglob("*.cinfo")):
        data = cinfo.with_suffix("")
        rel = "/" + str(data.relative_to(root))
        record = parse_pfc_print(rel, pfc_print(cinfo))
        if (
            record.complete and data.exists()
        ):  # exact; a partial copy's size is its last block's end
            record = replace(record, size=data.stat().st_size)
        files.append(record)
    return CacheStatus(str(root), tuple(files))


def pfc_print(cinfo: Path) -> str:
    """``xrdpfc_print`` of one ``.cinfo`` file (the cache's own record of a cached file)."""
    try:
        done = subprocess.run(
            ["xrdpfc_print", str(cinfo)], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        raise ConfigError("xrdpfc_print not found: apt-get install -y xrootd-server") from None
    if done.returncode != 0:
        raise InputError(f"xrdpfc_print {cinfo} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout
