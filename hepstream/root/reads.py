"""What both event stores share: the arrays of some entries asked for in two steps, and
the one error line for whatever a damaged input makes uproot or the decoders raise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import awkward as ak

from hepstream.errors import HepstreamError, InputError

T = TypeVar("T")

#: A read started: the field names, first entry and end entry it was asked for.
_Key = tuple[tuple[str, ...], int, int]


class StagedReads:
    """The arrays of some entries, asked for in two steps (both stores): ``prepare``
    starts the reads and decodes, ``arrays`` waits for them and builds the arrays."""

    def __init__(self, path: str, obj: Any) -> None:
        self.path = path
        self.obj = obj  # uproot's TTree or RNTuple
        self._pending: dict[_Key, Callable[[], Any]] = {}

    def prepare(self, names: list[str], start: int, stop: int) -> None:
        """Start reading entries ``[start, stop)`` of ``names`` now: their byte ranges are
        asked for and each is decoded as it arrives, while the caller builds an earlier
        chunk. :meth:`arrays` with the same arguments finishes it; nothing is read twice."""
        key = (tuple(names), start, stop)
        if key not in self._pending:
            self._pending[key] = self._started(names, start, stop)

    def arrays(self, names: list[str], start: int, stop: int) -> Any:
        """Entries ``[start, stop)`` of ``names`` as one awkward record array."""
        finish = self._pending.pop((tuple(names), start, stop), None)
        if finish is None:
            finish = self._started(names, start, stop)
        return guard(self.path, f"entries {start}-{stop}", finish)

    def _started(self, names: list[str], start: int, stop: int) -> Callable[[], Any]:
        try:
            return self._start(names, start, stop)
        except Exception as err:  # damage found this early is raised with the arrays
            failure = err

            def failed() -> Any:
                raise failure

            return failed

    def _start(self, names: list[str], start: int, stop: int) -> Callable[[], Any]:
        """Start the reads of entries ``[start, stop)`` of ``names``; the function that
        gives their arrays (each store its own)."""
        raise NotImplementedError


def guard(path: str, what: str, read: Callable[[], T]) -> T:
    """Run ``read``; whatever a damaged file makes uproot or the decoders raise becomes one
    :class:`InputError` naming the file and ``what`` (exit 3, or a skipped file under
    ``--skip-bad-files``).

    Any ``Exception``: a shifted or flipped structure surfaces as whatever the parser meets
    first (uproot's ``DeserializationError``, ``struct.error``, ``IndexError``, ``KeyError``,
    ``OverflowError``, a ``MemoryError`` from a size no file holds, ...), and a list of the
    expected ones only moves the traceback to the next one. Interruptions
    (``KeyboardInterrupt``) and hepstream's own errors pass through.
    """
    try:
        return read()
    except HepstreamError:
        raise
    except Exception as err:
        raise damaged(path, what, err) from err


def damaged(path: str, what: str, err: Exception) -> InputError:
    """The one line for ``err``, met reading ``what`` of the file ``path`` (see :func:`guard`)."""
    if isinstance(err, MemoryError):
        return InputError(
            f"{path}: cannot read {what}: it claims a size no memory holds; "
            f"the file may be corrupt, copy it again"
        )
    said = " ".join(str(err).split())  # uproot's messages run over several lines
    first = said if len(said) <= 200 else said[:199] + "…"
    return InputError(
        f"{path}: cannot read {what} ({type(err).__name__}: {first}); "
        f"the file may be corrupt, copy it again"
    )


def check_valid(array: Any, what: str) -> None:
    """Raise if ``array``'s lists point outside their items or run backwards (what a
    plugin's compiled loop would read out of bounds): arrays hepstream did not build itself
    are checked before they reach it."""
    problem = ak.validity_error(array)
    if problem:
        raise ValueError(f"{what} are inconsistent ({problem.split(' (in compiled code')[0]})")
