"""Real jobs that fill histograms and a cut flow (issue 26), run as ``hepstream run``: what
they write equals ``hist`` filled from the independent uproot/awkward answer; ``--workers 2``,
another input order, a Parquet sidecar and ``--histograms-only`` give the same bits; a file
skipped mid-way leaves nothing in them; a plugin that books or answers wrongly is one line.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path

import awkward as ak
import hist
import numpy as np
import pytest
import uproot
from histplugins import BRANCHES, CUTS, EARLY, EDGES, write_plugin
from prochelpers import one_error_line

from hepstream.cli import main
from hepstream.errors import ConfigError, JobIncomplete, PluginError
from hepstream.hists.store import CUTFLOW_KEY, STATE_KEY, read_results, sidecar_of

MC, MC11 = "tau1n_mc_000.root", "tau11_mc_000.root"
NAMES = ["thrust", "evis_q", "ptmiss", "ntrk_truth", "charge", "thrust_all", "trk_p"]


def _run(capsys, plugin: Path, inputs: list[Path], out: Path, *flags: str, chunk: str = "64k"):
    """``hepstream run`` in this process: exit code, stderr, the report (None if not written).
    Chunks of 64k hold a few hundred events (many chunks per file); of 8M, a whole file."""
    report = out.with_name(out.name.split(".")[0] + ".json")
    argv = ["run", str(plugin), *map(str, inputs), "-o", str(out), "--report", str(report),
            "--chunk", chunk, "--no-progress", *flags]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    return code, err, json.loads(report.read_text()) if report.exists() else None


# -- the independent answer ------------------------------------------------------------------
@functools.cache
def _events(paths: tuple[str, ...]) -> ak.Array:
    parts = []
    for path in paths:
        with uproot.open(path) as file:
            parts.append(file["events"].arrays(BRANCHES, library="ak"))
    return ak.concatenate(parts)


def _bookings() -> dict[str, hist.Hist]:
    return {
        "thrust": hist.Hist.new.Reg(25, 0.5, 1.0, name="thrust").Int64(),
        "evis_q": hist.Hist.new.Reg(8, 0, 8, name="evis").Double(),
        "ptmiss": hist.Hist.new.Var(EDGES, name="ptmiss").Weight(),
        "ntrk_truth": hist.Hist.new.Integer(0, 6, name="ntrk")
        .IntCat([10, 11, 12], name="truth")
        .Weight(),
        "charge": hist.Hist.new.StrCat(["neutral", "charged"], name="q").Int64(),
        "thrust_all": hist.Hist.new.Reg(25, 0.5, 1.0, name="thrust").Int64(),
        "trk_p": hist.Hist.new.Var(EDGES, name="p").Int64(),
    }


def _binned_fsum(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per flow-included bin of EDGES: ``math.fsum`` of the weights and of their squares
    (below the first edge; ``[lo, hi)`` each; at or above the last edge, or NaN)."""
    edges = EDGES
    masks = [x < edges[0]]
    masks += [(x >= lo) & (x < hi) for lo, hi in itertools.pairwise(edges)]
    masks.append((x >= edges[-1]) | np.isnan(x))
    assert sum(int(m.sum()) for m in masks) == len(x)
    return (
        np.array([math.fsum(w[m]) for m in masks]),
        np.array([math.fsum(w[m] * w[m]) for m in masks]),
    )


