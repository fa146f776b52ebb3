"""Read a plugin's branches of one file through an uproot source handler, as a job chunks it.

The baselines of the streaming and layout suites: hepstream's ``StreamingSource`` against
uproot's ``XRootDSource`` and fsspec-xrootd, the same branches, the same cluster-aligned
chunks. No selection, no decompression pool: the source alone.
"""

from __future__ import annotations

from typing import Any

import uproot

from hepstream.io import StreamConfig, StreamingSource
from hepstream.root.chunks import entries_for_bytes, plan_chunks

#: Handler names of the benches, in table order.
HANDLERS = ("hepstream", "uproot-xrootd", "uproot-fsspec")


def handler_options(name: str) -> dict[str, Any]:
    """``uproot.open`` keyword arguments selecting the handler ``name``."""
    if name == "hepstream":
        return {"handler": StreamingSource, "hepstream_config": StreamConfig()}
    if name == "uproot-xrootd":
        return {"handler": uproot.source.xrootd.XRootDSource}
    if name == "uproot-fsspec":
        return {"handler": uproot.source.fsspec.FSSpecSource}
    raise ValueError(f"unknown handler {name!r}; one of {', '.join(HANDLERS)}")


def read_file(
    url: str, branches: list[str], chunk_bytes: int, tree: str = "events", **options: Any
) -> int:
    """Open ``url``, read ``branches`` of ``tree`` chunk by chunk as a job does; events read.

    A TTree is read in chunks of whole clusters of about ``chunk_bytes`` uncompressed; an
    RNTuple (no per-field byte counts in uproot) one cluster per call.
    """
    events = 0
    with uproot.open(url, **options) as file:
        obj = file[tree]
        if hasattr(obj, "common_entry_offsets"):
            per_entry = sum(obj[b].uncompressed_bytes for b in branches) / max(1, obj.num_entries)
            entries = entries_for_bytes(chunk_bytes, per_entry, obj.num_entries)
            chunks = plan_chunks(obj.common_entry_offsets(), entries)
        else:
            chunks = [
                (int(c.num_first_entry), int(c.num_first_entry + c.num_entries))
                for c in obj.cluster_summaries
            ]
        for start, stop in chunks:
            events += len(obj.arrays(branches, entry_start=start, entry_stop=stop))
    return events
