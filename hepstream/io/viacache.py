"""A remote input read through the site's cache (XCache), and what happens when that fails.

A site sets ``stream.site_cache`` (``$HEPSTREAM_SITE_CACHE``, a cloud's ``site_cache``); the
analyst's URLs stay the origin's. :func:`route` decides where one input is opened, and
:class:`RemoteInput` reads it:

- **cache down** (it refuses a connection, does not accept one within 2 s
  (:data:`~hepstream.io.xrootd.PROBE_TIMEOUT`: a cache on the site's LAN that cannot
  accept a connection that fast would not serve reads either), or stopped answering
  earlier in this job): the input is read from the origin, the report's
  ``cache_fallback`` says why, and the cache is passed over for the rest of the job.
  With ``stream.cache_fallback`` false the job fails naming the cache and the setting.
  A plain TCP connect decides "down" at once: the XRootD client would spend
  its whole connection window on a refused port (10 s with the job's settings, measured)
  and the read's retry policy on top.
- **the cache answers but fails a request** (its own error, or no answer within the stream
  timeout): if the origin refuses a connection too, the cache could not reach it: one line
  naming both, no fallback (the origin is down; ``--skip-bad-files`` skips the file). Before
  any input is read, a stat through the cache that fails so fails the job (or skips the
  file) at once. If the origin answers, that request and the rest of the file are read at
  the origin, counted as the origin's bytes, and ``cache_fallback`` says why.
- **a short answer** (XRootD 5.5.3's XCache answers 0 bytes when its RAM is exhausted,
  xrootd#2308): asked once more at the origin, opened on demand and kept for the rest of the
  file's reads; a short answer there too fails the job (no data is ever used).

Each input reaches the cache on a connection of its own (:func:`own_link`): an xrootd
server handles one request at a time per connection, and a request for an uncached file
with the origin down holds the cache's answer for ~40 s (its origin connect timeouts), so a
shared connection would hold every cached file of the job behind it (measured: the open of
a fully cached file waited 39 s on a shared connection, 0.01 s on its own).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from hepstream.errors import InputError, ServerUnavailable
from hepstream.io.config import StreamConfig
from hepstream.io.urls import is_remote, split_url, via_cache
from hepstream.io.xrootd import (
    RequestRefused,
    ShortRead,
    StorageUnavailable,
    XRootDBackend,
    gone,
    mark_gone,
    probe,
    stat_path,
)

#: kXR error codes that are the file's (or the key's) own: the origin would answer the
#: same, so they pass through a cache unchanged (not found, not authorized, a directory).
_FILES_OWN = frozenset({3010, 3011, 3016})

#: Why each cache server this process passed over was found down, while :func:`gone`.
_DOWN: dict[str, str] = {}
_DOWN_LOCK = threading.Lock()


class CacheUnavailable(StorageUnavailable):
    """The site cache is down and ``stream.cache_fallback`` is false: not the file's
    fault, so ``--skip-bad-files`` does not skip it."""


class OriginUnreachable(ServerUnavailable):
    """The site cache answers but could not serve the file from its origin, which is down:
    the file's uncached bytes cannot be read now (``--skip-bad-files`` skips it; a failed
    job exits 75, it may succeed later)."""


def _mark_down(server: str, why: str) -> None:
    with _DOWN_LOCK:
        _DOWN[server] = why
    mark_gone(server)


def _down(server: str) -> str | None:
    """Why the cache ``server`` was passed over in this job, or None if it was not."""
    if not gone(server):  # forget_gone() at a job's start gives it another chance
        return None
    with _DOWN_LOCK:
        return _DOWN.get(server, f"site cache {server} stopped answering")


def cache_down(cache: str) -> str | None:
    """Why the site ``cache`` is down ("site cache X refused the connection"), marked so
    for the rest of the job; None if it accepts a connection."""
    problem = probe(cache)
    if problem is None:
        return None
    why = f"site cache {cache} {problem}"
    _mark_down(cache, why)
    return why


def origin_unreachable(cache: str, location: str, detail: str) -> OriginUnreachable | None:
    """The error for a request about ``location`` that the live site ``cache`` failed
    (``detail``: how) when the origin refuses a connection from here too; None when the
    origin answers (then the cache failed on its own)."""
    origin = _server(location)
    problem = probe(origin)
    if problem is None:
        return None
    # nothing here waits on the origin again, and a failed job does not wait on the
    # handles the cache holds open for it
    mark_gone(origin)
    error = OriginUnreachable(
        f"site cache {cache} could not reach the origin {origin} for {location} (the cache "
        f"answers; the origin {problem} here too): the file's uncached bytes cannot be read; "
        f"bring the origin back and run the job again, or skip the file with --skip-bad-files"
    )
    error.detail = detail
    return error


def own_link(url: str) -> str:
    """``url`` on an XRootD connection of its own: the client keeps one connection per
    ``user@host:port``, so a user name made from the path gives each file its own (the
    server takes the identity from the sss key, not from this name)."""
    server, path = split_url(url)
    scheme, address = server.split("://", 1)
    tag = "hs" + hashlib.sha1(path.encode()).hexdigest()[:12]
    return f"{scheme}://{tag}@{address.rpartition('@')[2]}/{path}"


def cache_link(location: str, cache: str | None) -> str:
    """The URL ``location`` is read at through ``cache``, on its own connection (the one a
    job warms up while its plugin loads); ``location`` itself without a cache."""
    if not cache or not is_remote(location):
        return location
    return own_link(via_cache(location, _server(cache)))


@dataclass(frozen=True)
class Route:
    """Where one input is read: ``url``, and ``origin`` (the input's own URL) when ``url``
    goes through a cache; ``fallback`` says why a cache that was set is not used."""

    url: str
    origin: str | None = None
    fallback: str | None = None


def route(location: str, cache: str | None, fallback: bool) -> Route:
    """Where to read ``location``: through the site ``cache`` when it is set and answers
    (on a connection of its own), else from the origin (``fallback``) or a
    :class:`CacheUnavailable`."""
    if not cache or not is_remote(location):
        return Route(location)
    server = _server(cache)
    why = _down(server) or cache_down(server)
    if why is None:
        return Route(cache_link(location, server), origin=location)
    if not fallback:
        raise _unavailable(why)
    return Route(location, fallback=f"{why}; read from the origin")


def check_input(location: str, config: StreamConfig, timeout: int) -> InputError | None:
    """Why the remote ``location`` cannot be read, asked before any input is: not at its
    server, or (through a live site cache) its origin is down; None if it can be, or if
    the server could not say (then the open's retry policy tells). Asked where it will be
    read: a cache answers for what it holds while the origin is away."""
    where = route(location, config.site_cache, config.cache_fallback)
    answer = stat_path(where.url, timeout)
    if answer.missing is not None:  # the server's own words ("no such file") add nothing
        return InputError(f"input file not found: {location}; check the path")
    if answer.ok or where.origin is None or config.site_cache is None:
        return None
    cache = _server(config.site_cache)
    if cache_down(cache) is not None:
        return None  # the open passes it over (or says it is down)
    return origin_unreachable(cache, location, f"stat of {where.url}: {answer.why}")


def _unavailable(why: str) -> CacheUnavailable:
    return CacheUnavailable(
        f"{why} and stream.cache_fallback is false: start the cache, or set "
        f"stream.cache_fallback=true to read from the origin while it is down (or unset "
        f"stream.site_cache / $HEPSTREAM_SITE_CACHE)"
    )


def _server(url: str) -> str:
    server, _ = split_url(url.rstrip("/") + "//")
    return server


class RemoteInput:
    """Reads byte ranges of one ``root://`` input, through the site cache when the job has
    one (see the module docstring); safe to call from several threads.

    Counts what it moved: ``cache_bytes`` (answered by the cache), ``origin_bytes``
    (answered by the origin: no cache, a fallback, a request asked again there),
    ``short_reads`` (short answers from the cache asked again at the origin), and
    ``cache_fallback``, why a cache that was set was not used.
    """

    def __init__(self, url: str, config: StreamConfig) -> None:
        self.path = url
        self._config = config
        self._lock = threading.Lock()
        self.cache_bytes = 0
        self.origin_bytes = 0
        self.short_reads = 0
        where = route(url, config.site_cache, config.cache_fallback)
        self.cache_fallback = where.fallback
        self._origin_url = url
        #: The site cache's name in lines and reasons (its links carry a tag of their own).
        self._cache_name = _server(config.site_cache) if config.site_cache else ""
        self._origin: XRootDBackend | None = None
        #: The cache's handle while reads go through it; None once they go to the origin.
        self._cache: XRootDBackend | None = None
        self._handles: list[XRootDBackend] = []  # every handle opened, closed at close()
        if where.origin is None:
            self._origin_backend()
        else:
            try:
                self._cache = self._open(where.url, marks_gone=False)
            except InputError as err:
                self._cache_failed(err)  # the origin instead, or raises
        primary = self._cache or self._origin
        assert primary is not None, "one of them opened"
        self.size = primary.size

    def _open(self, url: str, *, marks_gone: bool = True) -> XRootDBackend:
        config = self._config
        backend = XRootDBackend(
            url, config.timeout, config.retries, config.retry_backoff, marks_gone=marks_gone
        )
        with self._lock:
            self._handles.append(backend)
        return backend

    def _origin_backend(self) -> XRootDBackend:
        """The origin's handle, opened at the first need and kept for the file's reads."""
        with self._lock:
            known = self._origin
        if known is not None:
            return known
        opened = self._open(self._origin_url)
        with self._lock:
            if self._origin is None:
                self._origin = opened
                return opened
            known = self._origin  # another thread opened it meanwhile: keep one
        opened.close()
        return known

    # -- reads ------------------------------------------------------------------------
    def readv(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]:
        """Bytes of each segment, in order, whole (never a short answer)."""
        cache = self._cache
        if cache is None:
            return self._from_origin(segments)
        try:
            data = cache.readv(segments)
        except ShortRead as short:
            return self._short_at_cache(segments, short)
        except InputError as err:
            self._cache_failed(err)
            return self._from_origin(segments)
        with self._lock:
            self.cache_bytes += sum(len(d) for d in data)
        return data

    def _from_origin(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]:
        data = self._origin_backend().readv(segments)
        with self._lock:
            self.origin_bytes += sum(len(d) for d in data)
        return data

    def _short_at_cache(
        self, segments: tuple[tuple[int, int], ...], short: ShortRead
    ) -> list[bytes]:
        """The cache answered ``short``: the same request once at the origin."""
        with self._lock:
            self.short_reads += 1
        said = (
            f"{self._origin_url}: the site cache {self._cache_name} answered {short.got:,} "
            f"of the {short.asked:,} bytes asked at offset {short.offset:,}"
        )
        try:
            return self._from_origin(segments)
        except ShortRead as again:
            raise InputError(
                f"{said}, and the origin {again.got:,} of {again.asked:,} at offset "
                f"{again.offset:,}; no data was used: the file may have been truncated or "
                f"replaced at the origin, check it there, then run the job again"
            ) from None
        except InputError as err:
            error = InputError(
                f"{said}, and the origin could not be asked; no data was used: check the "
                f"origin is up, then run the job again"
            )
            error.detail = _words(err)
            raise error from None

    # -- the cache failed a request -----------------------------------------------------
    def _cache_failed(self, err: InputError) -> None:
        """A request through the site cache failed with ``err``: the rest of the file's
        reads go to the origin (opened here), or the error to raise: the file's own fault,
        the cache down without fallback, the origin down."""
        if isinstance(err, RequestRefused) and (
            err.errno in _FILES_OWN or "auth" in str(err).lower()
        ):
            raise err
        cache = self._cache_name
        why = cache_down(cache)
        if why is not None:  # the cache itself is gone: every file passes it over
            if not self._config.cache_fallback:
                raise _unavailable(why) from None
        else:
            error = origin_unreachable(cache, self._origin_url, _words(err))
            if error is not None:
                raise error from None
            # the cache answers and so does the origin: the cache failed on its own
            why = f"site cache {cache} failed a request ({err.detail or err})"
        with self._lock:
            self.cache_fallback = self.cache_fallback or f"{why}; read from the origin"
            self._cache = None
        self._origin_backend()

    # -- the Backend protocol -----------------------------------------------------------
    @property
    def retried(self) -> int:
        """Tries after a transient failure, at the cache and the origin."""
        with self._lock:
            return sum(b.retried for b in self._handles)

    @property
    def unavailable(self) -> bool:
        """True once a server this input reads from stopped answering (or, behind the
        cache, the origin is down): closing then waits for nothing."""
        with self._lock:
            handles = list(self._handles)
        servers = [_server(self._origin_url), *([self._cache_name] if self._cache_name else [])]
        return any(b.unavailable for b in handles) or any(gone(s) for s in servers)

    def close(self) -> None:
        with self._lock:
            handles = list(self._handles)
        for backend in handles:
            backend.close()


def _words(err: InputError) -> str:
    """An error's line with its detail, for another error's detail."""
    return str(err) + (f" ({err.detail})" if err.detail else "")