def _expected(paths: tuple[str, ...], mode: str, preselect: bool):
    """What the plugin of ``histplugins`` should fill and count over ``paths``: its
    histograms, the cut-flow rows, the events selected."""
    events = _events(paths)
    early = np.asarray(events.event < EARLY) if preselect else np.ones(len(events), bool)
    c1 = early & np.asarray(events.thrust > 0.95)
    c2 = np.asarray(events.ntrk == 2)
    c3 = np.asarray(events.missing_pt > 0.5)
    passing = [c1, c1 & c2, c1 & c2 & c3]
    sel = events[passing[-1]]
    if mode == "mask":
        rows = [["events read", len(events)], ["selected", len(sel)]]
    else:
        rows = [["events read", len(events)]] + [
            [cut, int(p.sum())] for cut, p in zip(CUTS, passing, strict=True)
        ]
    h = _bookings()
    event = np.asarray(sel.event)
    evis = np.asarray(sel.evis).astype(np.float64)
    h["thrust"].fill(np.asarray(sel.thrust))
    # dyadic weights of at most 2 fractional bits: boost's float sums are exact here
    h["evis_q"].fill(np.floor(evis * 2) / 2, weight=(event % 7) * 0.25 - 0.5)
    ptmiss = np.asarray(sel.missing_pt).astype(np.float64)
    ptmiss[event % 10 == 1] = np.asarray(EDGES)[event[event % 10 == 1] % 7]
    ptmiss[event % 10 == 0] = np.nan
    assert np.isin(np.asarray(EDGES), ptmiss).all()  # every edge is hit exactly
    sumw, sumw2 = _binned_fsum(ptmiss, evis / 10)  # weights that are not "nice": fsum
    h["ptmiss"].view(flow=True).value = sumw
    h["ptmiss"].view(flow=True).variance = sumw2
    h["ntrk_truth"].fill(
        np.asarray(sel.ntrk) + event % 6,
        np.asarray(sel.mc_truth) + 3 * (event % 5 == 0),
        weight=1 + (event % 3) * 0.5,
    )
    charge = ["neutral" if sum(q) == 0 else "charged" for q in ak.to_list(sel.trk_charge)]
    h["charge"].fill(np.where(event % 13 == 0, "other", charge))
    h["thrust_all"].fill(np.asarray(events.thrust)[early])
    h["trk_p"].fill(ak.to_numpy(ak.flatten(sel.trk_p)).astype(np.float64) - 0.5)
    return h, rows, len(sel)


def _flow_complete(h) -> bool:
    return all(a.traits.underflow and a.traits.overflow for a in h.axes)


def _same(got, want, name: str) -> None:
    g, w = got.view(flow=True), want.view(flow=True)
    if hasattr(w, "variance"):
        np.testing.assert_array_equal(g.value, w.value, err_msg=name)
        np.testing.assert_array_equal(g.variance, w.variance, err_msg=name)
    else:
        np.testing.assert_array_equal(g, w, err_msg=name)


def _check_output(out: Path, report: dict, mode: str, preselect: bool, paths) -> None:
    """The job's report, TH1/TH2s, exact state and cut flow are the independent answer."""
    want, rows, selected = _expected(tuple(map(str, paths)), mode, preselect)
    assert report["status"] == "ok"
    assert report["histograms"] == NAMES
    assert report["events_selected"] == selected > 0
    assert report["cutflow"] == rows
    counts = [n for _, n in rows]
    assert all(b <= a for a, b in itertools.pairwise(counts))  # it adds up
    assert counts[-1] == report["events_selected"]
    results = read_results(out)
    assert results is not None
    assert results.cutflow == [tuple(row) for row in rows]
    assert list(results.histograms) == NAMES
    with uproot.open(out) as file:
        th_cutflow = file[CUTFLOW_KEY]
        assert list(th_cutflow.axes[0].labels()) == [cut for cut, _ in rows]
        np.testing.assert_array_equal(th_cutflow.values(), counts)
        for name in NAMES:
            _same(results.histograms[name].to_hist(), want[name], name)
            th = file[name]
            flow = _flow_complete(want[name])  # uproot writes flow bins only then
            np.testing.assert_array_equal(th.values(flow=flow), want[name].values(flow=flow), name)
            if want[name].storage_type is hist.storage.Weight:
                np.testing.assert_array_equal(
                    th.variances(flow=flow), want[name].variances(flow=flow), name
                )
    assert want["charge"][hist.overflow] > 0  # the "other" label: beyond the categories
    assert want["ntrk_truth"].view(flow=True).value[-1].sum() > 0  # ntrk overflow
    assert want["ntrk_truth"].view(flow=True).value[:, -1].sum() > 0  # truth overflow
    assert want["trk_p"][hist.underflow] > 0
    assert want["trk_p"][hist.overflow] > 0


