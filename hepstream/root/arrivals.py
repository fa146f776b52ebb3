"""Decoding byte ranges as they arrive: the scheduler between uproot's source and the basket
and page decoders.

A chunk of a job asks for tens to thousands of byte ranges at once; each is decoded on the
decompression threads as soon as its bytes are there, in whichever thread brought them, and
nothing here waits until the caller asks for the results.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

from hepstream.io.pool import WorkPool

R = TypeVar("R")

#: One range's decoder: its index among the ranges, and uproot's chunk of its bytes.
Decode = Callable[[int, Any], R]
#: Many ranges' decoder: ``(index, chunk)`` pairs to their results, in the same order.
DecodeMany = Callable[[list[tuple[int, Any]]], list[R]]


def decode_as_they_arrive(
    source: Any,
    ranges: list[tuple[int, int]],
    executor: Executor,
    decode: Decode[R],
    decode_many: DecodeMany[R] | None = None,
) -> Arrivals[R]:
    """Ask uproot's ``source`` for all ``ranges`` at once (its ``chunks``: hepstream's
    serves them from the read plan) and run ``decode(i, chunk)`` on ``executor`` for range
    ``i`` as soon as its bytes are there, in whichever thread brought them. Nothing here
    waits: the caller may ask for the next chunk's ranges before this one's are decoded,
    and gets the results from :meth:`Arrivals.results`.

    With ``decode_many`` (a list of ``(i, chunk)`` to their results), the ranges already
    there when ``chunks`` returns are decoded in one batch per decompression thread."""
    arrivals = Arrivals(len(ranges), executor, decode, decode_many)
    if ranges:
        arrivals.expect(source.chunks(ranges, notifications=arrivals))
    return arrivals


class Arrivals(Generic[R]):
    """What uproot's sources call a notification queue: each ``put`` chunk (its bytes
    there, or its error) is decoded on the executor; one latch for all of them (a chunk has
    tens to thousands of ranges: no future, lock or condition per range)."""

    def __init__(
        self,
        n: int,
        executor: Executor,
        decode: Decode[R],
        decode_many: DecodeMany[R] | None = None,
    ) -> None:
        self._executor, self._decode, self._decode_many = executor, decode, decode_many
        self._results: list[Any] = [None] * n
        self._left = n
        self._error: BaseException | None = None
        self._done = threading.Condition(threading.Lock())
        self._which: dict[int, int] | None = None  # id(chunk) -> range, once chunks() returned
        self._early: list[Any] = []  # chunks put before that

    def expect(self, chunks: list[Any]) -> None:
        """The chunks ``source.chunks`` returned, in the order of the ranges: those put
        before it returned are decoded now, in batches where there is a ``decode_many``."""
        with self._done:
            which = self._which = {id(chunk): i for i, chunk in enumerate(chunks)}
            early, self._early = self._early, []
        if self._decode_many is None or len(early) < 2:
            for chunk in early:
                self.put(chunk)
            return
        errors = [chunk for chunk in early if isinstance(chunk, BaseException)]
        if errors:
            self._fail(errors[0])
            return
        pairs = [(which[id(chunk)], chunk) for chunk in early]
        parts = min(len(pairs), len(getattr(self._executor, "threads", ())) or 1)
        for k in range(parts):  # interleaved: each batch gets a share of every branch
            self._schedule(self._run_many, pairs[k::parts])

    def _schedule(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            if isinstance(self._executor, WorkPool):  # no Future per call
                self._executor.run(fn, *args)
            else:
                self._executor.submit(fn, *args)
        except RuntimeError as err:  # the file closed meanwhile: nobody waits for it
            self._fail(err)

    def _run_many(self, pairs: list[tuple[int, Any]]) -> None:
        assert self._decode_many is not None
        try:
            results = self._decode_many(pairs)
        except BaseException as err:
            self._fail(err)
            return
        with self._done:
            for (i, _), result in zip(pairs, results, strict=True):
                self._results[i] = result
            self._left -= len(pairs)
            if not self._left:
                self._done.notify_all()

    def put(self, chunk: Any) -> None:
        """uproot's source hands over one chunk, its bytes there (or its error)."""
        if isinstance(chunk, BaseException):  # an uproot source's way to report a failure
            self._fail(chunk)
            return
        with self._done:
            if self._which is None:
                self._early.append(chunk)
                return
            i = self._which[id(chunk)]
        self._schedule(self._run, i, chunk)

    def _run(self, i: int, chunk: Any) -> None:
        try:
            result = self._decode(i, chunk)
        except BaseException as err:
            self._fail(err)
            return
        with self._done:
            self._results[i] = result
            self._left -= 1
            if not self._left:
                self._done.notify_all()

    def _fail(self, error: BaseException) -> None:
        with self._done:
            if self._error is None:
                self._error = error
            self._done.notify_all()

    def results(self) -> list[R]:
        """Every range's decoded result, in the order of the ranges, once all are there;
        the first error instead, as soon as there is one."""
        with self._done:
            while self._left and self._error is None:
                self._done.wait()
            if self._error is not None:
                raise self._error
            return self._results
