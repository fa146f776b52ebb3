"""The benchmark harness: the plain-Python baseline's correctness, the report, a quick run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.render import (
    LAYOUT_TARGETS,
    SUITES,
    TARGETS,
    bytes_ratio,
    evaluate,
    marginal_rate,
    records,
    render,
)

REPO = Path(__file__).resolve().parent.parent


def test_python_baseline_gives_the_numba_mask(tmp_path: Path) -> None:
    import uproot

    from bench.tau1n_python import select_python, tau1n_mask_python, to_python
    from hepstream.plugin.loader import load_plugin
    from hepstream.tools.generate import generate_sample

    path = generate_sample(tmp_path / "s.root", "tau1n-data", 5_000, seed=7)
    selection = load_plugin(str(REPO / "examples" / "tau1n.py"))
    with uproot.open(path) as file:
        events = file["events"].arrays(selection.branches)
    expected = np.asarray(selection.select(events))
    got = np.asarray(tau1n_mask_python(to_python(events)), dtype=bool)
    assert expected.any()  # the sample holds candidates, so the comparison means something
    assert np.array_equal(got, expected)
    middle = events[1000:3000]  # a chunk whose offsets do not start at zero
    assert select_python(middle) == expected[1000:3000].tolist()


def _bench(name: str, median: float, **info) -> dict:
    return {"name": name, "stats": {"median": median, "rounds": 3}, "extra_info": info}


def _document() -> dict:
    """A pytest-benchmark document with one result per benchmark the targets need."""
    benches = [
        _bench("numba", 0.01, suite="kernels", kernel="numba", events=100_000),
        _bench("awkward", 0.2, suite="kernels", kernel="awkward", events=100_000),
        _bench("python", 5.0, suite="kernels", kernel="python", events=100_000),
        _bench("python-loop", 0.5, suite="kernels", kernel="python-loop", events=100_000),
        _bench("rss1", 2.0, suite="memory", scale="N", files=1, events=10, bytes=1,
               peak_rss_mb=300.0, cache_peak_bytes=1, process_wall_s=2.0),
        _bench("rss10", 9.0, suite="memory", scale="10xN", files=10, events=100, bytes=1,
               peak_rss_mb=330.0, cache_peak_bytes=1, process_wall_s=9.0),
        _bench("lat", 9.0, suite="latency", pairs=1, run1_first_chunk_s=3.0,
               run2_first_chunk_s=0.5, run1_wall_s=4.0, run2_wall_s=1.0, run1_process_s=5.0,
               run2_process_s=2.0),
    ]  # fmt: skip
    for link, rtt, median in (("local", None, 1.0), ("loopback", None, 1.25),
                              ("wan0ms", 0.0, 1.3), ("wan30ms", 30.0, 1.6)):  # fmt: skip
        benches.append(_bench(f"job-{link}", median, suite="endtoend", link=link, rtt_ms=rtt,
                              events=200, bytes=2048, selected=10, io_wait_s=0.1))  # fmt: skip
        for handler in ("hepstream", "uproot-xrootd", "uproot-fsspec"):
            benches.append(_bench(f"{handler}-{link}", median, suite="streaming", link=link,
                                  handler=handler, rtt_ms=rtt, events=100, bytes=1000))  # fmt: skip
    for link, median in (("wan0ms", 2.0), ("wan30ms", 2.1)):
        benches.append(_bench(f"long-{link}", median, suite="longjob", link=link, rtt_ms=0.0,
                              events=1000, bytes=2048, selected=10, io_wait_s=0.1))  # fmt: skip
    return {"benchmarks": benches, "machine_info": {}}


def test_targets_are_ratios_of_the_same_run() -> None:
    results = {t.name: (value, verdict) for t, value, verdict in evaluate(records(_document()))}
    assert results["numba >= 10x vectorized awkward"] == (pytest.approx(20.0), "pass")
    assert results["numba >= 100x plain Python"] == (pytest.approx(500.0), "pass")
    assert results["numba >= 100x the plain-Python loop alone (stricter)"] == (
        pytest.approx(50.0), "miss")  # fmt: skip
    assert results["short job at 30 ms RTT >= 0.9x its zero-delay rate"] == (
        pytest.approx(1.3 / 1.6), "miss")  # fmt: skip
    # the job reads 200 events per 1.6 s, the handler 100: the job is ahead
    assert results["long job at 30 ms RTT >= 0.9x its zero-delay rate"] == (
        pytest.approx(2.0 / 2.1), "pass")  # fmt: skip
    assert results["job at 30 ms ahead of uproot XRootDSource"] == (pytest.approx(2.0), "pass")
    assert results["loopback root:// >= 0.9x local disk"] == (pytest.approx(0.8), "miss")
    assert results["peak RSS flat from N to 10xN events"] == (pytest.approx(1.1), "pass")
    assert results["warm start: first chunk < 1 s"] == (pytest.approx(0.5), "pass")


def test_missing_suites_are_reported_not_run() -> None:
    doc = _document()
    doc["benchmarks"] = [b for b in doc["benchmarks"] if b["extra_info"]["suite"] == "kernels"]
    verdicts = {t.name: verdict for t, _, verdict in evaluate(records(doc))}
    assert verdicts["numba >= 10x vectorized awkward"] == "pass"
    assert verdicts["peak RSS < 1 GB"] == "not run"
    assert "## Streaming" not in render(doc)


def _targets_rows(markdown: str) -> dict[str, list[str]]:
    section = markdown.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells] for cells in rows[1:]}


@pytest.mark.xrootd
@pytest.mark.slow
def test_quick_bench_reports_every_suite_and_target(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--results-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=1500, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert {b["extra_info"].get("suite") for b in doc["benchmarks"]} == set(SUITES)
    rows = _targets_rows((tmp_path / "latest.md").read_text())
    assert set(rows) == {t.name for t in TARGETS}
    for name, cells in rows.items():
        quick = next(t for t in TARGETS if t.name == name).quick
        if not quick and cells[4] == "not run":  # e.g. no job of >= 2 s on small files
            assert "full run only" in cells[6], (name, cells)
            continue
        assert re.fullmatch(r"[\d,]+\.\d+( ?[a-zA-Z]+)?", cells[2]), (name, cells)
        assert cells[4] in ("pass", "miss"), (name, cells)
        assert re.fullmatch(r"[+-]\d+ %", cells[5]), (name, cells)


# -- the layout matrix (issue 10) -------------------------------------------------------------


def _layout_document(bytes_needed: int | None = 1000) -> dict:
    """Two layouts with every measurement the layout targets need, numbers chosen by hand."""
    benches = []
    for name, zero_s in (("root-nanoaod", 2.5), ("uproot-bigbasket", 1.0)):
        for link, rtt, median, nbytes in (("local", None, 1.0, 1040), ("loopback", None, 1.1, 1100),
                                          ("wan0ms", 0.0, zero_s, 1100),
                                          ("wan30ms", 30.0, zero_s / 0.8, 1100)):  # fmt: skip
            benches.append(_bench(f"{name}-{link}", median, suite="layouts", layout=name,
                                  link=link, rtt_ms=rtt, events=1000, selected=10, bytes=nbytes,
                                  bytes_needed=bytes_needed, cache_hits=1, cache_misses=1,
                                  answer="agrees"))  # fmt: skip
        if name == "uproot-bigbasket":  # its 1-file job is short; the long job is not
            for link, rtt, median in (("wan0ms", 0.0, 4.0), ("wan30ms", 30.0, 4.0 / 0.7)):
                benches.append(_bench(f"{name}-long-{link}", median, suite="layouts-long",
                                      layout=name, link=link, rtt_ms=rtt, files=8, events=8000,
                                      selected=80, bytes=8800, bytes_needed=8800,
                                      cache_hits=1, cache_misses=1, answer="counts agree"))  # fmt: skip
        for handler, median in (("uproot-xrootd", 2 * zero_s / 0.8), ("uproot-fsspec", zero_s)):
            benches.append(_bench(f"{name}-{handler}", median, suite="layouts-read", layout=name,
                                  handler=handler, link="wan30ms", rtt_ms=30.0, events=1000))  # fmt: skip
        for suite, one_s, many_s, extra in (
            ("layouts-process", 2.0, 4.0, {"peak_rss_mb": 300.0 if name == "tau1n" else 250.0}),
            ("layouts-rdf", 5.0, 9.0, {"implicit_mt": True, "threads": 2}),
        ):
            for scale, files, process_s in (("1 file", 1, one_s), ("N files", 4, many_s)):
                benches.append(_bench(f"{name}-{suite}-{scale}", process_s, suite=suite,
                                      layout=name, link="local", rtt_ms=None, scale=scale,
                                      files=files, events=1000 * files, selected=10 * files,
                                      process_s=process_s, **extra))  # fmt: skip
    return {"benchmarks": benches, "machine_info": {}}


def test_layout_targets_are_worst_layout_ratios() -> None:
    recs = records(_layout_document())
    got = {t.name: t.evaluate_where(recs) for t in LAYOUT_TARGETS}
    value, verdict, where = got["layouts: bytes read <= 1.05x bytes needed"]
    assert (value, verdict) == (pytest.approx(1.1), "miss")
    assert where.endswith("loopback")
    # 30 ms / 0 ms is 0.8 on both 1-file jobs and 0.7 on the big baskets' long job; the 2.5 s
    # job and the 4 s long job count as long, the 1 s one as short
    value, verdict, where = got["layouts: 30 ms RTT >= 0.9x zero-delay rate (jobs >= 2 s)"]
    assert (value, verdict) == (pytest.approx(0.7), "miss")
    assert where == "uproot-bigbasket, long (4.00 s at 0 ms)"
    value, _, where = got["layouts: 30 ms RTT >= 0.9x zero-delay rate (short jobs, < 2 s)"]
    assert value == pytest.approx(0.8)
    assert where.startswith("uproot-bigbasket")
    # the readers take 2x (XRootDSource) and 0.8x (fsspec) the job's 30 ms time
    assert got["layouts: >= 1.2x uproot XRootDSource at 30 ms"][:2] == (pytest.approx(2.0), "pass")
    assert got["layouts: >= 1.2x uproot fsspec-xrootd at 30 ms"][:2] == (pytest.approx(0.8), "miss")
    # marginal: hepstream 3000 events / 2 s, RDF 3000 / 4 s; start-up: 1000/2 s vs 1000/5 s
    steady = got["layouts: >= 1.0x RDataFrame (implicit MT) steady state"]
    assert steady[:2] == (pytest.approx(2.0), "pass")
    start = got["layouts: >= 2x RDataFrame (implicit MT) on a 1-file job, start-up included"]
    assert start[:2] == (pytest.approx(2.5), "pass")
    assert got["layouts: peak RSS < 1 GB"][:2] == (pytest.approx(250.0), "pass")


def test_layout_bytes_target_waits_for_bytes_needed() -> None:
    """Before the report carries bytes_needed the row says "not run", never a made-up pass."""
    recs = records(_layout_document(bytes_needed=None))
    target = next(t for t in LAYOUT_TARGETS if t.name.startswith("layouts: bytes read"))
    assert target.evaluate_where(recs)[1] == "not run"
    assert bytes_ratio(recs[0]) is None


def test_marginal_rate_is_the_difference_quotient() -> None:
    one, many = records(_layout_document())[-2:]  # the RDF 1-file and N-file records
    assert marginal_rate(one, many) == pytest.approx(3000 / 4.0)
    assert marginal_rate(many, one) is None  # no events or time gained: no rate


def test_layout_matrix_renders_every_layout_and_target_row() -> None:
    text = render(_layout_document())
    rows = _targets_rows(text)
    assert {t.name for t in LAYOUT_TARGETS} <= set(rows)
    assert rows["layouts: >= 1.2x uproot fsspec-xrootd at 30 ms"][5] == "-33 %"
    matrix = text.split("## Layout matrix (issue 10), one row per layout", 1)[1]
    lines = [line for line in matrix.split("\n## ", 1)[0].splitlines() if line.startswith("| ")]
    names = [line.split(" | ")[0].strip("| ") for line in lines[1:]]
    assert names == ["uproot-bigbasket", "root-nanoaod"]  # matrix order, not input order
    assert "| 1.04 pass | 1.10 miss |" in lines[2]  # root-nanoaod read/needed local, loopback


def test_storage_target_is_the_worst_level_against_xrdcp() -> None:
    levels = [
        {"jobs": n, "processes": 1 + n // 128, "mb_s": mb, "xrdcp_mb_s": xrd, "failed": 0,
         "xrdcp_failed": 0, "p99_ms": 1.0}
        for n, mb, xrd in ((1, 500.0, 100.0), (512, 360.0, 450.0))
    ]  # fmt: skip
    doc = {"benchmarks": [_bench("storage", 30.0, suite="storage", levels=levels)]}
    target = next(t for t in TARGETS if t.name.startswith("storage bench"))
    value, verdict, where = target.evaluate_where(records(doc))
    assert (value, verdict, where) == (pytest.approx(0.8), "pass", "512 readers")
    assert "| 512 | 5 | 360.0 | 450.0 | 0.80 |" in render(doc)