# -- one job: the independent answer ---------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "preselect"), [("int", False), ("dict", False), ("mask", False), ("int", True)]
)
def test_one_jobs_histograms_and_cut_flow_are_the_independent_answer(
    tmp_path, capsys, sample_dir, mode, preselect
):
    plugin = write_plugin(tmp_path, mode, preselect)
    inputs = [sample_dir / MC, sample_dir / MC11]
    out = tmp_path / "out.root"
    # with preselect, whole-file chunks: the reader skips the dead clusters of the first
    code, err, report = _run(capsys, plugin, inputs, out, chunk="8M" if preselect else "64k")
    assert code == 0, err
    _check_output(out, report, mode, preselect, inputs)
    assert report["clusters_skipped"] == (3 if preselect else 0)  # not in the counts


def _state(path: Path) -> str:
    with uproot.open(path) as file:
        return str(file[STATE_KEY])


def _same_files(a: Path, b: Path) -> None:
    """Two outputs hold the same histograms: TH1/TH2 values and variances, flow bins and
    all, and the same exact state, character for character."""
    assert _state(a) == _state(b)
    with uproot.open(a) as fa, uproot.open(b) as fb:
        for name in [*NAMES, CUTFLOW_KEY]:
            np.testing.assert_array_equal(fa[name].values(flow=True), fb[name].values(flow=True))
            np.testing.assert_array_equal(
                fa[name].variances(flow=True), fb[name].variances(flow=True)
            )
            assert fa[name].axes[0].member("fTitle") == fb[name].axes[0].member("fTitle")


def test_two_workers_and_any_input_order_give_the_same_bits(tmp_path, capsys, sample_dir):
    """The reader preselects in each process on its own, and stops once a chunk keeps every
    cluster: here in none, one or both copies of the mc sample. Neither the cut counts nor
    fill_all() may see that."""
    plugin = write_plugin(tmp_path, "int", preselect=True)
    inputs = [sample_dir / MC11, sample_dir / MC, sample_dir / MC]
    runs = {
        "one": (inputs, "1"),
        "two": (inputs, "2"),
        "reordered": ([inputs[1], inputs[2], inputs[0]], "1"),
    }
    reports = {}
    for name, (paths, workers) in runs.items():
        code, err, reports[name] = _run(
            capsys, plugin, paths, tmp_path / f"{name}.root", "--workers", workers, chunk="8M"
        )
        assert code == 0, err
    assert [r["clusters_skipped"] for r in reports.values()] == [0, 3, 6]
    _check_output(tmp_path / "one.root", reports["one"], "int", True, inputs)
    for name in ("two", "reordered"):
        _same_files(tmp_path / "one.root", tmp_path / f"{name}.root")
        assert reports[name]["cutflow"] == reports["one"]["cutflow"]


def test_parquet_output_writes_the_histograms_to_a_sidecar(tmp_path, capsys, sample_dir):
    plugin = write_plugin(tmp_path, "dict")
    inputs = [sample_dir / MC11]
    code, err, root = _run(capsys, plugin, inputs, tmp_path / "o.root")
    assert code == 0, err
    code, err, parquet = _run(capsys, plugin, inputs, tmp_path / "p.parquet")
    assert code == 0, err
    sidecar = Path(sidecar_of(str(tmp_path / "p.parquet")))
    assert sidecar == tmp_path / "p.hist.root"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".py") == [
        "o.json", "o.root", "p.hist.root", "p.json", "p.parquet",
    ]  # fmt: skip
    _same_files(tmp_path / "o.root", sidecar)
    with uproot.open(sidecar) as file:
        assert "TTree" not in file.classnames().values()
    import pyarrow.parquet as pq

    assert pq.read_metadata(tmp_path / "p.parquet").num_rows == parquet["events_selected"] > 0
    assert parquet["cutflow"] == root["cutflow"]
    assert parquet["histograms"] == root["histograms"] == NAMES


@pytest.mark.parametrize("workers", ["1", "2"])
def test_histograms_only_writes_no_tree(tmp_path, capsys, sample_dir, workers):
    plugin = write_plugin(tmp_path, "int")
    inputs = [sample_dir / MC11, sample_dir / MC11]
    code, err, full = _run(capsys, plugin, inputs, tmp_path / "full.root")
    assert code == 0, err
    code, err, only = _run(
        capsys, plugin, inputs, tmp_path / "only.root", "--histograms-only", "--workers", workers
    )
    assert code == 0, err
    with uproot.open(tmp_path / "only.root") as file:
        assert sorted(file.keys(cycle=False)) == sorted([*NAMES, CUTFLOW_KEY, STATE_KEY])
    _same_files(tmp_path / "full.root", tmp_path / "only.root")
    assert only["cutflow"] == full["cutflow"]
    assert only["events_selected"] == full["events_selected"] > 0


