"""Suite ``layouts`` (issue 10): the layout matrix, each layout read by its own plugin.

For every layout of ``bench.layouts``:

- ``test_layout_job``: hepstream jobs (``run_job``) from local disk, loopback ``root://`` and
  the WAN proxy at 0 and 30 ms; the output is checked against the layout's independent
  uproot + awkward answer (counts and values); bytes read and bytes needed from the report.
- ``test_layout_reader``: uproot's ``XRootDSource`` and fsspec-xrootd reading the plugin's
  branches at 30 ms (job chunking, no selection): the baselines of the WAN targets.
- ``test_layout_process`` and ``test_layout_rdf``: ``hepstream run`` processes against ROOT's
  RDataFrame (same selection in C++ strings; one thread and implicit MT on all cores), each a
  fresh process, on 1 file and on the file listed N times: start-up included (1 file) and
  steady state (the marginal rate between the two).

Run it alone with ``python -m bench -k layouts``.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.answers import Answer
from bench.conftest import LOOPBACK, proxied_links, rtt_of, wan
from bench.layouts import LAYOUTS, answer, ensure
from bench.settings import BenchSettings, current_settings

pytestmark = pytest.mark.benchmark(group="layouts")

LOCAL = "local"
#: The WAN delays of the matrix: the proxy alone and the 30 ms the targets are judged at.
RTTS = (0, 30)
FAR = wan(30)
JOB_LINKS = (LOCAL, LOOPBACK, wan(0), FAR)
READERS = ("uproot-xrootd", "uproot-fsspec")
#: RDataFrame thread settings: 0 = ``EnableImplicitMT()`` on all cores.
MT, ONE = 0, 1
SCALES = ("1 file", "N files")


def layout_events(settings: BenchSettings, name: str) -> int:
    layout = LAYOUTS[name]
    return layout.quick_events if settings.layout_quick else layout.full_events


def anchor_cases(settings: BenchSettings) -> list[tuple[str, str]]:
    """(link, scale) of the process and RDataFrame comparisons in this preset."""
    if settings.layout_full_anchor:
        return list(itertools.product((LOCAL, FAR), SCALES))
    # quick: no steady state on small files (a full-run-only target), so 1 file, locally
    return [(LOCAL, SCALES[0])]


@pytest.fixture(scope="session")
def layout_files(settings: BenchSettings) -> dict[str, Path]:
    """Each layout's cached file (generated on first use)."""
    return {name: ensure(name, layout_events(settings, name), settings.seed) for name in LAYOUTS}


@pytest.fixture(scope="session")
def layout_served(layout_files: dict[str, Path]) -> Iterator[Path]:
    """A world-traversable directory holding hard links to the layout files."""
    from bench.data import stage

    base = Path(tempfile.mkdtemp(prefix="hepstream-layouts-"))
    base.chmod(0o755)
    try:
        stage(list(layout_files.values()), base)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def layout_links(settings: BenchSettings, layout_served: Path) -> Iterator[dict[str, str]]:
    """``root://host:port`` per link to a daemon serving the layout files."""
    from hepstream.tools.serve import XRootDServer

    with (
        XRootDServer(layout_served) as server,
        proxied_links(server, RTTS, settings.bandwidth_mbps) as urls,
    ):
        yield urls


@pytest.fixture(scope="session")
def layout_answer(layout_files: dict[str, Path]) -> Callable[[str], Answer]:
    """The independent awkward answer of a layout's plugin on its file (computed once)."""
    cache: dict[str, Answer] = {}

    def get(name: str) -> Answer:
        if name not in cache:
            cache[name] = answer(name, [str(layout_files[name])])
        return cache[name]

    return get


def _inputs(name: str, files: dict[str, Path], links: dict[str, str], link: str, copies: int):
    path = files[name]
    one = str(path) if link == LOCAL else f"{links[link]}//data/{path.name}"
    return [one] * copies


def _link_info(settings: BenchSettings, link: str) -> dict:
    rtt = rtt_of(link)
    return {"link": link, "rtt_ms": rtt,
            "bandwidth_mbps": settings.bandwidth_mbps if rtt is not None else None}  # fmt: skip


