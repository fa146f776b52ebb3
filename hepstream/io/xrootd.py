"""XRootD backend: plain and vector reads through ``XRootD.client.File``.

The client does no read-ahead or caching of its own here; the streaming source on top
decides what to fetch.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath

from hepstream.errors import InputError
from hepstream.io.urls import split_url


def _why(status) -> str:
    """One line from an XRootD status, without the client's bracketed prefix noise."""
    return " ".join(str(status.message).split())


def _what_to_do(status, default: str) -> str:
    """What the user should do about a failed request: a refused login needs a key."""
    if "auth" in str(status.message).lower():
        return "the server wants your sss key: export XrdSecsssKT=<your keytab file>"
    return default


def configure_client(retry: int, window: int) -> None:
    """Set the XRootD client's connection policy unless the user's XRD_* variables did;
    present the user's default sss key (``hepstream serve`` makes one) if none is set."""
    from XRootD import client

    from hepstream.auth import use_default_credential

    use_default_credential()
    if "XRD_CONNECTIONRETRY" not in os.environ:
        client.EnvPutInt("ConnectionRetry", retry)
    if "XRD_CONNECTIONWINDOW" not in os.environ:
        client.EnvPutInt("ConnectionWindow", window)


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


class XRootDBackend:
    """Reads byte ranges of one remote file; safe to call from several threads."""

    def __init__(self, url: str, timeout: int = 60) -> None:
        from XRootD import client
        from XRootD.client.flags import OpenFlags

        self.path = url
        self._timeout = timeout
        self._file = client.File()
        status, _ = self._file.open(url, OpenFlags.READ, timeout=timeout)
        if not status.ok:
            todo = _what_to_do(status, "check the file exists and the server runs")
            raise InputError(f"cannot open {url}: {_why(status)}; {todo}")
        status, info = self._file.stat(timeout=timeout)
        if not status.ok:
            raise InputError(f"cannot stat {url}: {_why(status)}")
        self.size = info.size

    def read(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``."""
        status, data = self._file.read(start, stop - start, timeout=self._timeout)
        if not status.ok:
            raise OSError(f"XRootD read {start}-{stop} of {self.path} failed: {_why(status)}")
        return data

    def readv(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]:
        """Bytes of each segment, in order, in one kXR_readv round trip."""
        if len(segments) == 1:
            return [self.read(*segments[0])]
        chunks = [(start, stop - start) for start, stop in segments]
        status, info = self._file.vector_read(chunks=chunks, timeout=self._timeout)
        if not status.ok:
            raise OSError(f"XRootD vector read of {self.path} failed: {_why(status)}")
        return [chunk.buffer for chunk in info.chunks]

    def close(self) -> None:
        if self._file.is_open():
            self._file.close(timeout=self._timeout)


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
    from hepstream.partfiles import part_name

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
