"""A multi-site test bed on loopback: one central origin, sites behind emulated WAN links,
each site with its own XCache.

::

    origin (xrootd, /data, every read traced)
      ^-- WanProxy(site A: rtt, bandwidth) <-- SiteCache A <-- site A's jobs
      ^-- WanProxy(site B: ...)            <-- SiteCache B <-- site B's jobs

A site's jobs reach the cache on loopback (a cache is on the site's LAN) and the origin only
across their site's link, so the proxy's byte count is what the site pulled over the WAN and
the origin's traced reads are what it served, by its own count. :meth:`SiteBed.direct_url`
names the same file across the site's link without the cache: the "no cache" side.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hepstream.procs import Service
from hepstream.tools.serve import XRootDServer
from hepstream.tools.sitecache import CacheLimits, SiteCache
from tests.support.wanproxy import WanProxy


@dataclass(frozen=True)
class SiteLink:
    """One site's WAN link to the central storage."""

    name: str
    rtt_ms: float = 30.0
    bandwidth_mbps: float | None = None


@dataclass
class Site:
    """A running site: its link to the origin, its cache, and a cacheless link for comparison."""

    link: SiteLink
    wan: WanProxy
    cache: SiteCache
    direct: WanProxy = field(repr=False)

    @property
    def name(self) -> str:
        return self.link.name

    def cache_url(self, name: str) -> str:
        """``/data/name`` through this site's cache."""
        return self.cache.data_url(name)

    def wan_bytes(self) -> int:
        """Bytes this site's cache pulled across its WAN link so far."""
        return self.wan.stats.bytes_down


class SiteBed(Service):
    """Start an origin serving ``data_dir`` and one cache per :class:`SiteLink`; stop all."""

    def __init__(
        self,
        data_dir: str | Path,
        links: list[SiteLink],
        *,
        workdir: str | Path | None = None,
        limits: CacheLimits | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.links = links
        self.limits = limits
        self._workdir_given = workdir is not None
        self.workdir = Path(workdir) if workdir is not None else None
        self.origin = XRootDServer(self.data_dir, trace_reads=True)
        self.sites: dict[str, Site] = {}
        self._stack = contextlib.ExitStack()

    def start(self) -> SiteBed:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="hepstream-sitebed-"))
        self.workdir.chmod(0o755)
        try:
            self._stack.enter_context(self.origin)
            for link in self.links:
                self.sites[link.name] = self._start_site(link)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_site(self, link: SiteLink) -> Site:
        assert self.workdir is not None
        target = ("127.0.0.1", self.origin.port)
        wan = self._stack.enter_context(
            WanProxy(target, rtt_ms=link.rtt_ms, bandwidth_mbps=link.bandwidth_mbps)
        )
        direct = self._stack.enter_context(
            WanProxy(target, rtt_ms=link.rtt_ms, bandwidth_mbps=link.bandwidth_mbps)
        )
        cache_dir = self.workdir / link.name / "cache"
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        cache_dir.parent.chmod(0o755)
        cache = SiteCache(f"root://127.0.0.1:{wan.port}", cache_dir, limits=self.limits)
        self._stack.enter_context(cache)
        return Site(link, wan, cache, direct)

    def stop(self) -> None:
        self._stack.close()
        self.sites.clear()
        if not self._workdir_given and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def site(self, name: str) -> Site:
        return self.sites[name]

    def origin_url(self, name: str) -> str:
        """``/data/name`` at the origin, with no link in between (the 0 ms side)."""
        return self.origin.data_url(name)

    def direct_url(self, site: str, name: str) -> str:
        """``/data/name`` at the origin across ``site``'s link, no cache."""
        return f"root://127.0.0.1:{self.sites[site].direct.port}//data/{name}"

    def origin_bytes(self) -> int:
        """Bytes the origin has read for its clients so far, by its own trace."""
        return self.origin.read_bytes()