@pytest.mark.parametrize("link", JOB_LINKS)
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_job(
    benchmark, settings: BenchSettings, layout_files, layout_links, layout_answer, tmp_path,
    name, link,
) -> None:  # fmt: skip
    from bench.answers import check_output
    from hepstream.job.runner import JobSpec, run_job

    layout = LAYOUTS[name]
    inputs = tuple(_inputs(name, layout_files, layout_links, link, 1))
    counter = itertools.count()
    reports = []

    def setup():
        out = str(tmp_path / f"out{next(counter)}.root")
        return (JobSpec(plugin=str(layout.plugin), inputs=inputs, output=out, site="bench"),), {}

    def job(spec):
        reports.append((run_job(spec), spec.output))

    benchmark.pedantic(job, setup=setup, rounds=settings.layout_rounds, warmup_rounds=1)
    last, output = reports[-1]
    assert last.status == "ok", last.error
    want = layout_answer(name)
    assert last.events_read == want.events
    problems = check_output(want, output, layout.tree, last.events_selected)
    assert not problems, f"{name} over {link}: {problems}"
    data = last.asdict()
    benchmark.extra_info.update({
        "suite": "layouts", "layout": name, "kind": layout.kind, **_link_info(settings, link),
        "events": last.events_read, "selected": last.events_selected,
        "bytes": last.bytes_read, "bytes_needed": data.get("bytes_needed"),
        "files_bytes_needed": [f.get("bytes_needed") for f in data.get("files", [])],
        "requests": last.requests, "cache_hits": last.cache_hits,
        "cache_misses": last.cache_misses, "cache_peak_bytes": last.cache_peak_bytes,
        "io_wait_s": last.io_wait_s, "wall_s": statistics.median(r.wall_s for r, _ in reports),
        "answer": "agrees",
    })  # fmt: skip


@pytest.mark.parametrize("link", [wan(0), FAR])
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_long_job(
    benchmark, settings: BenchSettings, layout_files, layout_links, layout_answer, tmp_path,
    name, link,
) -> None:  # fmt: skip
    """The 30 ms target's own jobs: the file listed ``layout_long_copies`` times over the WAN
    proxy at 0 and 30 ms, so the zero-delay job takes longer than 2 s."""
    from hepstream.job.runner import JobSpec, run_job

    layout = LAYOUTS[name]
    copies = settings.layout_long_copies
    inputs = tuple(_inputs(name, layout_files, layout_links, link, copies))
    out = str(tmp_path / "long.root")
    reports = []
    benchmark.pedantic(
        lambda: reports.append(run_job(JobSpec(str(layout.plugin), inputs, out, site="bench"))),
        rounds=settings.layout_rounds, warmup_rounds=1,
    )  # fmt: skip
    last = reports[-1]
    assert last.status == "ok", last.error
    want = layout_answer(name)
    assert last.events_read == copies * want.events
    assert last.events_selected == copies * want.selected
    benchmark.extra_info.update({
        "suite": "layouts-long", "layout": name, "kind": layout.kind, "files": copies,
        **_link_info(settings, link), "events": last.events_read,
        "selected": last.events_selected, "bytes": last.bytes_read,
        "bytes_needed": last.asdict().get("bytes_needed"), "cache_hits": last.cache_hits,
        "cache_misses": last.cache_misses, "answer": "counts agree",
    })  # fmt: skip


@pytest.mark.parametrize("handler", READERS)
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_reader(
    benchmark, settings: BenchSettings, layout_files, layout_links, name, handler
) -> None:
    from bench.readers import handler_options, read_file
    from hepstream.job.runner import JobSpec

    layout = LAYOUTS[name]
    url = _inputs(name, layout_files, layout_links, FAR, 1)[0]
    events = benchmark.pedantic(
        read_file,
        args=(url, list(layout.branches), JobSpec.chunk_bytes, layout.tree),
        kwargs=handler_options(handler),
        rounds=settings.layout_rounds,
        warmup_rounds=1,  # connects and logs in: every handler then reuses the channel
    )
    assert events == layout_events(settings, name)
    benchmark.extra_info.update({
        "suite": "layouts-read", "layout": name, "handler": handler,
        **_link_info(settings, FAR), "events": events,
    })  # fmt: skip


