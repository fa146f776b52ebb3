"""Local-disk backend: positional reads on one file descriptor."""

from __future__ import annotations

import os

from hepstream.errors import InputError


class LocalBackend:
    """Reads byte ranges of a local file with ``os.pread`` (thread-safe, no seek state)."""

    #: A local read is never retried (a failed one is the file's, or the disk's, fault).
    retried = 0
    #: No site cache and no origin: a local file's bytes are neither (see IOStats).
    cache_bytes = origin_bytes = short_reads = 0
    cache_fallback: str | None = None

    def __init__(self, path: str) -> None:
        self.path = path[len("file://") :] if path.startswith("file://") else path
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise InputError(f"input file not found: {self.path}; check the path") from None
        except OSError as err:
            raise InputError(f"cannot open input {self.path}: {err.strerror}") from None
        self.size = os.fstat(self._fd).st_size

    def read(self, start: int, stop: int) -> bytes:
        """Bytes ``[start, stop)``."""
        return os.pread(self._fd, stop - start, start)

    def readv(self, segments: tuple[tuple[int, int], ...]) -> list[bytes]:
        """Bytes of each segment, in order."""
        return [os.pread(self._fd, stop - start, start) for start, stop in segments]

    @property
    def unavailable(self) -> bool:
        """Never: a local disk has no server to stop answering."""
        return False

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
