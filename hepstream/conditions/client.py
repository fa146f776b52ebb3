"""Where a job gets conditions from: the HTTP service (through the site's proxy) or a
local directory (a snapshot, or an authoring database), with an on-disk payload cache.

The HTTP client is the standard library's: ``http_proxy``/``HTTP_PROXY`` and ``no_proxy``
pick the site's squid as for any HTTP tool. Payloads are streamed into the
cache (``CACHE/payloads/ab/abcd...``) under a temp name, checked, and renamed; jobs on
one machine share the cache: a lock on the payload's directory makes the second job wait
for the first one's download instead of repeating it. LOCKED global tag documents are
kept too (``CACHE/gt/``) and, being immutable, used without asking the server again: a
job with a warm cache makes no request at all, and one whose server has gone finishes
from the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Protocol

from hepstream._version import __version__
from hepstream.conditions import payload as payload_files
from hepstream.conditions.model import GlobalTag, Payload
from hepstream.conditions.store import DAMAGED, Store
from hepstream.errors import ConfigError, HepstreamError, InputError, ServerUnavailable
from hepstream.io.partfiles import exclusive_lock
from hepstream.io.urls import is_remote
from hepstream.io.xrootd import XRootDBackend
from hepstream.report import write_json_atomic


def default_cache_dir() -> Path:
    """``$HEPSTREAM_CONDITIONS_CACHE``, else ``$XDG_CACHE_HOME/hepstream/conditions``."""
    given = os.environ.get("HEPSTREAM_CONDITIONS_CACHE")
    if given:
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "hepstream" / "conditions"


class Unreachable(ServerUnavailable):
    """The source cannot be reached now (connection refused, timeout, 5xx): try another;
    when none answers, the job may succeed later (exit 75)."""


class Source(Protocol):
    location: str
    #: What to do about a damaged file from this source (ends an error line).
    repair: str

    def global_tag(self, name: str) -> GlobalTag: ...

    def fetch(self, payload: Payload) -> Path:
        """A local file holding the payload (the caller verifies its digest)."""
        ...


class LocalSource:
    """A conditions directory: a snapshot, or a SQLite authoring database."""

    def __init__(self, store: Store) -> None:
        self.location = store.db
        self.store = store
        self.repair = DAMAGED

    def global_tag(self, name: str) -> GlobalTag:
        return self.store.global_tag(name)

    def fetch(self, payload: Payload) -> Path:
        return self.store.payload_file(payload)


class _CachedSource:
    """Payloads kept in ``cache_dir/payloads`` by SHA-256; subclasses download one."""

    location: str
    payloads: Path
    repair = "delete it so it is fetched again"

    def fetch(self, payload: Payload) -> Path:
        """The cached file, downloading (streamed, checked, renamed) if it is not there."""
        path = payload_files.path_in(self.payloads, payload.sha256)
        if path.is_file():
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        with exclusive_lock(path.parent):  # jobs of this machine download one at a time
            if path.is_file():  # another job fetched it while this one waited
                return path
            return self._download(payload)

    def _download(self, payload: Payload) -> Path:
        raise NotImplementedError

    def forget(self, payload: Payload) -> None:
        """Drop a damaged cached copy so the next fetch downloads it again."""
        payload_files.path_in(self.payloads, payload.sha256).unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing held open between requests."""


class XRootDSource(_CachedSource):
    """Payloads stored content-addressed on XRootD (``root://HOST//BASE/ab/abcd...``).

    It holds no global tags: list a service or snapshot with it for those. Payloads are
    read with the XRootD client in 1 MiB blocks into the same disk cache.
    """

    def __init__(self, url: str, cache_dir: str | Path | None = None) -> None:
        self.location = url.rstrip("/")
        self.cache = Path(cache_dir) if cache_dir else default_cache_dir()
        self.payloads = self.cache / "payloads"

    def global_tag(self, name: str) -> GlobalTag:
        raise Unreachable(
            f"{self.location} holds payloads only; pass a service or snapshot for global tag {name}"
        )

    def _download(self, payload: Payload) -> Path:
        url = f"{self.location}/{payload.sha256[:2]}/{payload.sha256}"
        try:
            backend = XRootDBackend(url)
        except InputError as err:
            raise Unreachable(str(err)) from None
        try:
            step = payload_files.BLOCK
            blocks = (
                backend.read(start, min(start + step, backend.size))
                for start in range(0, backend.size, step)
            )
            return payload_files.write_stream(self.payloads, payload.sha256, blocks)
        except OSError as err:
            raise Unreachable(f"{url}: {err}") from None
        finally:
            backend.close()


