"""What is wrong with a file that should be ROOT: a pure check of its first bytes and size.

A ROOT file starts with ``b"root"``, its format version and ``fBEGIN``, then ``fEND``: the
file's length when it was closed (4 bytes, 8 from version 1000000 on). A shorter file was cut
(copy or transfer interrupted); a file without the magic is not ROOT at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from hepstream.errors import HepstreamError, InputError
from hepstream.io.urls import is_remote
from hepstream.io.xrootd import XRootDBackend

#: Bytes that hold the magic, the version, fBEGIN and a 64-bit fEND.
HEADER_BYTES = 20
_BIG_FILE_VERSION = 1_000_000


class _Opened(Protocol):
    """What an opener gives: something to close (uproot's file)."""

    def close(self) -> None: ...


T = TypeVar("T", bound=_Opened)


def expected_size(head: bytes) -> int | None:
    """``fEND`` from a ROOT file's first bytes, or None if they are not a ROOT header."""
    if len(head) < 16 or head[:4] != b"root":
        return None
    version = int.from_bytes(head[4:8], "big")
    if version >= _BIG_FILE_VERSION:
        return int.from_bytes(head[12:20], "big") if len(head) >= 20 else None
    return int.from_bytes(head[12:16], "big")


def header_problem(head: bytes, size: int) -> str | None:
    """Why a file of ``size`` bytes starting with ``head`` cannot be read, or None if its
    header and length agree. The answer completes ``f"{path} {answer}"``."""
    if size == 0:
        return "is empty (0 bytes); copy it again or drop it from the inputs"
    if len(head) < 4 or head[:4] != b"root":
        return f"is not a ROOT file (it starts with {head[:8]!r}); check the input list"
    end = expected_size(head)
    if end is None:
        return f"is truncated: {size:,} bytes, too short for a ROOT header; copy it again"
    return length_problem(end, size)


def length_problem(end: int, size: int) -> str | None:
    """Why a file of ``size`` bytes whose header says ``end`` is cut, or None."""
    if size < end:
        return (
            f"is truncated: {size:,} bytes of the {end:,} its header expects "
            f"({100 * size / end:.0f} %); copy it again"
        )
    return None


def read_head(path: str) -> tuple[bytes, int]:
    """The first :data:`HEADER_BYTES` of ``path`` (local or ``root://``) and its size."""
    if is_remote(path):
        backend = XRootDBackend(path, timeout=30)
        try:
            return backend.read(0, min(HEADER_BYTES, backend.size)), backend.size
        finally:
            backend.close()
    with open(path, "rb") as handle:
        head = handle.read(HEADER_BYTES)
        handle.seek(0, 2)
        return head, handle.tell()


def check(path: str, head: bytes, size: int) -> None:
    """Raise the one-line :class:`InputError` for a bad header or length."""
    problem = header_problem(head, size)
    if problem is not None:
        raise InputError(f"{path} {problem}")


def _probe(path: str) -> str | None:
    try:
        head, size = read_head(path)
    except (OSError, HepstreamError):
        return None  # cannot even look: the opener's own error says more
    return header_problem(head, size)


def open_checked(path: str, open_file: Callable[[], T]) -> T:
    """``open_file()`` (e.g. ``uproot.open``), with a clear line for empty, not-ROOT and
    truncated files instead of the library's, which stops mid-sentence or says nothing.

    A file that opens is checked against the length its header promises; a file that does
    not is probed (first bytes and size) for the reason.
    """
    try:
        opened = open_file()
    except HepstreamError:
        raise
    except Exception:
        problem = _probe(path)
        if problem is not None:
            raise InputError(f"{path} {problem}") from None
        raise
    inner = getattr(opened, "file", None)  # uproot's ReadOnlyFile
    end = getattr(inner, "fEND", None)
    size = getattr(getattr(inner, "source", None), "num_bytes", None)
    problem = length_problem(end, size) if isinstance(end, int) and isinstance(size, int) else None
    if problem is not None:
        opened.close()
        raise InputError(f"{path} {problem}")
    return opened
