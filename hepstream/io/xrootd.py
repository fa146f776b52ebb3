"""XRootD backend: plain and vector reads through ``XRootD.client.File``.

The client does no read-ahead or caching of its own here; the streaming source on top
decides what to fetch.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import threading
import time
from dataclasses import dataclass

from hepstream.errors import InputError
from hepstream.io.config import XRD_MAX_VECTOR_ELEMENT_BYTES, XRD_MAX_VECTOR_ELEMENTS
from hepstream.io.urls import split_url


def _why(status) -> str:
    """One line from an XRootD status, without the client's bracketed prefix noise."""
    return " ".join(str(status.message).split())


def _what_to_do(status, default: str) -> str:
    """What the user should do about a failed request: a refused login needs a key."""
    if "auth" in str(status.message).lower():
        return "the server wants your sss key: export XrdSecsssKT=<your keytab file>"
    return default


#: XRootD client status code of an error the server sent back (no such file, no
#: permission, a request it refuses): retrying the same request cannot help.
_ERROR_RESPONSE = 400


def _transient(status) -> bool:
    """A failure a fresh connection may cure: the link broke, the server went away or did
    not answer in time (not the server's own refusal, nor a login it turned down)."""
    if status.ok or status.code == _ERROR_RESPONSE:
        return False
    return "auth" not in str(status.message).lower()


class StorageUnavailable(InputError):
    """A server did not answer within the retry policy (stalled, or gone): not the file's
    fault, so ``--skip-bad-files`` does not skip it; the job fails."""


def configure_client(retry: int, window: int) -> None:
    """Set the XRootD client's connection policy unless the user's XRD_* variables did;
    present the user's default sss key (``hepstream serve`` makes one) if none is set."""
    from XRootD import client

    from hepstream.io.auth import use_default_credential

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
    import threading

    from XRootD import client

    server, _ = split_url(url)
    threading.Thread(
        target=lambda: client.FileSystem(server).ping(timeout=10),
        name="hepstream-connect",
        daemon=True,
    ).start()


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
    """``server``'s readv limits, asked once per process and server."""
    with _LIMITS_LOCK:
        known = _LIMITS.get(server)
    if known is not None:
        return known
    from XRootD import client
    from XRootD.client.flags import QueryCode

    status, answer = client.FileSystem(server).query(
        QueryCode.CONFIG, "readv_iov_max readv_ior_max", timeout=timeout
    )
    limits = parse_readv_limits(answer if status.ok else None)
    if status.ok:  # a failed query is asked again next time; meanwhile the protocol's
        with _LIMITS_LOCK:
            _LIMITS[server] = limits
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