class HTTPSource(_CachedSource):
    """The conditions service over HTTP, with the on-disk cache in ``cache_dir``.

    The client is the standard library's ``urllib.request``: it reads ``http_proxy``,
    ``HTTP_PROXY`` and ``no_proxy`` like other HTTP tools, streams bodies, and is cheap to
    import at a job's start (docs/performance.md compares it with HTTP client libraries).
    """

    def __init__(self, url: str, cache_dir: str | Path | None = None, timeout: float = 10.0):
        self.location = url.rstrip("/")
        self.cache = Path(cache_dir) if cache_dir else default_cache_dir()
        self.payloads = self.cache / "payloads"
        key = hashlib.sha256(self.location.encode()).hexdigest()[:16]
        self.documents = self.cache / "gt" / key
        self.timeout = timeout
        self._opener = urllib.request.build_opener()  # ProxyHandler from the environment
        self.downloads = 0

    def _open(self, path: str) -> Any:
        request = urllib.request.Request(
            self.location + path, headers={"User-Agent": f"hepstream/{__version__}"}
        )
        return self._opener.open(request, timeout=self.timeout)

    def _cached(self, name: str) -> GlobalTag | None:
        cached = self.documents / f"{name}.json"
        if not cached.is_file():
            return None
        try:  # LOCKED documents never change: the copy is as good
            return GlobalTag.from_dict(json.loads(cached.read_text()))
        except (OSError, ValueError, ConfigError):  # damaged: ask the server again
            cached.unlink(missing_ok=True)
            return None

    def global_tag(self, name: str) -> GlobalTag:
        """The global tag; a LOCKED one cached by an earlier job is used without a request."""
        if (cached := self._cached(name)) is not None:
            return cached
        try:
            with self._open(f"/gt/{name}") as response:
                body = response.read()
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise ConfigError(
                    f"global tag {name} not found at {self.location}; check the name"
                ) from None
            raise Unreachable(
                f"conditions server {self.location}: HTTP {err.code} for global tag {name}"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            raise Unreachable(
                f"conditions server {self.location} unreachable for global tag {name}: {err}"
            ) from None
        try:
            gt = GlobalTag.from_dict(json.loads(body))
        except (ValueError, ConfigError) as err:  # damaged in transfer, or a wrong server
            raise InputError(
                f"conditions server {self.location}: bad document for global tag {name}: "
                f"{err}; check the server's URL, retry later"
            ) from None
        if gt.locked:
            write_json_atomic(self.documents / f"{name}.json", gt.to_json())
        return gt

    def _download(self, payload: Payload) -> Path:
        sha = payload.sha256
        try:
            with self._open(f"/payload/{sha}") as response:
                blocks = iter(lambda: response.read(payload_files.BLOCK), b"")
                path = payload_files.write_stream(self.payloads, sha, blocks)
        except urllib.error.HTTPError as err:
            if err.code == 404:
                raise InputError(f"payload {sha} not found at {self.location}") from None
            raise Unreachable(
                f"conditions server {self.location}: HTTP {err.code} for payload {sha}"
            ) from None
        except (OSError, http.client.HTTPException) as err:
            raise Unreachable(
                f"conditions server {self.location} unreachable for payload {sha}: {err}"
            ) from None
        self.downloads += 1
        return path


def open_source(location: str, cache_dir: str | Path | None = None) -> Source:
    """An HTTP(S) URL or a local conditions directory."""
    if location.startswith(("http://", "https://")):
        return HTTPSource(location, cache_dir)
    if is_remote(location):
        return XRootDSource(location, cache_dir)
    if "://" in location:
        raise ConfigError(
            f"conditions source {location}: use an http(s):// URL, a root:// payload "
            f"directory or a snapshot directory"
        )
    return LocalSource(Store(location))


class Chain:
    """Sources tried in order: a global tag or payload comes from the first that answers."""

    def __init__(self, sources: list[Source]) -> None:
        if not sources:
            raise ConfigError("no conditions source given; pass --conditions URL or DIR")
        self.sources = sources
        self.used: dict[str, str] = {}  # what came from where, for the report

    def global_tag(self, name: str) -> GlobalTag:
        last: HepstreamError | None = None
        for source in self.sources:
            try:
                gt = source.global_tag(name)
                self.used[f"gt/{name}"] = source.location
                return gt
            except Unreachable as err:
                last = err
        raise last or InputError("no conditions source")

    def load(self, payload: Payload) -> bytes:
        """A payload's verified bytes from the first source that has them intact."""
        last: HepstreamError | None = None
        for source in self.sources:
            try:
                try:
                    data = payload_files.read_verified(
                        source.fetch(payload), payload, source.repair
                    )
                except InputError as err:
                    if isinstance(err, Unreachable) or not isinstance(source, _CachedSource):
                        raise
                    source.forget(payload)  # a damaged cache entry: fetch it once more
                    data = payload_files.read_verified(
                        source.fetch(payload), payload, source.repair
                    )
            except Unreachable as err:
                last = err
                continue
            self.used[payload.sha256] = source.location
            return data
        raise last or InputError(f"payload {payload.sha256}: no source")

    def close(self) -> None:
        for source in self.sources:
            if isinstance(source, _CachedSource):
                source.close()
            elif isinstance(source, LocalSource):
                source.store.close()
