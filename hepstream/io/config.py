"""Streaming policy: every I/O tuning number lives here, with why it has its default."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from hepstream.errors import ConfigError
from hepstream.io.urls import XROOTD_SCHEMES

KIB = 1 << 10
MIB = 1 << 20

# XRootD protocol limits for one kXR_readv request (XProtocol.hh: maxRvecsz, maxRVdsz).
XRD_MAX_VECTOR_ELEMENTS = 1024
XRD_MAX_VECTOR_ELEMENT_BYTES = 2 * MIB - 16


#: The environment variable a site sets to send its jobs' inputs through its cache.
SITE_CACHE_ENV = "HEPSTREAM_SITE_CACHE"


def site_cache_url(value: str | None, where: str) -> str | None:
    """``value`` as ``root://host:port`` (None for none or empty); a ConfigError naming
    ``where`` (the setting it came from) for anything else, e.g. a path after the port."""
    text = (value or "").strip()
    if not text:
        return None
    parts = urlsplit(text)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number, or out of range
        port = None
    if (
        parts.scheme not in XROOTD_SCHEMES
        or not parts.hostname
        or port is None
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
    ):
        raise ConfigError(
            f"{where}={value!r} is not a site cache address: write root://host:port, "
            f"e.g. root://xcache.example.org:1094"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _site_cache_from_environment() -> str | None:
    return site_cache_url(os.environ.get(SITE_CACHE_ENV), SITE_CACHE_ENV)


@dataclass(frozen=True)
class StreamConfig:
    """How a job reads bytes: read-ahead window, cache bound, request shaping.

    Defaults follow the paper's tuned XRootD client (1 MB read-ahead, 10 MB cache).
    """

    #: Bytes fetched past a small read no plan holds (a file's metadata): one round trip
    #: brings the metadata that follows, as the paper's 1 MB read-ahead did.
    readahead: int = 1 * MIB
    #: Upper bound on bytes held by the read-ahead cache; never exceeded (10 MB in the paper).
    cache: int = 10 * MIB
    #: Two wanted byte ranges closer than this are fetched as one: a small over-read
    #: is cheaper than one more vector element or round trip.
    coalesce_gap: int = 64 * KIB
    #: Vector-read requests in flight at once per file; hides WAN latency without
    #: flooding one server with one job's requests (8 x 1 MiB keeps a 30 ms link busy).
    parallel_requests: int = 8
    #: Upper bound on the bytes of one vector read: a chunk's spans go out as several
    #: parallel requests instead of one long one, which keeps a high-latency link busy
    #: (docs/performance.md, streaming reads).
    max_request_bytes: int = 1 * MIB
    #: Seconds before one XRootD operation (open, read, vector read) is abandoned and
    #: counted as one failed try. A healthy server answers a 1 MiB read in well under a
    #: second even over a 30 ms WAN; 30 s rides out a busy disk, and a stalled server costs
    #: at most ``(retries + 1) x timeout`` plus the backoff before the job says so.
    timeout: int = 30
    #: Tries after the first for a read or open that failed for a transient reason (server
    #: restart, connection reset, operation expired): the file is reopened on a fresh
    #: connection and the same request sent again. A restarted xrootd is serving again
    #: within a couple of seconds; three retries over 1 + 2 + 4 s of backoff cover that
    #: with room to spare, and a server that is gone is reported within about two minutes.
    retries: int = 3
    #: Seconds before the first retry, doubled before each next one (1, 2, 4 s): long
    #: enough for a daemon to come back up, short enough not to stretch a blip.
    retry_backoff: float = 1.0
    #: Connection attempts to a server; the client's default (5 x 120 s window) makes a
    #: mistyped host hang for minutes, two quick tries still ride out a server restart.
    connection_retry: int = 2
    #: Seconds one connection attempt may take before the next one.
    connection_window: int = 10
    #: The site's XCache, ``root://host:port``: every remote input is read through it (the
    #: same path on the cache's server), outputs never are. A site setting, so the analyst
    #: changes no URL: ``$HEPSTREAM_SITE_CACHE`` (empty: none), a cloud's ``site_cache``.
    site_cache: str | None = field(default_factory=_site_cache_from_environment)
    #: A site cache that refuses or does not answer: read from the origin instead (and say
    #: so in the report). A cache is an optimization; False makes its outage fail the job.
    cache_fallback: bool = True

    def __post_init__(self) -> None:
        """Refuse a negative size, timeout or count, a policy that could never read, and a
        site cache that is not ``root://host:port``."""
        object.__setattr__(
            self, "site_cache", site_cache_url(self.site_cache, "stream option site_cache")
        )
        for name in _NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise ConfigError(f"stream option {name}={getattr(self, name)} must be >= 0")
        if self.parallel_requests < 1:
            raise ConfigError("stream option parallel_requests must be >= 1")
        if self.max_request_bytes < 1:
            raise ConfigError("stream option max_request_bytes must be >= 1 byte")


#: The options that must be >= 0.
_NON_NEGATIVE = (
    "readahead",
    "cache",
    "coalesce_gap",
    "max_request_bytes",
    "timeout",
    "retries",
    "retry_backoff",
)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "k": KIB, "m": MIB, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from ``1048576``, ``1M``, ``1MiB``, ``10MB`` or ``256k`` (binary units)."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if match is None:
        raise ConfigError(f"cannot read size {text!r}: use bytes or a unit, e.g. 1M, 256k, 10MiB")
    number, unit, _ = match.groups()
    return int(float(number) * _UNIT[unit.lower()])