class XRootDBackend:
    """Reads byte ranges of one remote file; safe to call from several threads.

    A read that fails for a transient reason (see :func:`_transient`) is retried
    ``retries`` times after ``backoff``, ``2 x backoff``, ... seconds, each time on the
    file reopened on a fresh connection; the same bytes come back, so callers never see
    the fault. When the tries are used up, :class:`StorageUnavailable` names the server.
    """

    def __init__(self, url: str, timeout: int = 30, retries: int = 0, backoff: float = 1.0) -> None:
        self.path = url
        self.server, _ = split_url(url)
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._lock = threading.Lock()
        #: Tries after a transient failure so far (the job report's ``read_retries``).
        self.retried = 0
        self._generation = 0  # bumped at each reopen: threads that saw a failure reopen once
        self._file = self._call("open", self._open_new, reopen=False)
        info = self._call("stat", lambda f: f.stat(timeout=self._timeout))
        self.size = info.size
        self._limits: ReadvLimits | None = None  # asked at the first vector read

    def _open_new(self, _old):
        from XRootD import client
        from XRootD.client.flags import OpenFlags

        handle = client.File()
        status, _ = handle.open(self.path, OpenFlags.READ, timeout=self._timeout)
        return status, handle

    def _call(self, what: str, op, *, reopen: bool = True):
        """``op(file)`` -> (status, result), retried per the policy; the result."""
        began = time.monotonic()
        status = None
        generation = self._generation
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
                if _gone(self.server):  # another read already found the server gone
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
            handle = getattr(self, "_file", None)
            status, result = op(handle)
            if status.ok:
                return result
            if not _transient(status):
                self._refused(what, status)
        waited = time.monotonic() - began
        _mark_gone(self.server)
        # one stable line (which read hit the outage first varies); the rest in the detail
        error = StorageUnavailable(
            f"storage server {self.server} stopped answering (every try of the retry policy "
            f"failed); check the server is up, then run the job again (or allow longer: "
            f"--set stream.retries=N --set stream.timeout=SECONDS)"
        )
        last = _why(status) if status is not None else "another read found the server gone"
        error.detail = f"{what} of {self.path}: {last} (gave up after {waited:.1f} s)"
        raise error

    def _refused(self, what: str, status) -> None:
        """Raise the one line for a request the server refused (retrying cannot help)."""
        if what == "open":
            todo = _what_to_do(status, "check the file exists and the server runs")
            raise InputError(f"cannot open {self.path}: {_why(status)}; {todo}")
        raise InputError(f"XRootD {what} of {self.path} failed: {_why(status)}")

    def _reopen(self, generation: int):
        """A fresh handle on a fresh connection, once for all threads that saw the failure;
        the failed status if it could not be opened, else None."""
        with self._lock:
            if generation != self._generation:
                return None  # another thread reopened it meanwhile
            old = self._file
            status, handle = self._open_new(None)
            if not status.ok:
                return status
            self._file = handle
            self._generation += 1
        _close_quietly(old, 1)
        return None

    def read(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``."""
        return self._call(
            f"read {start}-{stop}", lambda f: f.read(start, stop - start, timeout=self._timeout)
        )

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
            info = self._call(
                "vector read", lambda f, c=chunks: f.vector_read(chunks=c, timeout=self._timeout)
            )
            data.extend(chunk.buffer for chunk in info.chunks)
        if len(data) == len(segments):
            return data
        out, pieces = [], iter(data)  # join the pieces of segments cut to fit
        for start, stop in segments:
            parts, got = [], 0
            while got < stop - start:
                parts.append(next(pieces))
                got += len(parts[-1])
            out.append(parts[0] if len(parts) == 1 else b"".join(parts))
        return out

    @property
    def unavailable(self) -> bool:
        """True once this file's server exhausted a retry policy in this process."""
        return _gone(self.server)

    def close(self) -> None:
        _close_quietly(self._file, self._timeout if not _gone(self.server) else 1)


def _close_quietly(handle, timeout: int = 5) -> None:
    try:
        if handle.is_open():
            handle.close(timeout=timeout)
    except Exception:  # closing a handle on a dead connection: nothing to save
        pass


#: Servers that exhausted a retry policy in this process: other reads fail fast instead of
#: each waiting out the policy again.
_GONE: set[str] = set()


def _gone(server: str) -> bool:
    return server in _GONE


def _mark_gone(server: str) -> None:
    _GONE.add(server)


def storage_unavailable() -> bool:
    """True if some server exhausted a retry policy in this process."""
    return bool(_GONE)


def forget_gone(server: str | None = None) -> None:
    """Give servers (or one) another chance: a new job in a long-lived process."""
    if server is None:
        _GONE.clear()
    else:
        _GONE.discard(server)


#: kXR_NotFound: the server's "no such file".
_NOT_FOUND = 3011


def stat_missing(url: str, timeout: int = 30) -> str | None:
    """Why ``url`` does not exist (the server's words), or None if it does or the server
    could not say (not answering: the open's retry policy reports that)."""
    from XRootD import client

    server, path = split_url(url)
    status, _ = client.FileSystem(server).stat(path, timeout=timeout)
    if status.ok or status.code != _ERROR_RESPONSE or status.errno != _NOT_FOUND:
        return None
    return _why(status)


def expand_remote(pattern: str, timeout: int = 30) -> list[str]:
    """Expand a glob in the file name of a ``root://`` URL by listing its directory."""
    from XRootD import client

    server, path = split_url(pattern)
    directory, name = posixpath.split(path)
    if not any(ch in name for ch in "*?["):
        return [pattern]
    status, listing = client.FileSystem(server).dirlist(directory, timeout=timeout)
    if not status.ok:
        raise InputError(f"cannot list {server}/{directory}: {_why(status)}")
    names = sorted(
        entry.name
        for entry in listing
        if fnmatch.fnmatchcase(entry.name, name)
        and (name.startswith(".") or not entry.name.startswith("."))  # as a shell glob does
    )
    return [f"{server}/{posixpath.join(directory, n)}" for n in names]


def _adler32_of_file(path: str) -> int:
    import zlib

    value = 1
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            value = zlib.adler32(block, value)
    return value


def _remote_adler32(fs, path: str, timeout: int) -> int | None:
    """Server-side adler32, or None when the server has no checksum plug-in."""
    from XRootD.client.flags import QueryCode

    status, answer = fs.query(QueryCode.CHECKSUM, path, timeout=timeout)
    if not status.ok or not answer:
        return None
    text = answer.decode() if isinstance(answer, bytes) else str(answer)
    name, _, value = text.strip("\x00 \n").partition(" ")
    if name.lower() != "adler32":
        return None
    return int(value.split()[0], 16)


def _copy_status(src: str, dst: str, posc: bool = False):
    """Run one XRootD client copy (either side may be root://); the status of the job.

    ``posc``: persist on successful close. The server deletes the target if the client
    goes away (killed, cut off) before closing it cleanly.
    """
    from XRootD import client

    process = client.CopyProcess()
    process.add_job(src, dst, force=True, mkdir=True, posc=posc)
    status = process.prepare()
    if status.ok:
        status, results = process.run()
        if status.ok and results and not results[0]["status"].ok:
            status = results[0]["status"]
    return status


def copy(src: str, dst: str) -> None:
    """Copy one file with the XRootD client; an OutputError names both ends on failure."""
    from hepstream.errors import OutputError

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
    from XRootD import client
    from XRootD.client.flags import MkDirFlags

    from hepstream.errors import OutputError
    from hepstream.io.partfiles import part_name

    server, path = split_url(url)
    fs = client.FileSystem(server)
    part = posixpath.join(posixpath.dirname(path), part_name(posixpath.basename(path)))
    fs.mkdir(posixpath.dirname(path), MkDirFlags.MAKEPATH, timeout=timeout)
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


def _adler32_of_remote(url: str, timeout: int) -> int:
    import zlib

    backend = XRootDBackend(url, timeout=timeout)
    try:
        value, offset = 1, 0
        while offset < backend.size:
            stop = min(offset + (1 << 22), backend.size)
            value = zlib.adler32(backend.read(offset, stop), value)
            offset = stop
        return value
    finally:
        backend.close()
