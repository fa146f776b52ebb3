"""Temp files of a write in progress: ``.NAME.hepstream-<pid>.part`` beside ``NAME``.

The name says whose file it is and which process wrote it, so a later write to the same
``NAME`` removes what a killed job (SIGKILL, power loss) left, and only when that process is
gone. Hidden and ``.part``-suffixed, such a file never matches an input glob like ``*.root``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from collections.abc import Iterator
from pathlib import Path

_PART_RE = re.compile(r"^\.(?P<name>.+)\.hepstream-(?P<pid>\d+)\.part$")


def part_name(name: str, pid: int | None = None) -> str:
    """The temp name of ``name`` for process ``pid`` (default: this one)."""
    return f".{name}.hepstream-{os.getpid() if pid is None else pid}.part"


def parse_part(name: str) -> tuple[str, int] | None:
    """``(final name, pid)`` of a hepstream temp name, or None for any other name."""
    match = _PART_RE.match(name)
    return (match["name"], int(match["pid"])) if match else None


def is_part(name: str) -> bool:
    """Whether ``name`` is a hepstream temp file (never an input, never an output)."""
    return parse_part(name) is not None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one we may not signal counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(directory: Path, name: str) -> list[Path]:
    """Delete temp files of ``name`` in ``directory`` whose writer process is dead."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(directory):
            parsed = parse_part(entry.name)
            if parsed and parsed[0] == name and not pid_alive(parsed[1]):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def create_part(target: Path) -> Path:
    """Create (exclusively) this process's temp file for ``target`` after clearing stale ones."""
    remove_stale(target.parent, target.name)
    part = target.with_name(part_name(target.name))
    part.unlink(missing_ok=True)  # ours, from an earlier write in this process that died
    os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return part


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """The one way hepstream writes a file: a temp path beside ``target`` to fill (by hand or
    with a tool: qemu-img, tar, a copy); renamed onto ``target`` when the block succeeds,
    deleted when it raises, so ``target`` is never half written and no temp file stays."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    part = create_part(target)
    try:
        yield part
        os.replace(part, target)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: a directory, or a lock file made if missing.

    Threads and processes of one machine that would download the same thing take turns;
    the next one in finds it in place. A lock file stays: removing it would let a waiter
    lock a file a newcomer no longer sees. Closing the descriptor releases the lock.
    """
    flags = os.O_RDONLY if path.is_dir() else os.O_RDWR | os.O_CREAT
    fd = os.open(path, flags, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