NO_BOOK = """\
import numpy as np, hepstream
class Plain(hepstream.Selection):
    branches = ["thrust"]
    def select(self, events):
        return np.asarray(events.thrust) > 0.9
"""


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("case", ["parquet", "no book()"])
def test_histograms_only_refused_in_one_line(tmp_path, capsys, sample_dir, case, workers):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if case == "parquet":
        plugin, out, needles = write_plugin(tmp_path, "int"), out_dir / "o.parquet", [".root"]
    else:
        plugin = tmp_path / "plain.py"
        plugin.write_text(NO_BOOK)
        out, needles = out_dir / "o.root", [str(plugin), "book()"]
    inputs = [sample_dir / MC11, sample_dir / MC11]
    code, err, report = _run(capsys, plugin, inputs, out, "--histograms-only", "--workers", workers)
    line = one_error_line(code, err, ConfigError.exit_code, "--histograms-only", *needles)
    assert [p.name for p in out_dir.iterdir() if p.suffix != ".json"] == []
    if report is not None:
        assert report["status"] == "failed"
        assert report["error"] == line.removeprefix("hepstream: error: ")


BAD_SELECT = """\
import numpy as np, hepstream
class Bad(hepstream.Selection):
    branches = ["thrust"]
    cuts = {cuts!r}
    def select(self, events):
        n = len(events)
        yes = np.ones(n, bool)
        return {answer}
"""


@pytest.mark.parametrize(
    ("cuts", "answer", "needle"),
    [
        (["a", "b"], "{'a': yes, 'c': yes}", "['a', 'c']"),
        (["a", "b"], "{'b': yes, 'a': yes}", "same names, same order"),
        (["a", "b"], "np.full(n, 3)", "outside 0-2"),
        (["a", "b"], "np.full(n, -1, np.int8)", "outside 0-2"),
        (["a", "b"], "yes", "names cuts ['a', 'b']"),
        (["a", "b"], "{'a': yes, 'b': np.ones(n)}", "float64"),
        ([], "np.ones(n, np.int64)", "names no cuts"),
        ([], "{'a': yes}", "names no cuts"),
    ],
)  # fmt: skip
def test_a_wrong_select_answer_is_one_line(tmp_path, capsys, sample_dir, cuts, answer, needle):
    plugin = tmp_path / "bad_select.py"
    plugin.write_text(BAD_SELECT.format(cuts=cuts, answer=answer))
    out = tmp_path / "o.root"
    code, err, report = _run(capsys, plugin, [sample_dir / MC11], out)
    one_error_line(code, err, PluginError.exit_code, "bad_select.py", "select()", needle)
    assert report["status"] == "failed"
    assert not out.exists()


BAD_BOOK = """\
import numpy as np, hist, hepstream
class Bad(hepstream.Selection):
    branches = ["thrust"]
    def book(self):
        return {booked}
    def select(self, events):
        return np.asarray(events.thrust) > 0.9
"""


