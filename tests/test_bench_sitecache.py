"""The site-cache suite's targets and tables (bench/render.py), from a hand-made document."""

from __future__ import annotations

import pytest

from bench.render import TARGETS, records, render


def _bench(name: str, median: float, **info) -> dict:
    return {"name": name, "stats": {"median": median, "rounds": 1}, "extra_info": info}


def _side(events: float, wall_s: float, origin_bytes: int, jobs: int = 6) -> dict:
    return {"events": events, "wall_s": wall_s, "process_s": wall_s + 12.0, "jobs": jobs,
            "origin_bytes": origin_bytes, "wan_bytes": origin_bytes}  # fmt: skip


def _document(*, fell_back: int = 0, jobs: int = 64) -> dict:
    passes = _bench(
        "test_dataset_twice_at_a_site", 80.0, suite="sitecache", kind="passes", rtt_ms=30.0,
        bandwidth_mbps=1000.0, rounds=2, jobs=3, files=6, events=60_000,
        sides={"cold": _side(120_000, 4.0, 200_000_000), "warm": _side(120_000, 2.0, 1_000_000),
               "direct": _side(120_000, 3.0, 60_000_000), "origin": _side(120_000, 2.2, 60_000_000)},
        round_ratios={"warm/origin": [1.1, 1.1], "cold/direct": [0.7, 0.8],
                      "warm/cold origin bytes": [0.005, 0.005]},
        pairs={"warm/origin": [1.0, 1.2, 0.9], "cold/direct": [0.7, 0.8, 0.75, 0.9]},
    )  # fmt: skip
    concurrent = _bench(
        "test_concurrent_jobs_through_one_cache", 60.0, suite="sitecache", kind="concurrent",
        jobs=jobs, distinct_jobs=8, events=1_280_000, failed=0, fell_back=fell_back,
        mismatched=0, short_reads=0, peak_in_flight=jobs, peak_connected=jobs,
        read_before_first_end=15, wall_s=55.0, origin_bytes=80e6, wan_bytes=80e6,
        input_bytes=248e6, cache_bytes_fetched=80e6, lowest_available_mb=16000,
        cache_alive_after=True, why={},
    )  # fmt: skip
    images = _bench(
        "test_vms_of_one_image_at_one_site", 9.0, suite="sitecache", kind="images", vms=8,
        blob_bytes=33_882_112, wan_bytes=33_931_363, origin_bytes=33_883_824,
        pull_s=[3.1] * 8,
    )  # fmt: skip
    return {"benchmarks": [passes, concurrent, images], "machine_info": {}}


def _verdicts(doc: dict) -> dict[str, tuple[float | None, str, str]]:
    recs = records(doc)
    return {t.name: t.evaluate_where(recs) for t in TARGETS if t.name.startswith("site cache")}


def test_site_cache_targets_are_ratios_of_one_run() -> None:
    got = _verdicts(_document())
    assert len(got) == 5
    second = got["site cache: second pass takes <= 1 % of the first's origin bytes"]
    assert second[:2] == (pytest.approx(0.5), "pass")
    assert "2 rounds x 3 jobs" in second[2]
    # job by job, the median: one slow job moves one ratio, not a side's sum
    warm = got["site cache: warm pass at 30 ms >= 0.95x the origin at 0 ms"]
    assert warm[:2] == (pytest.approx(1.0), "pass")
    assert "pooled 1.10" in warm[2]  # 2.2 s / 2.0 s of job wall, both sides summed
    cold = got["site cache: cold pass >= 0.9x the origin across the same 30 ms link"]
    assert cold[:2] == (pytest.approx(0.775), "miss")
    assert "median of 4 job pairs (2 rounds x 3 jobs (6 files)); range 0.70-0.90" in cold[2]
    conc = got["site cache: 64 concurrent jobs, 0 failures, outputs identical to direct reads"]
    assert conc[:2] == (pytest.approx(1.0), "pass")
    images = got["site cache: 8 VMs of one image move 1 image over the WAN"]
    assert images[:2] == (pytest.approx(33_931_363 / 33_882_112), "pass")


def test_a_fallback_misses_and_fewer_jobs_do_not_judge_the_concurrency_target() -> None:
    name = "site cache: 64 concurrent jobs, 0 failures, outputs identical to direct reads"
    value, verdict, where = _verdicts(_document(fell_back=2))[name]
    assert (value, verdict) == (pytest.approx(62 / 64), "miss")
    assert "2 fell back" in where
    # the quick run's 16 jobs show the suite works; the target is the full run's 64
    assert _verdicts(_document(jobs=16))[name][:2] == (None, "not run")


def test_site_cache_section_renders_every_table() -> None:
    text = render(_document())
    section = text.split("## Site caches (issue 25)", 1)[1]
    assert "| through the site's cache, second pass | 6 | 120,000 | 2.00 | 60,000 |" in section
    assert "| 64 (8 distinct, cold cache) | 0 | 0 | 0 | 0 | 64 | 15 |" in section
    assert "| 8 | 33.9 | 33.9 | 33.9 | 3.1, 3.1" in section
    # without the suite, its targets are "not run" and its section is absent
    empty = render({"benchmarks": [], "machine_info": {}})
    assert "## Site caches" not in empty
    assert all(v[1] == "not run" for v in _verdicts({"benchmarks": []}).values())


def test_a_dead_cache_is_named_in_the_section() -> None:
    doc = _document(fell_back=3)
    doc["benchmarks"][0]["extra_info"]["cache_deaths"] = ["cold-0-1: site cache refused | x"]
    conc = doc["benchmarks"][1]["extra_info"]
    conc.update(cache_alive_after=False, cache_state="cache daemon running: False",
                why={"site cache root://c:1 refused the connection; read from the origin": 3})  # fmt: skip
    section = render(doc).split("## Site caches (issue 25)", 1)[1]
    assert "**The cache daemon died in 1 round(s)**" in section
    assert "cold-0-1: site cache refused \\| x" in section  # a | would cut the table
    assert "Failures and fallbacks: 3 x site cache root://c:1 refused" in section
    assert "**The cache daemon died during the concurrent jobs.**" in section