@pytest.mark.parametrize(("link", "scale"), anchor_cases(current_settings()))
@pytest.mark.parametrize("name", list(LAYOUTS))
def test_layout_process(
    benchmark, settings: BenchSettings, layout_files, layout_links, tmp_path, name, link, scale
) -> None:
    """``hepstream run`` in a fresh process: interpreter, imports and numba load included."""
    from bench.jobproc import run_subprocess

    copies = 1 if scale == "1 file" else settings.layout_copies
    inputs = _inputs(name, layout_files, layout_links, link, copies)
    runs = []

    def job():
        runs.append(run_subprocess(inputs, tmp_path, tag="proc", plugin=LAYOUTS[name].plugin))

    # the warm-up round loads numba's cache from disk the way every later job does; quick
    # mode skips it (the in-process jobs of this session already compiled the plugin)
    warmup = 0 if settings.layout_quick else 1
    benchmark.pedantic(job, rounds=settings.layout_rounds, warmup_rounds=warmup)
    assert all(r.report["status"] == "ok" for r in runs)
    last = runs[-1].report
    assert last["events_read"] == copies * layout_events(settings, name)
    benchmark.extra_info.update({
        "suite": "layouts-process", "layout": name, "scale": scale, "files": copies,
        **_link_info(settings, link), "events": last["events_read"],
        "selected": last["events_selected"],
        "process_s": statistics.median(r.process_s for r in runs),
        "wall_s": statistics.median(r.report["wall_s"] for r in runs),
        "peak_rss_mb": max(r.peak_rss_mb for r in runs), "rss_source": runs[-1].rss_source,
    })  # fmt: skip


def rdf_can_read(name: str, threads: int, link: str) -> bool:
    """Whether this ROOT can run the measurement (see :data:`bench.rdf.MT_REMOTE_TTREE`)."""
    return not (threads == MT and link != LOCAL and LAYOUTS[name].kind == "ttree")


def rdf_cases(settings: BenchSettings) -> list[tuple[str, int, str, str]]:
    """(layout, threads, link, scale) of the RDataFrame measurements in this preset."""
    threads = (MT, ONE) if settings.layout_full_anchor else (MT,)
    return [(name, t, link, scale) for name in LAYOUTS for t in threads
            for link, scale in anchor_cases(settings) if rdf_can_read(name, t, link)]  # fmt: skip


@pytest.mark.parametrize(("name", "threads", "link", "scale"), rdf_cases(current_settings()))
def test_layout_rdf(
    benchmark, settings: BenchSettings, layout_files, layout_links, layout_answer, name,
    threads, link, scale,
) -> None:  # fmt: skip
    """ROOT's RDataFrame, the same selection as C++ strings, a fresh process per round."""
    from bench.rdf import run_rdf

    copies = 1 if scale == "1 file" else settings.layout_copies
    inputs = _inputs(name, layout_files, layout_links, link, copies)
    runs = []
    benchmark.pedantic(
        lambda: runs.append(run_rdf(name, inputs, threads)), rounds=settings.layout_rounds
    )
    want = layout_answer(name)
    for run in runs:  # RDataFrame's answer is checked too: same cuts, same counts
        assert run.events == copies * want.events
        assert run.selected == copies * want.selected
    benchmark.extra_info.update({
        "suite": "layouts-rdf", "layout": name, "scale": scale, "files": copies,
        "threads": runs[-1].threads, "implicit_mt": threads == MT, **_link_info(settings, link),
        "events": runs[-1].events, "selected": runs[-1].selected,
        "process_s": statistics.median(r.process_s for r in runs),
        "loop_s": statistics.median(r.loop_s for r in runs),
        "root_version": runs[-1].root_version,
    })  # fmt: skip
