"""The benchmark harness: the plain-Python baseline's correctness, the report, a quick run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.render import SUITES, TARGETS, evaluate, records, render

REPO = Path(__file__).resolve().parent.parent


def test_python_baseline_gives_the_numba_mask(tmp_path: Path) -> None:
    import uproot

    from bench.tau1n_python import select_python, tau1n_mask_python, to_python
    from hepstream.generate import generate_sample
    from hepstream.selection import load_plugin

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
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((tmp_path / "latest.json").read_text())
    assert {b["extra_info"].get("suite") for b in doc["benchmarks"]} == set(SUITES)
    rows = _targets_rows((tmp_path / "latest.md").read_text())
    assert set(rows) == {t.name for t in TARGETS}
    for name, cells in rows.items():
        assert re.fullmatch(r"[\d,]+\.\d+( ?[a-zA-Z]+)?", cells[2]), (name, cells)
        assert cells[4] in ("pass", "miss"), (name, cells)
