"""SIGINT and SIGTERM become a clean stop: an :class:`~hepstream.errors.Interrupted` raised in
the main thread, so the job's own cleanup (temp files, ``failed`` report) runs before exit."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from hepstream.errors import Interrupted

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[list[Interrupted]]:
    """Within the block, the first SIGINT/SIGTERM raises ``Interrupted``; later ones are
    ignored so the cleanup it triggers finishes (SIGKILL still stops everything). The list
    it yields holds that ``Interrupted`` once a signal came, whoever caught the exception.

    A SIGINT that the parent set to ignored (``cmd &`` in a script) stays ignored, as Python
    itself does. Outside the main thread signals cannot be caught: the block runs unchanged.
    """
    fired: list[Interrupted] = []
    if threading.current_thread() is not threading.main_thread():
        yield fired
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if fired:
            return
        fired.append(Interrupted(signum))
        raise fired[0]

    previous: dict[signal.Signals, Callable[[int, FrameType | None], Any] | int | None] = {}
    for signum in STOP_SIGNALS:
        if signum == signal.SIGINT and signal.getsignal(signum) == signal.SIG_IGN:
            continue
        previous[signum] = signal.signal(signum, handler)
    try:
        yield fired
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)
