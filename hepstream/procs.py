"""Child daemons started in their own process group (xrootd, Slurm, Dask, squid, ...)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Self


def stop_group(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), wait
    up to ``timeout`` seconds, then SIGKILL it; nothing of it is left running."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


class Service:
    """Something started and stopped (a daemon, a proxy, a cluster) as a context manager:
    ``with XRootDServer(...) as server`` starts it and stops it on the way out, whatever
    happened inside. Subclasses define :meth:`start` (returning the instance) and
    :meth:`stop`."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
