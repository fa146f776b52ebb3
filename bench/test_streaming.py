"""Suite 2: read the plugin's branches of one whole file through three uproot handlers.

hepstream's ``StreamingSource`` against uproot's ``XRootDSource`` and fsspec-xrootd, on
loopback and through the WAN proxy; the same branches, the same cluster-aligned chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.conftest import PLUGIN, link_names, rtt_of
from bench.readers import HANDLERS, handler_options, read_file
from bench.settings import BenchSettings, current_settings

pytestmark = pytest.mark.benchmark(group="streaming")


@pytest.fixture(scope="session")
def payload(sample_files: list[Path]) -> dict:
    """Branches, events and compressed bytes of the file every handler reads."""
    import uproot

    from hepstream.plugin.loader import load_plugin

    branches = list(load_plugin(str(PLUGIN)).branches)
    path = sample_files[0]
    with uproot.open(path) as file:
        tree = file["events"]
        nbytes = sum(tree[b].compressed_bytes for b in branches)
        return {"name": path.name, "branches": branches, "events": tree.num_entries,
                "bytes": nbytes}  # fmt: skip


@pytest.mark.parametrize("link", link_names(current_settings()))
@pytest.mark.parametrize("handler", HANDLERS)
def test_read(benchmark, settings: BenchSettings, link_urls, payload, handler, link) -> None:
    from hepstream.job.runner import JobSpec

    url = f"{link_urls[link]}//data/{payload['name']}"
    options = handler_options(handler)
    benchmark.extra_info.update({
        "suite": "streaming", "handler": handler, "link": link, "rtt_ms": rtt_of(link),
        "bandwidth_mbps": settings.bandwidth_mbps if rtt_of(link) is not None else None,
        "events": payload["events"], "bytes": payload["bytes"],
    })  # fmt: skip
    events = benchmark.pedantic(
        read_file,
        args=(url, payload["branches"], JobSpec.chunk_bytes),
        kwargs=options,
        rounds=settings.rounds_io,
        warmup_rounds=1,  # connects and logs in: every handler then reuses the channel
    )
    assert events == payload["events"]
