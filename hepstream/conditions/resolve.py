"""Pure IOV resolution: which payload is valid for each event, and where a chunk splits.

Events carry ``(run, subrun)``; each is packed into one int64 key (run in the high bits)
so numpy compares keys exactly as the tuples compare: lexicographically. An event belongs
to the last IOV whose ``since`` is <= its key; an event before a tag's first IOV is an
error that names the run and the record.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from hepstream.conditions.model import IOV, MAX_RUN, MAX_SUBRUN, GlobalTag, Since, Tag
from hepstream.errors import ConfigError, InputError


@dataclass(frozen=True)
class Piece:
    """Events ``[start, stop)`` of a chunk, all valid for the same IOV of every record."""

    start: int
    stop: int
    iovs: dict[str, IOV]


def pack(since: Since) -> int:
    """One int64 ordered like the tuple ``(run, subrun)``."""
    return (int(since[0]) << 32) | int(since[1])


def event_keys(runs: np.ndarray, subruns: np.ndarray | None = None) -> np.ndarray:
    """Packed keys of events; sub-run 0 when the plugin has no sub-run branch."""
    runs = np.asarray(runs).astype(np.int64, copy=False)
    if len(runs) and (runs.min() < 0 or runs.max() >= MAX_RUN):
        raise InputError(f"run numbers must be in 0..{MAX_RUN - 1}; got {runs.min()}..{runs.max()}")
    keys = runs << 32
    if subruns is not None:
        subruns = np.asarray(subruns).astype(np.int64, copy=False)
        if len(subruns) and (subruns.min() < 0 or subruns.max() >= MAX_SUBRUN):
            raise InputError(f"sub-run numbers must be in 0..{MAX_SUBRUN - 1}")
        keys = keys | subruns
    return keys


def _unpack(key: int) -> Since:
    return (int(key) >> 32, int(key) & 0xFFFFFFFF)


def _where(key: int) -> str:
    run, subrun = _unpack(key)
    return f"run {run} sub-run {subrun}"


def iov_indices(tag: Tag, keys: np.ndarray) -> np.ndarray:
    """Index into ``tag.iovs`` of each event's IOV; a MissingIOV error if one has none."""
    sinces = np.array([pack(iov.since) for iov in tag.iovs], dtype=np.int64)
    index = np.searchsorted(sinces, keys, side="right") - 1
    if len(index) and index.min() < 0:
        first = keys[np.argmax(index < 0)]
        start = (
            f"its first IOV starts at {tag.iovs[0].since[0]}:{tag.iovs[0].since[1]}"
            if tag.iovs
            else "it has no IOVs"
        )
        raise InputError(
            f"no IOV of record {tag.record!r} (tag {tag.name}) covers {_where(first)}; "
            f"{start}: add an IOV for it or use another global tag"
        )
    return index


def lookup(tag: Tag, run: int, subrun: int = 0) -> IOV:
    """The IOV valid for one ``(run, subrun)``."""
    keys = np.array([pack((run, subrun))], dtype=np.int64)
    return tag.iovs[int(iov_indices(tag, keys)[0])]


def tags_for(gt: GlobalTag, records: list[str]) -> dict[str, Tag]:
    """The tags of ``records`` in ``gt``; a record the global tag lacks is a config error."""
    missing = [r for r in records if r not in gt.tags]
    if missing:
        raise ConfigError(
            f"global tag {gt.name} has no tag for record(s) {', '.join(missing)} "
            f"(it has {', '.join(sorted(gt.tags)) or 'none'}); choose another global tag"
        )
    return {r: gt.tags[r] for r in records}


def split(tags: dict[str, Tag], runs: np.ndarray, subruns: np.ndarray | None = None) -> list[Piece]:
    """Cut events into contiguous pieces over which no record changes IOV.

    Events need not be sorted: a piece ends wherever any record's IOV changes, so a chunk
    that goes back and forth between runs gives more, shorter pieces, never a wrong one.
    An empty chunk gives no pieces.
    """
    keys = event_keys(runs, subruns)
    n = len(keys)
    if n == 0:
        return []
    records = list(tags)
    if not records:
        return [Piece(0, n, {})]
    # Fast path, the usual chunk: IOV indices grow with the key, so if the smallest and the
    # largest key share every record's IOV, so does every event between them.
    ends = np.array([keys.min(), keys.max()], dtype=np.int64)
    bounds = [iov_indices(tags[r], ends) for r in records]
    if all(b[0] == b[1] for b in bounds):
        return [
            Piece(0, n, {r: tags[r].iovs[int(b[0])] for r, b in zip(records, bounds, strict=True)})
        ]
    index = np.stack([iov_indices(tags[r], keys) for r in records])
    cuts = np.flatnonzero(np.any(index[:, 1:] != index[:, :-1], axis=0)) + 1
    edges = [0, *cuts.tolist(), n]
    return [
        Piece(lo, hi, {r: tags[r].iovs[int(index[k, lo])] for k, r in enumerate(records)})
        for lo, hi in itertools.pairwise(edges)
    ]
