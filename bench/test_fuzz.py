"""Suite: damaged and hostile input files (issue 23), the long fuzz run.

``bench/fuzz.py`` damages small valid files (TTree and RNTuple, written by uproot and by
ROOT, every codec) and runs each through the real ``hepstream run``: 20,000 cases in the
full run, 1,000 in the quick one, over every family in turn, from the bench's fixed seed.
A child that dies or hangs in a batch has the cases it had not finished run again one per
child, and the case it died in once more alone. The row records the count of every class
per family, the failing cases with their one-line reproduction and the distinct failure
signatures; the table and the failing cases are printed. The test fails on any signal,
hang, traceback, temp file left or invalid array.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from bench import fuzz
from bench.settings import BenchSettings, data_dir

pytestmark = pytest.mark.benchmark(group="fuzz")

#: Cases per run: the full run's ~20 minutes here (2 cores) and the quick run's ~1.5.
FULL_CASES = 20_000
QUICK_CASES = 1_000


def test_fuzz_damaged_inputs(benchmark, settings: BenchSettings, capsys) -> None:
    cases = QUICK_CASES if settings.mode == "quick" else FULL_CASES
    corpus_dir = data_dir() / "fuzz"
    failures = corpus_dir / "failures" / f"s{settings.seed}"
    shutil.rmtree(failures, ignore_errors=True)  # this run's failing inputs only
    work = Path(tempfile.mkdtemp(prefix="hepstream-fuzz-"))
    try:
        corpus = fuzz.ensure_corpus(corpus_dir)
        with capsys.disabled():
            fuzzer = fuzz.Fuzzer(
                corpus, work, jobs=os.cpu_count() or 2, batch=50, timeout=10.0, isolate=True,
                failures_dir=failures, echo=lambda line: print(f"\n{line}", end="", flush=True),
            )  # fmt: skip
            fuzzer.prepare()
            names = [f.name for f in fuzz.FAMILIES]
            start = time.monotonic()
            outcomes = benchmark.pedantic(
                fuzzer.run, args=(fuzz.plan(settings.seed, cases, names),), rounds=1
            )
            seconds = time.monotonic() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info = fuzz.summary(outcomes, corpus_dir)
    benchmark.extra_info.update({"suite": "fuzz", "seed": settings.seed,
                                 "cases_per_s": len(outcomes) / seconds, **info})  # fmt: skip
    report = "\n\n".join([
        f"fuzz: {len(outcomes):,} cases, seed {settings.seed}, {seconds:.0f} s "
        f"({len(outcomes) / seconds:.1f} cases/s)",
        fuzz.table(outcomes), fuzz.failures_table(outcomes, corpus_dir),
        fuzz.different_table(outcomes), fuzz.leaks_table(outcomes, corpus_dir),
    ])  # fmt: skip
    with capsys.disabled():
        print("\n" + report)
    assert info["failing"] == 0, "\n" + fuzz.failures_table(outcomes, corpus_dir)
