"""XRootD backend: plain and vector reads through ``XRootD.client.File``.

The client does no read-ahead or caching of its own here; the streaming source on top
decides what to fetch. The client's Python bindings carry no types: the protocols below
name the part of them hepstream calls, and :func:`_xrootd` is the one place that loads them.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import posixpath
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, NoReturn, Protocol, TypeVar
from urllib.parse import urlsplit

from hepstream.errors import InputError, OutputError, ServerUnavailable
from hepstream.io.auth import use_default_credential
from hepstream.io.config import XRD_MAX_VECTOR_ELEMENT_BYTES, XRD_MAX_VECTOR_ELEMENTS
from hepstream.io.partfiles import part_name
from hepstream.io.urls import split_url

_T = TypeVar("_T")


# -- the client bindings, typed ---------------------------------------------------------
# Every call answers (status, result); the result is None unless the status is ok, and
# hepstream reads it only then.


class _Status(Protocol):
    """``XRootD.client.responses.XRootDStatus``."""

    @property
    def ok(self) -> bool: ...
    @property
    def code(self) -> int: ...
    @property
    def errno(self) -> int: ...
    @property
    def message(self) -> str: ...


class _StatInfo(Protocol):
    @property
    def size(self) -> int: ...


class _ChunkInfo(Protocol):
    @property
    def buffer(self) -> bytes: ...


class _VectorReadInfo(Protocol):
    @property
    def chunks(self) -> list[_ChunkInfo]: ...


class _DirEntry(Protocol):
    @property
    def name(self) -> str: ...


class _File(Protocol):
    """``XRootD.client.File``."""

    def open(self, url: str, flags: int, *, timeout: int) -> tuple[_Status, None]: ...
    def stat(self, *, timeout: int) -> tuple[_Status, _StatInfo]: ...
    def read(self, offset: int, size: int, *, timeout: int) -> tuple[_Status, bytes]: ...
    def vector_read(
        self, *, chunks: list[tuple[int, int]], timeout: int
    ) -> tuple[_Status, _VectorReadInfo]: ...
    def is_open(self) -> bool: ...
    def close(self, *, timeout: int) -> tuple[_Status, None]: ...


class _FileSystem(Protocol):
    """``XRootD.client.FileSystem``."""

    def ping(self, *, timeout: int) -> tuple[_Status, None]: ...
    def query(self, querycode: int, arg: str, *, timeout: int) -> tuple[_Status, bytes | None]: ...
    def stat(self, path: str, *, timeout: int) -> tuple[_Status, _StatInfo]: ...
    def dirlist(self, path: str, *, timeout: int) -> tuple[_Status, Iterable[_DirEntry]]: ...
    def mkdir(self, path: str, flags: int, *, timeout: int) -> tuple[_Status, None]: ...
    def rm(self, path: str, *, timeout: int) -> tuple[_Status, None]: ...
    def mv(self, source: str, dest: str, *, timeout: int) -> tuple[_Status, None]: ...


class _CopyProcess(Protocol):
    """``XRootD.client.CopyProcess`` (one job's results: a mapping with its ``status``)."""

    def add_job(
        self, source: str, target: str, *, force: bool, mkdir: bool, posc: bool
    ) -> None: ...
    def prepare(self) -> _Status: ...
    def run(self) -> tuple[_Status, list[Mapping[str, _Status]]]: ...


class _Client(Protocol):
    """The ``XRootD.client`` module."""

    def File(self) -> _File: ...
    def FileSystem(self, url: str) -> _FileSystem: ...
    def CopyProcess(self) -> _CopyProcess: ...
    def EnvPutInt(self, key: str, value: int) -> None: ...


class _Bindings(NamedTuple):
    client: _Client
    open_read: int
    mkdir_makepath: int
    query_config: int
    query_checksum: int


@functools.cache
def _xrootd() -> _Bindings:
    """The XRootD client, loaded at the first remote operation and not at import.

    Importing ``XRootD.client`` costs about 23 ms alone (8 ms on top of the CLI's own
    imports), but loading it also fixes the client's ``XRD_*`` settings from the
    environment as it is then, and registers an exit hook that walks every live Python
    object (about 0.13 s per million objects): jobs on local files never pay for either.
    """
    from XRootD import client
    from XRootD.client.flags import MkDirFlags, OpenFlags, QueryCode

    return _Bindings(
        client, OpenFlags.READ, MkDirFlags.MAKEPATH, QueryCode.CONFIG, QueryCode.CHECKSUM
    )


def _filesystem(server: str) -> _FileSystem:
    return _xrootd().client.FileSystem(server)


# -- statuses ---------------------------------------------------------------------------
def _why(status: _Status) -> str:
    """One line from an XRootD status, without the client's bracketed prefix noise."""
    return " ".join(str(status.message).split())


def _what_to_do(status: _Status, default: str) -> str:
    """What the user should do about a failed request: a refused login needs a key."""
    if "auth" in str(status.message).lower():
        return "the server wants your sss key: export XrdSecsssKT=<your keytab file>"
    return default


#: XRootD client status code of an error the server sent back (no such file, no
#: permission, a request it refuses): retrying the same request cannot help.
_ERROR_RESPONSE = 400


def _transient(status: _Status) -> bool:
    """A failure a fresh connection may cure: the link broke, the server went away or did
    not answer in time (not the server's own refusal, nor a login it turned down)."""
    if status.ok or status.code == _ERROR_RESPONSE:
        return False
    return "auth" not in str(status.message).lower()


class StorageUnavailable(ServerUnavailable):
    """A server did not answer within the retry policy (stalled, or gone), or refused the
    connection before it ever answered: not the file's fault, so ``--skip-bad-files`` does
    not skip it; the job fails (exit 75: it may succeed later)."""


class RequestRefused(InputError):
    """The server answered a request with an error of its own (``errno``: the kXR code, e.g.
    3011 no such file): retrying the same request at the same server cannot help."""

    def __init__(self, message: str, errno: int) -> None:
        super().__init__(message)
        self.errno = errno


class ShortRead(InputError):
    """A read answered with fewer (or more) bytes than the range holds: never data.

    XRootD 5.5.3's XCache answers SUCCESS with 0 bytes when its RAM is exhausted
    (xrootd#2308); a file truncated on the server after the client's stat gives the same.
    """

    def __init__(self, path: str, offset: int, asked: int, got: int, size: int) -> None:
        super().__init__(
            f"{path}: the server answered {got:,} of the {asked:,} bytes asked at offset "
            f"{offset:,} (its stat said {size:,} bytes) and the answer was not used; the file "
            f"may have been truncated or replaced on the server: check it there, then run the "
            f"job again"
        )
        self.path, self.offset, self.asked, self.got = path, offset, asked, got


# -- is anyone there? ------------------------------------------------------------------
#: Seconds a plain TCP connect may take before it counts as not answering (on a site's LAN a
#: handshake takes well under a millisecond; 2 s rides out a loaded host).
PROBE_TIMEOUT = 2.0
#: What :func:`probe` says of a port nothing listens on.
REFUSED = "refused the connection"


def _address(server: str) -> tuple[str, int]:
    """``(host, port)`` of ``root://host[:port]`` (XRootD's port 1094 when none is given)."""
    parts = urlsplit(server)
    return parts.hostname or "", parts.port or 1094


def probe(server: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if ``server`` (``root://host:port``) accepts a TCP connection; else why not, as
    words that complete "SERVER ..." (:data:`REFUSED`). A plain connect decides at once
    what the XRootD client would take its whole connection window to say (10 s with the
    job's settings, then the retry policy on top)."""
    try:
        with socket.create_connection(_address(server), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return REFUSED
    except TimeoutError:
        return f"did not accept a connection within {timeout:g} s"
    except OSError as err:
        return f"cannot be reached ({err.strerror or err})"


#: Servers (host, port) that accepted a connection in this job: a refusal from one of them
#: later is a restart or an outage, which the retry policy rides out.
_REACHED: set[tuple[str, int]] = set()
_REACHED_LOCK = threading.Lock()


def refuse_fast(server: str) -> None:
    """Raise :class:`StorageUnavailable` at once if ``server`` refuses a TCP connection and
    never accepted one in this job (a wrong port, a server not started): waiting out the
    retry policy would only end in "stopped answering" 18 s later. Anything else (it
    answers, or is slow to) is left to the XRootD client and its retry policy."""
    address = _address(server)
    with _REACHED_LOCK:
        if address in _REACHED:
            return
    if probe(server) != REFUSED:
        with _REACHED_LOCK:
            _REACHED.add(address)
        return
    raise StorageUnavailable(
        f"cannot connect to storage server {server}: connection refused (nothing listens on "
        f"port {address[1]} of {address[0]}); check the URL's host and port ('hepstream "
        f"serve' prints the URL to use) and that the server runs"
    )


# -- the client's policy ----------------------------------------------------------------
def configure_client(retry: int, window: int) -> None:
    """Set the XRootD client's connection policy unless the user's XRD_* variables did;
    present the user's default sss key (``hepstream serve`` makes one) if none is set."""
    client = _xrootd().client
    use_default_credential()
    if "XRD_CONNECTIONRETRY" not in os.environ:
        client.EnvPutInt("ConnectionRetry", retry)
    if "XRD_CONNECTIONWINDOW" not in os.environ:
        client.EnvPutInt("ConnectionWindow", window)
    if "XRD_TIMEOUTRESOLUTION" not in os.environ:
        # the client checks its requests' deadlines every 15 s by default: a 5 s timeout
        # would fire at 15 s; every second keeps the retry policy's timeouts what they say
        client.EnvPutInt("TimeoutResolution", 1)


def warm_up(url: str) -> None:
    """Start connecting to ``url``'s server in the background (errors surface later, on open)."""
    server, _ = split_url(url)
    client = _xrootd().client
    threading.Thread(
        target=lambda: client.FileSystem(server).ping(timeout=10),
        name="hepstream-connect",
        daemon=True,
    ).start()


# -- readv limits -----------------------------------------------------------------------
@dataclass(frozen=True)
class ReadvLimits:
    """What one kXR_readv may hold: elements, and bytes per element."""

    max_elements: int = XRD_MAX_VECTOR_ELEMENTS
    max_element_bytes: int = XRD_MAX_VECTOR_ELEMENT_BYTES


def parse_readv_limits(answer: bytes | str | None) -> ReadvLimits:
    """The answer to ``QueryCode.CONFIG "readv_iov_max readv_ior_max"`` (two numbers, one a
    line); the protocol's constants for what is missing or unreadable. A server never
    raises them above the protocol's."""
    text = answer.decode(errors="replace") if isinstance(answer, bytes) else str(answer or "")
    values = []
    for word in text.split():
        try:
            values.append(int(word))
        except ValueError:
            values.append(0)  # e.g. the name echoed back: the server does not know it
    iov = values[0] if values and values[0] > 0 else XRD_MAX_VECTOR_ELEMENTS
    ior = values[1] if len(values) > 1 and values[1] > 0 else XRD_MAX_VECTOR_ELEMENT_BYTES
    return ReadvLimits(min(iov, XRD_MAX_VECTOR_ELEMENTS), min(ior, XRD_MAX_VECTOR_ELEMENT_BYTES))


_LIMITS: dict[str, ReadvLimits] = {}
_LIMITS_LOCK = threading.Lock()


def readv_limits(server: str, timeout: int = 10) -> ReadvLimits:
    """``server``'s readv limits, asked once per process and server (a user name in the
    URL, such as a site cache's per-file connections carry, names the same server)."""
    scheme, address = server.split("://", 1)
    key = f"{scheme}://{address.rpartition('@')[2]}"
    with _LIMITS_LOCK:
        known = _LIMITS.get(key)
    if known is not None:
        return known
    status, answer = _filesystem(server).query(
        _xrootd().query_config, "readv_iov_max readv_ior_max", timeout=timeout
    )
    limits = parse_readv_limits(answer if status.ok else None)
    if status.ok:  # a failed query is asked again next time; meanwhile the protocol's
        with _LIMITS_LOCK:
            _LIMITS[key] = limits
    return limits


def split_readv(
    segments: tuple[tuple[int, int], ...], limits: ReadvLimits
) -> list[list[tuple[int, int]]]:
    """``segments`` as requests within ``limits``: a segment larger than one element is cut
    into element-sized pieces, and at most ``max_elements`` pieces go in one request.
    The pieces, concatenated in order, are the segments."""
    pieces: list[tuple[int, int]] = []
    for start, stop in segments:
        at = start
        while True:
            end = min(stop, at + limits.max_element_bytes)
            pieces.append((at, end))
            at = end
            if at >= stop:
                break
    step = limits.max_elements
    return [pieces[i : i + step] for i in range(0, len(pieces), step)]


def _join_pieces(segments: tuple[tuple[int, int], ...], data: list[bytes]) -> list[bytes]:
    """Each segment's bytes from the pieces :func:`split_readv` cut it into, in order."""
    out, pieces = [], iter(data)
    for start, stop in segments:
        parts: list[bytes] = []
        got = 0
        while got < stop - start:
            parts.append(next(pieces))
            got += len(parts[-1])
        out.append(parts[0] if len(parts) == 1 else b"".join(parts))
    return out


# -- one remote file --------------------------------------------------------------------
class XRootDBackend:
    """Reads byte ranges of one remote file; safe to call from several threads.

    A read that fails for a transient reason (see :func:`_transient`) is retried
    ``retries`` times after ``backoff``, ``2 x backoff``, ... seconds, each time on the
    file reopened on a fresh connection; the same bytes come back, so callers never see
    the fault. When the tries are used up, :class:`StorageUnavailable` names the server.
    """

    def __init__(
        self,
        url: str,
        timeout: int = 30,
        retries: int = 0,
        backoff: float = 1.0,
        *,
        marks_gone: bool = True,
    ) -> None:
        self.path = url
        self.server, _ = split_url(url)
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        #: Whether an exhausted retry policy marks the server gone for the process. A site
        #: cache's reader decides that itself: a cache that answers but waits on a dead
        #: origin is not gone, its cached files are still served.
        self._marks_gone = marks_gone
        self._lock = threading.Lock()
        #: Tries after a transient failure so far (the job report's ``read_retries``).
        self.retried = 0
        self._generation = 0  # bumped at each reopen: threads that saw a failure reopen once
        if not gone(self.server):  # a gone server fails below without a wait of its own
            refuse_fast(self.server)
        self._file: _File = self._call("open", self._open_new, reopen=False)
        info = self._call("stat", lambda: self._file.stat(timeout=self._timeout))
        self.size = info.size
        self._limits: ReadvLimits | None = None  # asked at the first vector read

    def _open_new(self) -> tuple[_Status, _File]:
        xrootd = _xrootd()
        handle = xrootd.client.File()
        status, _ = handle.open(self.path, xrootd.open_read, timeout=self._timeout)
        return status, handle

    def _call(self, what: str, op: Callable[[], tuple[_Status, _T]], *, reopen: bool = True) -> _T:
        """``op()`` -> (status, result) on the current handle, retried per the policy; the
        result."""
        began = time.monotonic()
        status: _Status | None = None
        generation = self._generation
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
                if gone(self.server):  # another read already found the server gone
                    break
                self.retried += 1
                if reopen:
                    failed = self._reopen(generation)
                    if failed is not None:  # the reopen was this try: it failed too
                        status = failed
                        if not _transient(status):
                            self._refused("open", status)
                        continue
            generation = self._generation
            try:
                status, result = op()
            except ValueError:  # "I/O operation on closed file": the handle op() had taken
                if generation == self._generation:  # was closed by another thread's reopen
                    raise
                status, result = op()  # the reopened handle
            if status.ok:
                return result
            if not _transient(status):
                self._refused(what, status)
        raise self._give_up(what, status, time.monotonic() - began)

    def _give_up(self, what: str, status: _Status | None, waited: float) -> StorageUnavailable:
        """Mark the server gone for this process (unless told not to); the error that says
        so."""
        if self._marks_gone:
            mark_gone(self.server)
        # one stable line (which read hit the outage first varies); the rest in the detail
        error = StorageUnavailable(
            f"storage server {self.server} stopped answering (every try of the retry policy "
            f"failed); check the server is up, then run the job again (or allow longer: "
            f"--set stream.retries=N --set stream.timeout=SECONDS)"
        )
        last = _why(status) if status is not None else "another read found the server gone"
        error.detail = f"{what} of {self.path}: {last} (gave up after {waited:.1f} s)"
        return error

    def _refused(self, what: str, status: _Status) -> NoReturn:
        """Raise the one line for a request the server refused (retrying cannot help)."""
        if what == "open":
            todo = _what_to_do(status, "check the file exists and the server runs")
            raise RequestRefused(f"cannot open {self.path}: {_why(status)}; {todo}", status.errno)
        raise RequestRefused(f"XRootD {what} of {self.path} failed: {_why(status)}", status.errno)

    def _reopen(self, generation: int) -> _Status | None:
        """A fresh handle on a fresh connection, once for all threads that saw the failure;
        the failed status if it could not be opened, else None."""
        with self._lock:
            if generation != self._generation:
                return None  # another thread reopened it meanwhile
            old = self._file
            status, handle = self._open_new()
            if not status.ok:
                return status
            self._file = handle
            self._generation += 1
        _close_quietly(old, 1)
        return None

    def read(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``; :class:`ShortRead` if the answer holds fewer."""
        data = self._call(
            f"read {start}-{stop}",
            lambda: self._file.read(start, stop - start, timeout=self._timeout),
        )
        self._check_length(start, stop, data)
        return data

    def _check_length(self, start: int, stop: int, data: bytes) -> None:
        """Raise :class:`ShortRead` unless ``data`` is all of ``[start, stop)`` that lies
        within the file (a range past the end is short by exactly what lies past it)."""
        want = max(0, min(stop, self.size) - start)
        if len(data) != want:
            raise ShortRead(self.path, start, stop - start, len(data), self.size)

    def readv(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]:
        """Bytes of each segment, in order: one kXR_readv round trip, or several when the
        segments exceed the server's readv limits (elements, bytes per element)."""
        if len(segments) == 1:
            return [self.read(*segments[0])]
        if self._limits is None:
            self._limits = readv_limits(self.server, timeout=min(self._timeout, 10) or 10)
        data: list[bytes] = []
        for request in split_readv(segments, self._limits):
            if len(request) == 1:
                data.append(self.read(*request[0]))
                continue
            chunks = [(start, stop - start) for start, stop in request]
            info = self._call("vector read", functools.partial(self._vector_read, chunks))
            answers = [chunk.buffer for chunk in info.chunks][: len(request)]
            for index, (start, stop) in enumerate(request):
                # an element missing from the answer is a short answer of 0 bytes
                self._check_length(start, stop, answers[index] if index < len(answers) else b"")
            data.extend(answers)
        if len(data) == len(segments):
            return data
        return _join_pieces(segments, data)

    def _vector_read(self, chunks: list[tuple[int, int]]) -> tuple[_Status, _VectorReadInfo]:
        # the handle is looked up at each try: a retry reads from the reopened file
        return self._file.vector_read(chunks=chunks, timeout=self._timeout)

    @property
    def unavailable(self) -> bool:
        """True once this file's server exhausted a retry policy in this process."""
        return gone(self.server)

    def close(self) -> None:
        _close_quietly(self._file, self._timeout if not gone(self.server) else 1)


def _close_quietly(handle: _File, timeout: int = 5) -> None:
    try:
        if handle.is_open():
            handle.close(timeout=timeout)
    except Exception:  # closing a handle on a dead connection: nothing to save
        pass


#: Servers that exhausted a retry policy in this process: other reads fail fast instead of
#: each waiting out the policy again.
_GONE: set[str] = set()


def gone(server: str) -> bool:
    """True once ``server`` was found gone in this process (see :func:`mark_gone`)."""
    return server in _GONE


def mark_gone(server: str) -> None:
    """``server`` stopped answering: reads wait no policy out for it again in this process
    (until :func:`forget_gone`), and a failed job exits without waiting on its handles."""
    _GONE.add(server)


def storage_unavailable() -> bool:
    """True if some server exhausted a retry policy in this process."""
    return bool(_GONE)


def forget_gone(server: str | None = None) -> None:
    """Give servers (or one) another chance: a new job in a long-lived process. A new job
    also learns afresh which servers are there (:func:`refuse_fast`)."""
    if server is None:
        _GONE.clear()
        with _REACHED_LOCK:
            _REACHED.clear()
    else:
        _GONE.discard(server)


# -- the namespace ----------------------------------------------------------------------
#: kXR_NotFound: the server's "no such file".
_NOT_FOUND = 3011


class StatAnswer(NamedTuple):
    """What a stat of a path said: ``ok`` (it is there), ``missing`` (the server's words for
    "no such file", else None) and ``why`` (the failure in one line, else "")."""

    ok: bool
    missing: str | None
    why: str


def stat_path(url: str, timeout: int = 30) -> StatAnswer:
    """Stat ``url`` once. Neither ok nor missing: the server could not say (not answering:
    the open's retry policy reports that; a site cache whose origin is down)."""
    server, path = split_url(url)
    refuse_fast(server)
    status, _ = _filesystem(server).stat(path, timeout=timeout)
    if status.ok:
        return StatAnswer(True, None, "")
    if status.code == _ERROR_RESPONSE and status.errno == _NOT_FOUND:
        return StatAnswer(False, _why(status), _why(status))
    return StatAnswer(False, None, _why(status))


def expand_remote(pattern: str, timeout: int = 30) -> list[str]:
    """Expand a glob in the file name of a ``root://`` URL by listing its directory."""
    server, path = split_url(pattern)
    directory, name = posixpath.split(path)
    if not any(ch in name for ch in "*?["):
        return [pattern]
    refuse_fast(server)
    status, listing = _filesystem(server).dirlist(directory, timeout=timeout)
    if not status.ok:
        raise InputError(f"cannot list {server}/{directory}: {_why(status)}")
    names = sorted(
        entry.name
        for entry in listing
        if fnmatch.fnmatchcase(entry.name, name)
        and (name.startswith(".") or not entry.name.startswith("."))  # as a shell glob does
    )
    return [f"{server}/{posixpath.join(directory, n)}" for n in names]


# -- copies and uploads -----------------------------------------------------------------
#: Bytes per read when checksumming a file.
_CHECKSUM_BLOCK = 1 << 22


def _adler32(blocks: Iterable[bytes]) -> int:
    value = 1
    for block in blocks:
        value = zlib.adler32(block, value)
    return value


def _adler32_of_file(path: str) -> int:
    with open(path, "rb") as handle:
        return _adler32(iter(functools.partial(handle.read, _CHECKSUM_BLOCK), b""))


def _adler32_of_remote(url: str, timeout: int) -> int:
    backend = XRootDBackend(url, timeout=timeout)
    try:
        return _adler32(
            backend.read(offset, min(offset + _CHECKSUM_BLOCK, backend.size))
            for offset in range(0, backend.size, _CHECKSUM_BLOCK)
        )
    finally:
        backend.close()


def _remote_adler32(fs: _FileSystem, path: str, timeout: int) -> int | None:
    """Server-side adler32, or None when the server has no checksum plug-in."""
    status, answer = fs.query(_xrootd().query_checksum, path, timeout=timeout)
    if not status.ok or not answer:
        return None
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    name, _, value = text.strip("\x00 \n").partition(" ")
    if name.lower() != "adler32":
        return None
    return int(value.split()[0], 16)


def _copy_status(src: str, dst: str, posc: bool = False) -> _Status:
    """Run one XRootD client copy (either side may be root://); the status of the job.

    ``posc``: persist on successful close. The server deletes the target if the client
    goes away (killed, cut off) before closing it cleanly.
    """
    process = _xrootd().client.CopyProcess()
    process.add_job(src, dst, force=True, mkdir=True, posc=posc)
    status = process.prepare()
    if status.ok:
        status, results = process.run()
        if status.ok and results and not results[0]["status"].ok:
            status = results[0]["status"]
    return status


def copy(src: str, dst: str) -> None:
    """Copy one file with the XRootD client; an OutputError names both ends on failure."""
    status = _copy_status(src, dst)
    if not status.ok:
        raise OutputError(f"copy {src} -> {dst} failed: {_why(status)}")


def upload(local_path: str, url: str, timeout: int = 120) -> int:
    """Copy a local file to ``url`` via a temp name, verify size and adler32, then rename.

    Returns the verified size. Nothing appears at ``url`` unless the copy verified. The
    temp name is ``.NAME.hepstream-<pid>.part``, written with persist-on-successful-close:
    if this process dies mid-copy the server drops it (at once, or when it restarts if the
    server itself died), and any failure here removes it.
    """
    server, path = split_url(url)
    fs = _filesystem(server)
    part = posixpath.join(posixpath.dirname(path), part_name(posixpath.basename(path)))
    fs.mkdir(posixpath.dirname(path), _xrootd().mkdir_makepath, timeout=timeout)
    try:
        status = _copy_status(local_path, f"{server}/{part}", posc=True)
        if not status.ok:
            todo = _what_to_do(status, "check the destination")
            raise OutputError(f"cannot upload output to {url}: {_why(status)}; {todo}")
        want_size = os.path.getsize(local_path)
        want_sum = _adler32_of_file(local_path)
        status, info = fs.stat(part, timeout=timeout)
        got_sum = _remote_adler32(fs, part, timeout)
        if got_sum is None:  # no checksum plug-in on the server: read the copy back
            got_sum = _adler32_of_remote(f"{server}/{part}", timeout)
        if not status.ok or info.size != want_size or got_sum != want_sum:
            raise OutputError(f"upload to {url} did not verify (size or adler32 differ); retry")
        fs.rm(path, timeout=timeout)  # mv does not replace an existing file
        status, _ = fs.mv(part, path, timeout=timeout)
        if not status.ok:
            raise OutputError(f"cannot move upload into place at {url}: {_why(status)}")
    except BaseException:
        fs.rm(part, timeout=timeout)
        raise
    return want_size
