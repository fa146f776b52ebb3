"""``hepstream hist show``: the text summary's numbers against numpy's own, ``--json``, the
PNGs (mplhep's path and plain matplotlib's), a real job's output, one line per bad input."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot

from hepstream.cli import main
from hepstream.hists import Histogram, Results
from hepstream.hists.store import STATE_KEY, write_results
from hepstream.hists.text import MAX_ROWS, summary
from tests.dataset.dshelp import child_env

HEPSTREAM = Path(sys.executable).with_name("hepstream")
RNG = np.random.default_rng(26)
X = RNG.normal(0.5, 0.3, 4_000)  # some below 0 and at or above 1: both flow bins hold entries
Y = RNG.integers(-1, 5, 4_000)  # -1 and 4 land in the flow bins of Integer(0, 4)
W = RNG.uniform(0.2, 1.8, 4_000)
CATEGORIES = [f"ch{i}" for i in range(45)]  # more than a summary shows one per row
CHANNEL = RNG.choice([*CATEGORIES, "unbooked"], 4_000)  # "unbooked": the other-categories bin
VAR_EDGES = [0.0, 0.1, 0.25, 0.5, 0.6, 1.0]
CUTFLOW = [("events read", 4_000), ("two tracks", 2_500), ("thrust", 700), ("veto", 0)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _booked(name, booked, *values, weight=None):
    histogram = Histogram(name, booked)
    histogram.fill(*values, weight=weight)
    return histogram


@pytest.fixture(scope="module")
def results():
    """Histograms of every shape the summary draws, filled with known numpy data."""
    return Results(
        {
            "x": _booked("x", hist.Hist.new.Reg(10, 0, 1, name="x", label="x [GeV]").Int64(), X),
            "xw": _booked(
                "xw",
                hist.Hist.new.Var(VAR_EDGES, name="x", label="x [GeV]").Weight(),
                X,
                weight=W,
            ),
            "fine": _booked("fine", hist.Hist.new.Reg(100, 0, 1, name="x").Int64(), X),
            "xy": _booked(
                "xy",
                hist.Hist.new.Reg(4, 0, 1, name="x")
                .Integer(0, 4, name="n", label="tracks")
                .Double(),
                X,
                Y,
                weight=W,
            ),
            "big": _booked(
                "big",
                hist.Hist.new.Reg(20, 0, 1, name="x").Reg(15, 0, 1, name="z").Int64(),
                X,
                RNG.uniform(0, 1, X.size),
            ),
            "cats": _booked(
                "cats", hist.Hist.new.StrCat(CATEGORIES, name="channel").Int64(), CHANNEL
            ),
        },
        list(CUTFLOW),
    )


@pytest.fixture(scope="module")
def results_file(results, tmp_path_factory):
    path = tmp_path_factory.mktemp("hist") / "job.root"
    with uproot.recreate(path) as file:
        write_results(file, results)
    return path


@pytest.fixture(scope="module")
def small_file(results, tmp_path_factory):
    """A 1D histogram with errors, a 2D one, categories and the cut flow: every kind of
    PNG, quickly."""
    path = tmp_path_factory.mktemp("hist") / "small.root"
    picked = Results({n: results.histograms[n] for n in ("x", "xy", "cats")}, results.cutflow)
    with uproot.recreate(path) as file:
        write_results(file, picked)
    return path


def _cli(capsys, *args):
    capsys.readouterr()
    code = main(["hist", "show", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _block(text: str, name: str) -> list[str]:
    """The lines of histogram ``name`` in the summary."""
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"histogram {name}:")))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


_ROW = re.compile(r"^  (\[\S+, \S+\)|-?\d+(?:\.\.\d+)?)\s+(-?[\d,.]+)(?: ± ([\d,.]+))?\s*(#*)$")


def _rows(lines: list[str]) -> list[tuple[str, float, float | None, int]]:
    """``(label, value, error, bar length)`` of each bar row."""
    out = []
    for line in lines:
        match = _ROW.match(line)
        if match:
            label, value, error, bar = match.groups()
            out.append((label, _num(value), _num(error) if error else None, len(bar)))
    return out


def _num(text: str) -> float:
    return float(text.replace(",", ""))


def _field(line: str, key: str) -> float:
    return _num(re.search(rf"{key} (-?[\d,.]+)", line).group(1))


# -- the text, against numpy ----------------------------------------------------------


def test_1d_counts_flow_and_bars_match_numpy(results):
    block = _block(summary(results, width=50), "x")
    assert block[1] == '  axis x "x [GeV]": 10 regular bins from 0 to 1 (underflow, overflow)'
    counts, edges = np.histogram(X, bins=10, range=(0, 1))
    rows = _rows(block)
    assert [label for label, *_ in rows] == [
        f"[{lo:.6g}, {hi:.6g})" for lo, hi in itertools.pairwise(edges)
    ]
    assert [value for _, value, _, _ in rows] == counts.tolist()
    assert [bar for *_, bar in rows] == [round(50 * c / counts.max()) for c in counts]
    assert _field(block[2], "entries") == X.size
    assert _field(block[2], "sum of weights") == X.size
    assert _field(block[2], "underflow") == (X < 0).sum()
    assert _field(block[2], "overflow") == (X >= 1).sum()


def test_weighted_sums_and_errors_match_numpy(results):
    block = _block(summary(results), "xw")
    assert "variable bins, edges 0 0.1 0.25 0.5 0.6 1" in block[1]
    sumw, _ = np.histogram(X, bins=VAR_EDGES, weights=W)
    sumw2, _ = np.histogram(X, bins=VAR_EDGES, weights=W**2)
    rows = _rows(block)
    assert [label for label, *_ in rows] == ["[0, 0.1)", "[0.1, 0.25)", "[0.25, 0.5)",
                                             "[0.5, 0.6)", "[0.6, 1)"]  # fmt: skip
    for (_, value, error, _), w, w2 in zip(rows, sumw, sumw2, strict=True):
        assert value == pytest.approx(w, rel=1e-5)
        assert error == pytest.approx(math.sqrt(w2), rel=1e-2)
    total = re.search(r"sum of weights ([\d,.]+) ± ([\d,.]+)", block[2])
    assert _num(total.group(1)) == pytest.approx(W.sum(), rel=1e-5)
    assert _num(total.group(2)) == pytest.approx(math.sqrt((W**2).sum()), rel=1e-2)
    assert _field(block[2], "underflow") == pytest.approx(W[X < 0].sum(), rel=1e-5)


def test_many_bins_are_shown_several_per_row(results):
    block = _block(summary(results), "fine")
    assert "  100 bins shown 3 per row" in block
    rows = _rows(block)
    assert len(rows) == 34 <= MAX_ROWS
    edges = [*np.linspace(0, 1, 101)[::3].tolist(), 1.0]
    counts, _ = np.histogram(X, bins=edges)
    assert [value for _, value, _, _ in rows] == counts.tolist()
    assert rows[0][0] == "[0, 0.03)"
    assert rows[-1][0] == "[0.99, 1)"


def test_small_2d_is_a_table_large_2d_its_projections(results):
    block = _block(summary(results), "xy")
    assert block[2] == '  axis n "tracks": 4 integer bins, 0 to 3 (underflow, overflow)'
    table = block[block.index(next(b for b in block if b.startswith("  x \\ n"))) :]
    assert table[0].split()[-5:] == ["0", "1", "2", "3", "total"]
    expected, _, _ = np.histogram2d(
        X, Y, bins=[np.linspace(0, 1, 5), np.arange(5) - 0.5], weights=W
    )
    for row, want in zip(table[1:5], expected, strict=True):
        cells = [_num(c) for c in row.split(")", 1)[1].split()]
        assert cells == pytest.approx([*want, want.sum()], rel=1e-5)
    assert _num(table[5].split()[-1]) == pytest.approx(expected.sum(), rel=1e-5)
    flow = re.search(r"n underflow ([\d,.]+), overflow ([\d,.]+)", block[3])
    assert _num(flow.group(1)) == pytest.approx(W[Y < 0].sum(), rel=1e-5)
    assert _num(flow.group(2)) == pytest.approx(W[Y >= 4].sum(), rel=1e-5)

    big = _block(summary(results), "big")
    heads = [b for b in big if b.startswith("  projection on")]
    assert [h.split()[2] for h in heads] == ["x", "z"]
    on_x = _rows(big[big.index(heads[0]) + 1 : big.index(heads[1])])
    assert [value for _, value, _, _ in on_x] == np.histogram(X, bins=20, range=(0, 1))[0].tolist()


def test_many_categories_the_first_shown_the_rest_in_one_row(results):
    block = _block(summary(results), "cats")
    assert block[1].startswith("  axis channel: 45 categories: ch0, ch1, ")
    assert block[1].endswith(", ... (other categories)")
    assert _field(block[2], "other categories") == (CHANNEL == "unbooked").sum()
    assert f"  45 categories: the first {MAX_ROWS - 1} shown, the rest in one row" in block
    rows = _rows_of(block, r"ch\d+|\(\d+ more\)")
    counted = Counter(CHANNEL.tolist())
    counts = [counted[c] for c in CATEGORIES]
    assert rows == [
        *zip(CATEGORIES[: MAX_ROWS - 1], counts[: MAX_ROWS - 1], strict=True),
        ("(6 more)", sum(counts[MAX_ROWS - 1 :])),
    ]


def _rows_of(lines: list[str], label: str) -> list[tuple[str, int]]:
    """``(label, count)`` of the rows whose label matches ``label``."""
    found = (re.match(rf"^  ({label})\s+([\d,]+)", line) for line in lines)
    return [(m.group(1), int(_num(m.group(2)))) for m in found if m]


def test_cutflow_table_fractions(results):
    text = summary(results)
    table = text[text.index("cut flow:") :].splitlines()
    assert table[1].split() == ["cut", "events", "of", "previous", "of", "first"]
    rows = [re.split(r"\s{2,}", line.strip()) for line in table[2:]]
    assert [r[0] for r in rows] == [cut for cut, _ in CUTFLOW]
    assert [_num(r[1]) for r in rows] == [events for _, events in CUTFLOW]
    assert [r[2] for r in rows] == ["-", "62.50 %", "28.00 %", "0.00 %"]
    assert [r[3] for r in rows] == ["100.00 %", "62.50 %", "17.50 %", "0.00 %"]


def test_summary_is_plain_and_stable(results):
    text = summary(results)
    assert text == summary(results)
    assert {c for c in text if not c.isascii()} == {"±"}  # no box drawing, no block bars
    assert "\x1b" not in text  # no terminal colours
    assert "[bold" not in text  # no rich markup


# -- the command ------------------------------------------------------------------------


def test_cli_prints_the_summary_and_json_matches(results, results_file, capsys):
    code, out, err = _cli(capsys, results_file)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{results_file}: 6 histograms, a cut flow of 4 rows"
    assert summary(results) in out

    code, out, err = _cli(capsys, results_file, "--json")
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["cutflow"] == [{"cut": c, "events": n} for c, n in CUTFLOW]
    by_name = {h["name"]: h for h in body["histograms"]}
    assert list(by_name) == ["x", "xw", "fine", "xy", "big", "cats"]
    x = by_name["x"]
    assert x["storage"] == "int"
    assert x["axes"][0]["edges"] == pytest.approx(np.linspace(0, 1, 11).tolist())
    assert x["values"] == np.histogram(X, bins=10, range=(0, 1))[0].tolist()
    assert x["variances"] == x["values"]
    assert x["flow"]["values"][0] == (X < 0).sum()
    assert x["flow"]["values"][-1] == (X >= 1).sum()
    xw = by_name["xw"]
    assert xw["values"] == pytest.approx(np.histogram(X, bins=VAR_EDGES, weights=W)[0].tolist())
    assert xw["variances"] == pytest.approx(
        np.histogram(X, bins=VAR_EDGES, weights=W**2)[0].tolist()
    )
    assert xw["entries"] == np.histogram(X, bins=VAR_EDGES)[0].tolist()
    xy = by_name["xy"]
    assert xy["variances"] is None  # Double storage keeps no squared weights
    expected, _, _ = np.histogram2d(
        X, Y, bins=[np.linspace(0, 1, 5), np.arange(5) - 0.5], weights=W
    )
    assert np.allclose(xy["values"], expected, rtol=1e-12)
    assert [a["type"] for a in xy["axes"]] == ["Regular", "Integer"]


def _png_ok(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert min(width / 400, height / 300) >= 1, (path, width, height)
    assert len(data) > 10_000, (path, len(data))  # drawn, not an empty canvas


PNGS = ["x", "xy", "cats", "cutflow"]


def _pngs_ok(paths: list[str], prefix: Path) -> None:
    assert paths == [f"{prefix}-{name}.png" for name in PNGS]
    for path in paths:
        _png_ok(Path(path))
    assert sorted(p.name for p in prefix.parent.iterdir()) == sorted(
        f"{prefix.name}-{name}.png" for name in PNGS
    )  # nothing else: no temp file left behind


def test_pngs_with_mplhep(small_file, tmp_path, capsys):
    prefix = tmp_path / "plots" / "job"
    code, out, err = _cli(capsys, small_file, "--png", prefix, "--json")
    assert (code, err) == (0, "")
    assert sys.modules.get("mplhep") is not None  # installed here: drawn through it
    _pngs_ok(json.loads(out)["png"], prefix)


_WITHOUT_MPLHEP = """
import sys
sys.modules["mplhep"] = None  # `import mplhep` raises ImportError: plain matplotlib draws
from hepstream.cli import main
code = main(["hist", "show", *sys.argv[1:]])
assert sys.modules["mplhep"] is None
sys.exit(code)
"""


def test_pngs_without_mplhep(small_file, tmp_path):
    prefix = tmp_path / "plots" / "job"
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MPLHEP, str(small_file), "--png", str(prefix), "--json"],
        capture_output=True, text=True, env=child_env(), timeout=120, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    _pngs_ok(json.loads(done.stdout)["png"], prefix)


def test_a_failed_png_save_leaves_nothing(small_file, tmp_path, capsys):
    blocked = tmp_path / "q"
    Path(f"{blocked}-xy.png").mkdir()  # the PNG cannot take this name
    code, out, err = _cli(capsys, small_file, "--png", blocked)
    assert (code, out) == (5, "")  # nothing printed as if it had worked
    assert err.count("\n") == 1
    assert err.startswith("hepstream: error: ")
    assert f"{blocked}-xy.png: cannot write the PNG" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".q-")]  # no temp file


# -- a real job's output ---------------------------------------------------------------

PLUGIN = """
import hist
import numpy as np
import hepstream


