"""What the reader needs to know of one input's event store, TTree or RNTuple.

Each store answers the same questions from the file's metadata: how many entries, where
the clusters end, how many bytes an entry holds, which byte ranges will be asked for to
read some fields of some entries (and in which order), and the arrays themselves. The
reader plans and streams both kinds through the same code: :class:`EventStore`, made by
:func:`event_store`.
"""

from __future__ import annotations

from typing import Any, Protocol

import uproot

from hepstream.errors import InputError
from hepstream.root.rntuple import RNTupleStore
from hepstream.root.ttree import TTreeStore


class EventStore(Protocol):
    """One input's TTree or RNTuple, as the reader plans and reads it."""

    #: ``"TTree"`` or ``"RNTuple"``, for messages.
    kind: str
    #: What the store calls one of its named columns in messages: ``"branch"``, ``"field"``.
    noun: str
    num_entries: int

    def missing(self, names: list[str]) -> list[str]:
        """The ``names`` the store has nothing of."""
        ...

    def check_readable(self, names: list[str]) -> None:
        """Raise the one-line :class:`InputError` for a column of ``names`` that cannot be
        read, before any of its bytes are."""
        ...

    def cluster_offsets(self) -> list[int]:
        """The first entry of every cluster, and the number of entries."""
        ...

    def cut_clusters(self, names: list[str]) -> bool:
        """Whether a chunk may end inside a cluster much larger than a chunk."""
        ...

    def bytes_per_entry(self, names: list[str]) -> float:
        """Uncompressed bytes of ``names`` per entry, on average."""
        ...

    def ranges(self, names: list[str], start: int, stop: int) -> list[tuple[int, int]]:
        """The byte ranges read for entries ``[start, stop)`` of ``names``, in the order
        :meth:`arrays` asks for them."""
        ...

    def prepare(self, names: list[str], start: int, stop: int) -> None:
        """Start reading entries ``[start, stop)`` of ``names`` (see :meth:`arrays`)."""
        ...

    def arrays(self, names: list[str], start: int, stop: int) -> Any:
        """Entries ``[start, stop)`` of ``names`` as one awkward record array."""
        ...


def event_store(path: str, file: Any, name: str) -> EventStore:
    """The TTree or RNTuple ``name`` of uproot's open ``file``, as a store; clear errors if
    not."""
    try:
        obj = file[name]
    except (KeyError, uproot.KeyInFileError):
        names = sorted({key.split(";")[0] for key in file.keys(recursive=False)})
        raise InputError(
            f"{path} has no TTree {name!r} nor an RNTuple of that name (it has {names}); "
            f"fix the plugin's tree"
        ) from None
    if isinstance(obj, uproot.behaviors.RNTuple.RNTuple):
        return RNTupleStore(path, obj)
    if hasattr(obj, "common_entry_offsets"):
        return TTreeStore(path, obj)
    raise InputError(
        f"{path}: {name!r} is a {type(obj).__name__.removeprefix('Model_')}, "
        f"not a TTree or RNTuple; fix the plugin's tree"
    )
