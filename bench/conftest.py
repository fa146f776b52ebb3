"""Session fixtures of the benchmark suites: cached samples, one xrootd daemon, WAN proxies."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.settings import BenchSettings, current_settings, data_dir

if TYPE_CHECKING:
    from hepstream.tools.serve import XRootDServer

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "examples" / "tau1n.py"
#: Links of the I/O suites: loopback straight to the daemon, then the WAN proxy per RTT.
LOOPBACK = "loopback"


def wan(rtt_ms: int) -> str:
    """Name of the link through the WAN proxy at ``rtt_ms``."""
    return f"wan{rtt_ms}ms"


@pytest.fixture(scope="session")
def settings() -> BenchSettings:
    return current_settings()


@pytest.fixture(scope="session")
def served_dir(settings: BenchSettings) -> Iterator[Path]:
    """World-traversable directory holding every sample this session reads."""
    from bench.data import ensure_samples, stage

    count = max(settings.files, settings.rss_files)
    cached = ensure_samples(settings, data_dir(), count)
    base = Path(tempfile.mkdtemp(prefix="hepstream-bench-"))
    base.chmod(0o755)
    try:
        stage(cached, base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_files(settings: BenchSettings, served_dir: Path) -> list[Path]:
    """The streaming/end-to-end sample, in order (local paths)."""
    from bench.data import sample_name

    return [served_dir / sample_name(settings, i) for i in range(settings.files)]


@pytest.fixture(scope="session")
def rss_files(settings: BenchSettings, served_dir: Path) -> list[Path]:
    """The 10xN peak-memory input (its first file is the N input)."""
    from bench.data import sample_name

    return [served_dir / sample_name(settings, i) for i in range(settings.rss_files)]


@pytest.fixture(scope="session")
def xrootd_server(served_dir: Path) -> Iterator[XRootDServer]:
    from hepstream.tools.serve import XRootDServer

    with XRootDServer(served_dir) as server:
        yield server


@contextlib.contextmanager
def proxied_links(
    server: XRootDServer, rtts_ms: tuple[int, ...], bandwidth_mbps: float | None
) -> Iterator[dict[str, str]]:
    """``root://host:port`` per link name to ``server``: loopback, then one WAN proxy (each
    in its own process) per RTT; the proxies are stopped on exit."""
    from bench.proxy import ProxyProcess

    target = (server.host, server.port)
    proxies = [ProxyProcess(target, rtt, bandwidth_mbps) for rtt in rtts_ms]
    try:
        urls = {LOOPBACK: server.url}
        for proxy in proxies:
            proxy.start()
            urls[wan(int(proxy.rtt_ms))] = f"root://{server.host}:{proxy.port}"
        yield urls
    finally:
        for proxy in proxies:
            proxy.close()


@pytest.fixture(scope="session")
def link_urls(settings: BenchSettings, xrootd_server: XRootDServer) -> Iterator[dict[str, str]]:
    """``root://host:port`` per link name; each WAN proxy runs in its own process."""
    with proxied_links(xrootd_server, settings.rtts_ms, settings.bandwidth_mbps) as urls:
        yield urls


def link_names(settings: BenchSettings) -> list[str]:
    """Every remote link, fastest first."""
    return [LOOPBACK, *(wan(rtt) for rtt in settings.rtts_ms)]


def rtt_of(link: str) -> float | None:
    """Emulated RTT of a link name; None for direct loopback or local disk."""
    return float(link.removeprefix("wan").removesuffix("ms")) if link.startswith("wan") else None