class Booked(hepstream.Selection):
    branches = ["ntrk", "thrust", "missing_pt", "evis"]
    cuts = ["two tracks", "thrust"]
    run_branch = None

    def book(self):
        return {
            "thrust": hist.Hist.new.Reg(25, 0.75, 1.0, name="thrust", label="thrust T").Int64(),
            "met_ntrk": hist.Hist.new.Var([0, 0.5, 1, 2, 4], name="met", label="missing pT")
            .Integer(0, 6, name="ntrk", label="tracks").Weight(),
        }

    def select(self, events):
        return {"two tracks": (events.ntrk == 2).to_numpy(),
                "thrust": (events.thrust > 0.85).to_numpy()}

    def fill(self, events):
        self.hists["thrust"].fill(events.thrust.to_numpy())

    def fill_all(self, events):
        self.hists["met_ntrk"].fill(events.missing_pt.to_numpy(), events.ntrk.to_numpy(),
                                    weight=events.evis.to_numpy())
"""


@pytest.fixture(scope="module")
def job_outputs(tmp_path_factory):
    """The plugin above run by ``hepstream run`` over a generated sample, ROOT and Parquet.
    The sample is this module's own, 5,000 events: the session's ``sample_dir`` (45,000
    events) would take most of this file's time budget when it runs alone."""
    from hepstream.tools.generate import generate_sample

    base = tmp_path_factory.mktemp("hist_job")
    sample = generate_sample(base / "tau1n_mc.root", "tau1n-mc", 5_000, seed=26,
                             events_per_basket=1_000)  # fmt: skip
    plugin = base / "booked.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    made = {}
    for suffix in ("root", "parquet"):
        made[suffix] = base / f"job.{suffix}"
        done = subprocess.run(
            [str(HEPSTREAM), "run", str(plugin), str(sample),
             "-o", str(made[suffix]), "--no-progress"],
            capture_output=True, text=True, env=child_env(), timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    with uproot.open(sample) as file:
        made["events"] = file["events"].arrays(["ntrk", "thrust", "missing_pt", "evis"],
                                               library="np")  # fmt: skip
    return made


def test_a_real_job_output_matches_numpy(job_outputs, capsys):
    events = job_outputs["events"]
    two = events["ntrk"] == 2
    selected = two & (events["thrust"] > 0.85)
    code, out, err = _cli(capsys, job_outputs["root"], "--json")
    assert (code, err) == (0, "")
    body = json.loads(out)
    assert body["cutflow"] == [
        {"cut": "events read", "events": len(two)},
        {"cut": "two tracks", "events": int(two.sum())},
        {"cut": "thrust", "events": int(selected.sum())},
    ]
    by_name = {h["name"]: h for h in body["histograms"]}
    # hist itself, not numpy: a float32 value next to an edge lands where boost computes it
    reference = hist.Hist.new.Reg(25, 0.75, 1.0).Int64().fill(events["thrust"][selected])
    expected = reference.values()
    assert by_name["thrust"]["values"] == expected.tolist()
    met = by_name["met_ntrk"]
    bins = [[0, 0.5, 1, 2, 4], np.arange(7) - 0.5]  # numpy's last bin is closed
    args = (events["missing_pt"], events["ntrk"])
    evis = events["evis"].astype(np.float64)  # numpy would sum float32 weights in float32
    assert np.allclose(met["values"], np.histogram2d(*args, bins=bins, weights=evis)[0],
                       rtol=1e-12, atol=0)  # fmt: skip
    assert np.allclose(met["variances"],
                       np.histogram2d(*args, bins=bins, weights=evis**2)[0],
                       rtol=1e-12, atol=0)  # fmt: skip

    code, out, err = _cli(capsys, job_outputs["root"])
    assert code == 0
    rows = _rows(_block(out, "thrust"))
    assert [value for _, value, _, _ in rows] == expected.tolist()


def test_a_parquet_output_shows_its_sidecar(job_outputs, capsys):
    code, out, err = _cli(capsys, job_outputs["parquet"])
    assert (code, err) == (0, "")
    sidecar = job_outputs["parquet"].with_suffix(".hist.root")
    assert out.startswith(f"{sidecar}: 2 histograms, a cut flow of 3 rows\n")
    code, root_out, _ = _cli(capsys, job_outputs["root"])
    assert out.split("\n", 1)[1] == root_out.split("\n", 1)[1]  # the same histograms


# -- bad input: one line each ------------------------------------------------------------


def _bad_inputs(base: Path, good: Path) -> list[tuple[Path, str]]:
    missing = base / "nowhere.root"
    text = base / "notes.root"
    text.write_text("not a ROOT file\n")
    bare = base / "bare.parquet"  # a Parquet output whose job wrote no sidecar
    bare.write_bytes(b"PAR1....PAR1")
    no_hists = base / "tree_only.root"
    with uproot.recreate(no_hists) as file:
        file["events"] = {"x": np.arange(10)}
    damaged = base / "damaged.root"
    with uproot.recreate(damaged) as file:
        file[STATE_KEY] = '{"version": 1, "histograms": [{"name": "x"'
    wrong_size = base / "wrong_size.root"
    with uproot.recreate(wrong_size) as file:
        state = json.loads(
            Results({"x": Histogram("x", hist.Hist.new.Reg(3, 0, 1).Int64())}).state()
        )
        state["histograms"][0]["counts"] = "AAAAAAAAAAA="
        file[STATE_KEY] = json.dumps(state)
    truncated = base / "truncated.root"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return [
        (missing, f"output not found: {missing}"),
        (text, "is neither a ROOT nor a Parquet file"),
        (bare, "no histograms beside this Parquet output: "),
        (base / "gone.parquet", "(also missing)"),
        (no_hists, "holds no histograms and no cut flow hepstream wrote"),
        (damaged, "its histograms cannot be read"),
        (wrong_size, "its histograms cannot be read"),
        (truncated, "is truncated"),
        (base, "is a directory"),
    ]


def test_each_bad_input_is_one_line(results_file, tmp_path, capsys):
    for path, says in _bad_inputs(tmp_path, results_file):
        code, out, err = _cli(capsys, path)
        assert code == 3, (path, err)
        assert out == "", path
        assert err.count("\n") == 1, err
        assert err.startswith("hepstream: error: "), err
        assert says in err, err
        assert "Traceback" not in err


def test_help_has_a_runnable_example(capsys):
    assert main(["hist", "show", "--help"]) == 0
    out = capsys.readouterr().out
    assert "hepstream hist show out/tau1n.root --png out/tau1n" in out