@pytest.mark.parametrize(
    ("booked", "needle"),
    [
        ("{'cat': hist.Hist.new.StrCat([], name='c', growth=True).Int64()}", "grows"),
        ("{'x': hist.Hist.new.Reg(4, 0, 1, name='x', growth=True).Int64()}", "grows"),
        ("{'m': hist.Hist.new.Reg(4, 0, 1).Mean()}", "Mean"),
        ("{'pt lead': hist.Hist.new.Reg(4, 0, 1).Int64()}", "'pt lead'"),
        ("{'1x': hist.Hist.new.Reg(4, 0, 1).Int64()}", "'1x'"),
        ("[hist.Hist.new.Reg(4, 0, 1).Int64()]", "not list"),
        ("{'h': np.histogram([1, 2], bins=2)}", "not tuple"),
        ("{'cutflow': hist.Hist.new.Reg(4, 0, 1).Int64()}", "a key the output already has"),
        ("{'events': hist.Hist.new.Reg(4, 0, 1).Int64()}", "a key the output already has"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_wrong_booking_is_one_line(tmp_path, capsys, sample_dir, booked, needle, workers):
    plugin = tmp_path / "bad_book.py"
    plugin.write_text(BAD_BOOK.format(booked=booked))
    out = tmp_path / "o.root"
    inputs = [sample_dir / MC11, sample_dir / MC11]
    code, err, report = _run(capsys, plugin, inputs, out, "--workers", workers)
    one_error_line(code, err, PluginError.exit_code, "bad_book.py", needle)
    assert report["status"] == "failed"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".root" or ".part" in p.name] == []


BAD_WEIGHT = """\
import numpy as np, hist, hepstream
class Weighted(hepstream.Selection):
    branches = ["thrust"]
    def book(self):
        return {"thrust_w": hist.Hist.new.Reg(4, 0, 1, name="t").Weight()}
    def select(self, events):
        return np.asarray(events.thrust) > 0.9
    def fill(self, events):
        t = np.asarray(events.thrust)
        self.hists["thrust_w"].fill(t, weight=np.where(t > 0.95, np.nan, 1.0))
"""


def _bad_weight(tmp_path, capsys, sample_dir) -> str:
    plugin = tmp_path / "bad_weight.py"
    plugin.write_text(BAD_WEIGHT)
    out = tmp_path / "o.root"
    code, err, report = _run(capsys, plugin, [sample_dir / MC11], out)
    line = one_error_line(code, err, PluginError.exit_code, "'thrust_w'", "nan")
    assert report["status"] == "failed"
    assert not out.exists()
    return line


def test_a_weight_that_cannot_be_summed_is_one_line(tmp_path, capsys, sample_dir):
    _bad_weight(tmp_path, capsys, sample_dir)


def test_a_weight_that_cannot_be_summed_names_the_plugin_and_chunk(tmp_path, capsys, sample_dir):
    line = _bad_weight(tmp_path, capsys, sample_dir)
    for name in ("bad_weight.py", "entries ", "fill()"):
        assert name in line


# -- a file skipped mid-way leaves nothing in the histograms ---------------------------------
@pytest.fixture
def corrupt(tmp_path, sample_dir) -> Path:
    """A copy of the mc sample whose later clusters' baskets are garbage: it opens, fills
    the histograms with its first chunks, then breaks."""
    blob = bytearray((sample_dir / MC).read_bytes())
    lo, hi = len(blob) // 2, len(blob) * 3 // 4
    blob[lo:hi] = np.random.default_rng(7).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    path = tmp_path / "corrupt.root"
    path.write_bytes(bytes(blob))
    return path


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_skipped_files_events_are_in_no_histogram(tmp_path, capsys, sample_dir, corrupt, workers):
    plugin = write_plugin(tmp_path, "dict")
    good = [sample_dir / MC, sample_dir / MC11]
    code, err, clean = _run(capsys, plugin, good, tmp_path / "clean.root")
    assert code == 0, err
    code, err, skip = _run(
        capsys, plugin, [good[0], corrupt, good[1]], tmp_path / "skip.root",
        "--skip-bad-files", "--workers", workers,
    )  # fmt: skip
    assert code == JobIncomplete.exit_code, err
    assert [f["status"] for f in skip["files"]] == ["ok", "skipped", "ok"]
    assert skip["files"][1]["events_read"] > 0  # it broke after filling from its first chunks
    _same_files(tmp_path / "clean.root", tmp_path / "skip.root")
    assert skip["cutflow"] == clean["cutflow"]
    _check_output(tmp_path / "skip.root", dict(skip, status="ok"), "dict", False, good)


def test_the_samples_are_what_the_checks_assume(sample_dir):
    """What the tests above assume of the samples: clusters of whole files' events, every
    one of the small sample's below EARLY and one of the mc sample's four."""
    with uproot.open(sample_dir / MC) as mc, uproot.open(sample_dir / MC11) as mc11:
        assert mc["events"].common_entry_offsets() == [0, 5000, 10000, 15000, 20000]
        assert mc11["events"].common_entry_offsets()[-1] == 5000
        assert list(mc["events"]["event"].array(library="np")) == list(range(20000))
        assert list(mc11["events"]["event"].array(library="np")) == list(range(5000))
    assert EARLY == 5000
