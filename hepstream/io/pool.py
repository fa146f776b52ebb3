"""A light thread pool for the calls a job makes thousands of times per file."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: One queued call: the function, its arguments and the Future to settle (None for
#: :meth:`WorkPool.run`); None itself tells a thread to stop.
_Item = tuple[Callable[..., object], tuple[object, ...], "Future[Any] | None"]


class WorkPool(Executor):
    """Threads that run calls in the order they were handed in: each file's reads
    (``hepstream-io``) and its decompression executor (``hepstream-decompress``, for
    hepstream's decoders and uproot's).

    ``submit`` queues the call and returns a Future, as an ``Executor`` must; hepstream's
    decoders use :meth:`run`, which returns nothing. Unlike ``ThreadPoolExecutor``, no
    work item, no idle semaphore and no thread count check per call: a job makes
    thousands of calls per file, each of which cost GIL time the reader and the selection
    need. A call given to :meth:`run` that raises is the caller's to report (hepstream's
    decoders and uproot catch everything in what they hand in)."""

    def __init__(self, threads: int, name: str = "hepstream-decompress") -> None:
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{k}", daemon=True)
            for k in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def threads(self) -> list[threading.Thread]:
        """The threads that decode."""
        return self._threads

    def run(self, fn: Callable[..., object], *args: object) -> None:
        """Call ``fn(*args)`` on one of the threads; RuntimeError once shut down."""
        self._put((fn, args, None))

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        future: Future[_T] = Future()
        self._put((functools.partial(fn, **kwargs) if kwargs else fn, args, future))
        return future

    def _put(self, item: _Item) -> None:
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        self._queue.put(item)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, future = item
            if future is None:
                with contextlib.suppress(BaseException):  # see the class docstring
                    fn(*args)
            elif future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as err:
                    future.set_exception(err)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if cancel_futures:  # calls not started yet are dropped, their Futures cancelled
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None and item[2] is not None:
                    item[2].cancel()
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()
