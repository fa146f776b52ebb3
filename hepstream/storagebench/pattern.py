"""The read pattern the bench replays: the requests a ``hepstream run`` job makes of a file.

The runner's own reader opens the file and plans its reads (the same functions, the same
spans, the same request shaping); this module records them as a
:class:`~hepstream.storagebench.model.ReadPattern`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from functools import partial
from typing import Any

import uproot

from hepstream.errors import ConfigError, InputError
from hepstream.io import StreamConfig, StreamingSource
from hepstream.io.budget import Budget
from hepstream.io.prefetch import Prefetcher, span_requests
from hepstream.io.spans import FilePlan, plan_reads
from hepstream.job.reader import chunk_wants, file_chunks, open_store
from hepstream.jobspec import JobSpec
from hepstream.root.header import open_checked
from hepstream.storagebench.model import ReadPattern, Segments, Step

#: The classes of an object that holds events, as ``classnames()`` names them.
_TREE_CLASSES = ("TTree", "TNtuple", "ROOT::RNTuple", "ROOT::Experimental::RNTuple")


def chunk_steps(
    plan: FilePlan, chunks: Sequence[tuple[int, int]], max_request_bytes: int
) -> list[Step]:
    """One step per chunk of the runner's plan: the spans that chunk reads first, shaped into
    requests as the prefetcher shapes them (:func:`hepstream.io.prefetch.span_requests`)."""
    firsts: list[list[tuple[int, int]]] = [[] for _ in chunks]
    for span in plan.spans:
        firsts[span.first_chunk].append((span.start, span.stop))
    return [
        Step(
            tuple(r.segments for r in span_requests(wanted, max_request_bytes)),
            events=stop - start,
        )
        for wanted, (start, stop) in zip(firsts, chunks, strict=True)
        if wanted or stop > start
    ]


def read_pattern(
    url: str,
    tree: str | None = None,
    branches: Sequence[str] | None = None,
    stream: StreamConfig | None = None,
    chunk_bytes: int | None = None,
) -> ReadPattern:
    """The requests a ``hepstream run`` job makes of ``url``: open it read-only with the
    reader's own functions (:func:`hepstream.job.reader.open_store`, ``file_chunks``,
    ``chunk_wants``, :func:`hepstream.io.spans.plan_reads`), recording the metadata
    requests the open makes, then each chunk's planned spans shaped as the prefetcher does.

    ``branches`` may hold names or glob patterns; default: every branch with data.
    """
    stream = stream or StreamConfig()
    chunk_bytes = chunk_bytes or JobSpec.chunk_bytes
    name, names = _discover(url, tree, branches, stream)
    metadata: list[Segments] = []

    class _Recording(StreamingSource):
        def _fetch(self, segments: Segments, kind: str = "") -> list[bytes]:
            if self.reads is None:  # before the plan: the job's metadata reads
                metadata.append(tuple((int(a), int(b)) for a, b in segments))
            return super()._fetch(segments, kind)

    prefetcher = Prefetcher(Budget(stream.cache))
    file, store = open_store(url, name, names, stream, prefetcher=prefetcher, handler=_Recording)
    try:
        chunks = file_chunks(store, names, chunk_bytes)
        plan = plan_reads(chunk_wants(store, chunks, names, []))
        source = file.file.source
        hits, misses = source.cache.hits, source.cache.misses
    finally:
        file.close()
    steps = chunk_steps(plan, chunks, stream.max_request_bytes)
    if not plan.spans:
        raise InputError(
            f"{store.kind} {name} in {url} has no data to read; pick a file with entries"
        )
    return ReadPattern(
        url,
        name,
        tuple(names),
        (*(Step((segs,), metadata=True) for segs in metadata), *steps),
        spans=tuple((span.start, span.stop) for span in plan.spans),
        metadata_hit_fraction=hits / (hits + misses) if hits + misses else 0.0,
    )


def _discover(
    url: str, tree: str | None, branches: Sequence[str] | None, stream: StreamConfig
) -> tuple[str, list[str]]:
    """The tree's name and the branches to read (globs expanded), from one read-only open."""
    opener = partial(uproot.open, url, handler=StreamingSource, hepstream_config=stream)
    try:
        file = open_checked(url, opener)
    except FileNotFoundError:
        raise InputError(f"input file not found: {url}; check the path") from None
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read {url}: {str(err).splitlines()[0]}") from None
    with file:
        obj = _find_tree(file, url, tree)
        if hasattr(obj, "itervalues"):
            with_data = [b.name for b in obj.itervalues(recursive=True) if b.num_baskets > 0]
        else:  # an RNTuple: its top-level fields
            with_data = list(obj.keys())
        chosen = with_data
        if branches:
            chosen = [b for b in with_data if any(fnmatch.fnmatchcase(b, p) for p in branches)]
            if not chosen:
                raise ConfigError(
                    f"--branches {','.join(branches)} matches no branch with data in {url}; "
                    f"e.g. {', '.join(with_data[:5])}"
                )
        name = obj.object_path.lstrip("/").split(";")[0]
    return name, chosen


def _find_tree(file: uproot.ReadOnlyDirectory, url: str, tree: str | None) -> Any:
    """``tree`` in ``file`` (a TTree or RNTuple), or its first event-holding object."""
    if tree is not None:
        try:
            obj = file[tree]
        except Exception:
            raise ConfigError(f"no object {tree!r} in {url}; see its keys with uproot") from None
        if not hasattr(obj, "num_entries"):
            raise ConfigError(f"{tree!r} in {url} is a {type(obj).__name__}, not a TTree")
        return obj
    names = [k for k, cls in file.classnames().items() if cls in _TREE_CLASSES]
    if not names:
        raise InputError(f"{url} holds no TTree; pass a file with event data")
    return file[names[0]]
