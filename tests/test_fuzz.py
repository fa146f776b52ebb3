"""Damaged and hostile inputs through the real ``hepstream run`` (issue 23): a fixed-seed fuzz
run over every input family and codec must give no signal, no hang, no traceback, no temp
file left and no invalid array handed to the plugin (``bench/fuzz.py``). The first tests
check the harness itself: mutations are deterministic, the classes are right on known
outcomes, a valid file finishes with the reference output, and a crash, a hang, a leftover
temp file and a traceback in a child are seen as such.

On a failure the message holds the classification table and every failing case with its
one-line reproduction (``python -m bench.fuzz --family F --seed S --case N``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bench import fuzz

#: The fixed seed of the test run, and its size: 100 cases per family (1,400 in all).
SEED = 23
CASES = 100 * len(fuzz.FAMILIES)
NAMES = [f.name for f in fuzz.FAMILIES]


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    """This session's corpus (pytest keeps the last sessions' temp dirs: a failing case's
    reproduction command can point at the very files the run damaged)."""
    return tmp_path_factory.mktemp("fuzz-corpus")


@pytest.fixture(scope="module")
def corpus(corpus_dir: Path) -> dict[str, Path]:
    return fuzz.ensure_corpus(corpus_dir)


@pytest.fixture(scope="module")
def fuzzer(corpus: dict[str, Path], corpus_dir: Path, tmp_path_factory) -> fuzz.Fuzzer:
    work = tmp_path_factory.mktemp("fuzz-work")
    harness = fuzz.Fuzzer(corpus, work, jobs=2, batch=25, timeout=10.0,
                          failures_dir=corpus_dir / "failures")  # fmt: skip
    harness.prepare()
    return harness


# -- the harness itself --------------------------------------------------------------------


def test_corpus_holds_every_family_small_and_as_promised(corpus: dict[str, Path]) -> None:
    import uproot

    assert set(corpus) == set(NAMES)
    for name, path in corpus.items():
        assert path.stat().st_size < 60_000, name
        with uproot.open(path) as file:
            obj = file[fuzz.TREE]
            kind = "rntuple" if "RNTuple" in type(obj).__name__ else "ttree"
            assert kind == fuzz.FAMILY_BY_NAME[name].kind, name
            if kind == "ttree":
                assert all(obj[b].num_baskets >= 4 for b in fuzz.BRANCHES), name
            else:
                assert len(obj.cluster_summaries) >= 4, name


def test_targets_find_baskets_and_pages(corpus: dict[str, Path]) -> None:
    for name, path in corpus.items():
        family = fuzz.FAMILY_BY_NAME[name]
        targets = fuzz.find_targets(path, family.kind)
        wanted = (
            {"basket-key", "basket-tail", "basket-body", "tree"}
            if family.kind == "ttree"
            else {"page-list", "page", "rntuple-header", "rntuple-footer", "anchor"}
        )
        assert wanted <= set(targets.regions), (name, sorted(targets.regions))
        for regions in targets.regions.values():
            assert all(0 <= r.start < r.stop <= targets.size for r in regions)


def test_mutations_are_deterministic(corpus: dict[str, Path]) -> None:
    kinds: Counter[str] = Counter()
    for name in ("ttree-root-zlib", "rntuple-uproot-zstd"):
        path = corpus[name]
        kind = fuzz.FAMILY_BY_NAME[name].kind
        data = path.read_bytes()
        targets = fuzz.find_targets(path, kind)
        again = fuzz.find_targets(path, kind)  # targets too are a function of the file
        distinct = set()
        for case in range(300):
            first = fuzz.mutate(data, targets, kind, SEED, case)
            assert first == fuzz.mutate(data, again, kind, SEED, case), (name, case)
            assert first[0] != data, (name, case, first[1])
            distinct.add(first[0])
            kinds[first[1].kind] += 1
            if first[1].where == "structure":
                assert first[1].region != "-"
        assert len(distinct) >= 295
        assert fuzz.mutate(data, targets, kind, SEED + 1, 0) != fuzz.mutate(
            data, targets, kind, SEED, 0
        )
    assert set(kinds) == set(fuzz.KIND_WEIGHTS)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"code": 0, "output": "same"}, fuzz.FINISHED_SAME),
        ({"code": 0, "output": "different"}, fuzz.FINISHED_DIFFERENT),
        ({"code": 3, "stderr": "hepstream: error: f.root: corrupt basket\n"}, fuzz.CLEAN_ERROR),
        (
            {"code": 6, "stderr": "hepstream: job partial at site local\n  events   0 read\n"
             "hepstream: warning: 1 of 1 inputs skipped (f.root); ...\n"},
            fuzz.CLEAN_ERROR,
        ),
        ({"code": 3, "stderr": "hepstream: error: a\nhepstream: error: b\n"}, fuzz.TRACEBACK),
        ({"code": 3, "stderr": "numpy warning\nhepstream: error: a\n"}, fuzz.TRACEBACK),
        ({"code": 3, "stderr": ""}, fuzz.TRACEBACK),
        (
            {"code": 1, "stderr": "Traceback (most recent call last):\n"
             '  File "x.py", line 1, in f\n'
             "ValueError: bad\n"},
            fuzz.TRACEBACK,
        ),
        ({"code": 0, "output": "same", "stderr": "Traceback (most recent call last):\n"},
         fuzz.TRACEBACK),
        ({"code": 3, "stderr": "hepstream: error: a\n", "leftovers": ["output dir: out.root"]},
         fuzz.TEMP_LEFT),
        ({"code": 0, "output": "same", "leftovers": ["TMPDIR: .x.hepstream-1.part"]},
         fuzz.TEMP_LEFT),
        ({"code": None, "signum": signal.SIGSEGV}, fuzz.SIGNAL),
        ({"code": None}, fuzz.SIGNAL),
        ({"code": None, "timed_out": True}, fuzz.HANG),
        ({"code": 4, "stderr": f"hepstream: error: plugin p raised {fuzz.INVALID_MARK}: x\n"},
         fuzz.INVALID_ARRAY),
        ({"code": 70, "stderr": "hepstream: error: internal error (KeyError: 'x'); the "
          "traceback is in /tmp/t.log, please report it\n"}, fuzz.TRACEBACK),
    ],
)  # fmt: skip
def test_classify_known_outcomes(kwargs: dict, expected: str) -> None:
    assert fuzz.classify(**kwargs)[0] == expected


def test_valid_files_finish_with_the_reference_output(fuzzer: fuzz.Fuzzer) -> None:
    cases = [fuzz.Case(name, SEED, 0, valid=True) for name in NAMES]
    outcomes = fuzzer.run(cases)
    assert [o.cls for o in outcomes] == [fuzz.FINISHED_SAME] * len(NAMES), fuzz.table(outcomes)


class _Scripted(fuzz.Fuzzer):
    """Case ``n`` of family ``ttree-uproot-zlib`` does what :data:`SCRIPT` says instead of
    running a job: the harness must see each kind of defect for what it is."""

    def run_main(self, argv: list[str]) -> int:
        number = int(Path(argv[2]).stem.rsplit("-c", 1)[1])
        out = Path(argv[argv.index("-o") + 1])
        action = SCRIPT[number][0]
        if action == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif action == "hang":
            time.sleep(3600)
        elif action == "part":
            (out.parent / f".{out.name}.hepstream-{os.getpid()}.part").write_bytes(b"x")
        elif action == "exception":  # an exception out of the CLI: the console script's traceback
            import hepstream.cli

            def boom(*args: object) -> int:
                raise ValueError("boom")

            saved, hepstream.cli._main = hepstream.cli._main, boom  # type: ignore[assignment]
            try:
                return super().run_main(argv)
            finally:
                hepstream.cli._main = saved  # type: ignore[assignment]
        elif action == "two lines":
            print("hepstream: error: one\nhepstream: error: two", file=sys.stderr)
            return 3
        print("hepstream: error: input is corrupt", file=sys.stderr)
        return 3


SCRIPT = {
    0: ("clean", fuzz.CLEAN_ERROR),
    1: ("segfault", fuzz.SIGNAL),
    2: ("clean", fuzz.CLEAN_ERROR),
    3: ("hang", fuzz.HANG),
    4: ("part", fuzz.TEMP_LEFT),
    5: ("exception", fuzz.TRACEBACK),
    6: ("two lines", fuzz.TRACEBACK),
    7: ("clean", fuzz.CLEAN_ERROR),
}


@pytest.mark.parametrize("isolate", [False, True])
def test_harness_sees_crashes_hangs_and_leftovers(fuzzer: fuzz.Fuzzer, tmp_path: Path,
                                                  isolate: bool) -> None:  # fmt: skip
    scripted = _Scripted(fuzzer.corpus, tmp_path, jobs=2, batch=8, timeout=3.0, isolate=isolate)
    scripted.families = fuzzer.families  # prepared once by the module's fuzzer
    cases = [fuzz.Case("ttree-uproot-zlib", SEED, n) for n in SCRIPT]
    outcomes = scripted.run(cases)
    got = {o.case.number: o.cls for o in outcomes}
    assert got == {n: cls for n, (_, cls) in SCRIPT.items()}, fuzz.failures_table(outcomes)
    crash = outcomes[1]
    assert "SIGSEGV" in crash.reason
    assert "Fatal Python error" in crash.stderr  # faulthandler's stack went to the case's file
    assert any("after 1 other case" in n for n in crash.notes)
    if isolate:  # the crash ran again alone and crashed again
        assert any(n.startswith("alone: signal too") for n in crash.notes), crash.notes
    assert "ValueError: boom" in outcomes[5].reason
    for slot in tmp_path.glob("slot*"):  # every case's output and temp dirs were emptied
        assert not [*(slot / "out").iterdir(), *(slot / "tmp").iterdir()]


def test_reproduction_command_runs_the_same_case(fuzzer: fuzz.Fuzzer, corpus_dir: Path,
                                                 capsys) -> None:  # fmt: skip
    case = fuzz.Case("ttree-uproot-zlib", SEED, 3)
    outcome = fuzzer.run([case])[0]
    # the fuzzer's workdir: its plugin and numba cache, so nothing compiles again
    fuzz.reproduce(case.family, case.seed, case.number, corpus_dir, workdir=fuzzer.workdir)
    printed = capsys.readouterr().out
    assert f"mutation: {outcome.mutation}" in printed
    assert f"class:    {outcome.cls}" in printed
    assert fuzz.repro_command(case, corpus_dir).endswith(f"--corpus {corpus_dir}")


def test_bench_row_is_json_and_renders_its_table() -> None:
    import json

    from bench.render import render

    family = "ttree-root-zlib"
    outcomes = [
        fuzz.Outcome(fuzz.Case(family, 1, 0), fuzz.CLEAN_ERROR, "x", "zeros 16 bytes at 9", "-"),
        fuzz.Outcome(fuzz.Case(family, 1, 1), fuzz.SIGNAL, "killed by SIGSEGV",
                     "bitflip 1 bit(s) 40.1 at 40 [data: page #1 +2]", "page #1 +2"),
    ]  # fmt: skip
    info = json.loads(json.dumps(fuzz.summary(outcomes)))
    assert info["failing"] == 1
    assert info["families"][family] == {c: int(c in (fuzz.CLEAN_ERROR, fuzz.SIGNAL))
                                        for c in fuzz.CLASSES}  # fmt: skip
    row = {"name": "test_fuzz_damaged_inputs", "stats": {"median": 10.0, "rounds": 1},
           "extra_info": {"suite": "fuzz", "seed": 1, "cases_per_s": 0.2, **info}}  # fmt: skip
    text = render({"benchmarks": [row]})
    assert "## Damaged input files" in text
    assert f"| {family} | 2 | 0 | 0 | 1 | 1 |" in text
    assert f"`python -m bench.fuzz --family {family} --seed 1 --case 1`" in text


# -- the fixed-seed run --------------------------------------------------------------------


@pytest.mark.slow
def test_fixed_seed_fuzz_run_finds_no_defect(fuzzer: fuzz.Fuzzer, corpus_dir: Path) -> None:
    """CASES damaged files (every family, every codec) through ``hepstream run``: 0 signals,
    0 hangs, 0 tracebacks, 0 temp files left, 0 invalid arrays."""
    outcomes = fuzzer.run(fuzz.plan(SEED, CASES, NAMES))
    report = "\n\n".join([fuzz.table(outcomes), fuzz.failures_table(outcomes, corpus_dir),
                          fuzz.leaks_table(outcomes, corpus_dir)])  # fmt: skip
    print(report)
    counts = Counter(o.cls for o in outcomes)
    assert not any(counts[c] for c in fuzz.FAILING), "\n" + report
