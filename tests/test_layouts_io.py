"""Files hepstream did not write, streamed over the real xrootd: every layout of the bench
matrix (uproot big baskets, ROOT's NanoAOD-like TTree and RNTuple, small baskets in big
clusters, hepstream's own tau1n) reads exactly what it needs, local and ``root://``, with
identical output, within its memory bound. Counters, not timings."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import pytest
import uproot

from bench.layouts import LAYOUTS, answer, generate
from hepstream.io import StreamConfig
from hepstream.job.runner import JobSpec, run_job

pytestmark = [pytest.mark.xrootd, pytest.mark.slow]

#: Small files, still several baskets/pages and clusters each; the big-basket layout needs
#: enough entries for baskets larger than one 1 MiB request.
EVENTS = {
    "uproot-bigbasket": 300_000,
    "root-nanoaod": 40_000,
    "root-nanoaod-rntuple": 40_000,
    "smallbasket": 60_000,
    "tau1n": 30_000,
}
#: The target of issue 10: bytes read at most 5 % over what the plan needed.
OVERREAD = 1.05


@pytest.fixture(scope="module")
def layout_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="hepstream-layouts-"))
    base.chmod(0o755)
    try:
        for name, n_events in EVENTS.items():
            generate(name, base / f"{name}.root", n_events, seed=5)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def layout_server(layout_dir: Path):
    from hepstream.tools.serve import XRootDServer

    with XRootDServer(layout_dir) as server:
        yield server


def _job(name: str, path: str, out: Path, **options) -> dict:
    spec = JobSpec(str(LAYOUTS[name].plugin), (path,), str(out), **options)
    return run_job(spec).asdict()


def _assert_exact(report: dict) -> None:
    assert report["status"] == "ok"
    assert report["bytes_unplanned"] == 0
    assert report["bytes_read"] <= OVERREAD * report["bytes_needed"]
    assert report["cache_peak_bytes"] <= report["cache"]
    for entry in report["files"]:
        assert entry["bytes_read"] <= OVERREAD * entry["bytes_needed"]
        assert entry["bytes_unplanned"] == 0


def _output(path: Path, tree: str) -> ak.Array:
    with uproot.open(path) as file:
        return file[tree].arrays()


@pytest.mark.parametrize("chunk", [8 << 20, 96 << 10], ids=["chunk8M", "chunk96k"])
@pytest.mark.parametrize("name", list(EVENTS))
def test_every_layout_reads_what_it_needs_local_and_remote(
    name, chunk, layout_dir, layout_server, tmp_path
):
    """Small chunks cut big clusters: baskets straddling a cut are fetched once, read twice."""
    local_path = str(layout_dir / f"{name}.root")
    local = _job(name, local_path, tmp_path / "local.root", chunk_bytes=chunk)
    remote = _job(name, layout_server.data_url(f"{name}.root"), tmp_path / "remote.root",
                  chunk_bytes=chunk)  # fmt: skip
    _assert_exact(local)
    _assert_exact(remote)
    tree = LAYOUTS[name].tree
    assert ak.array_equal(_output(tmp_path / "local.root", tree),
                          _output(tmp_path / "remote.root", tree))  # fmt: skip
    want = answer(name, [local_path])
    assert local["events_read"] == remote["events_read"] == want.events
    assert local["events_selected"] == remote["events_selected"] == want.selected > 0


@pytest.mark.parametrize("name", ["uproot-bigbasket", "root-nanoaod-rntuple", "smallbasket"])
def test_an_explicit_cache_is_never_exceeded(name, layout_server, tmp_path):
    """A bound just above the largest basket or page: slower, never exceeded, same output."""
    url = layout_server.data_url(f"{name}.root")
    roomy = _job(name, url, tmp_path / "roomy.root")
    tight = _job(name, url, tmp_path / "tight.root", auto_cache=False,
                 stream=StreamConfig(cache=3 << 20))  # fmt: skip
    assert tight["status"] == roomy["status"] == "ok"
    assert tight["cache"] == 3 << 20 < roomy["cache"]
    assert 0 < tight["cache_peak_bytes"] <= 3 << 20
    tree = LAYOUTS[name].tree
    assert ak.array_equal(_output(tmp_path / "roomy.root", tree),
                          _output(tmp_path / "tight.root", tree))  # fmt: skip


def test_rntuple_over_root_gives_the_output_of_the_same_events_as_a_ttree(layout_server, tmp_path):
    ntuple = _job("root-nanoaod-rntuple", layout_server.data_url("root-nanoaod-rntuple.root"),
                  tmp_path / "from_rntuple.root")  # fmt: skip
    ttree = _job("root-nanoaod", layout_server.data_url("root-nanoaod.root"),
                 tmp_path / "from_ttree.root")  # fmt: skip
    assert ntuple["events_selected"] == ttree["events_selected"] > 0
    got = _output(tmp_path / "from_rntuple.root", "Events")
    want = _output(tmp_path / "from_ttree.root", "Events")
    assert got.fields == want.fields
    assert ak.array_equal(got, want)


def test_a_field_uproot_cannot_read_is_one_clear_line(tmp_path):
    """A plugin naming an RNTuple field that does not exist, or a TTree branch that does
    not: one line naming the file, the kind of store and the name."""
    from hepstream.errors import InputError

    nt = tmp_path / "nt.root"
    with uproot.recreate(nt) as file:
        file.mkrntuple("Events", {"x": [1.0, 2.0]})
    plugin = tmp_path / "plug.py"
    plugin.write_text(
        "import numpy as np, hepstream\n"
        "class P(hepstream.Selection):\n"
        "    tree = 'Events'\n"
        "    branches = ['x', 'nosuch']\n"
        "    def select(self, events):\n"
        "        return np.ones(len(events), bool)\n"
    )
    with pytest.raises(InputError, match=r"RNTuple 'Events' has no field nosuch"):
        run_job(JobSpec(str(plugin), (str(nt),), str(tmp_path / "o.root")))
