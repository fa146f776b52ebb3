"""``hepstream show``: real job outputs (ROOT, Parquet, a dataset's) against uproot's and
pyarrow's own reading, ``--json``, and one line for each bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from hepstream.cli import main
from tests.dataset.dshelp import child_env

PLUGIN = str(Path(__file__).resolve().parent.parent / "examples" / "tau1n.py")


def _show(capsys, *args):
    capsys.readouterr()
    code = main(["show", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cell(value) -> str:
    """The table's cell for a value, spelled out here independently of hepstream."""

    def one(x):
        if isinstance(x, float):
            text = f"{x:.4g}"
            return text if any(c in text for c in ".enai") else text + ".0"
        return str(x)

    if isinstance(value, list):
        more = ", …" if len(value) > 3 else ""
        return f"[{', '.join(one(x) for x in value[:3])}{more}] ({len(value)})"
    return one(value)


@pytest.fixture(scope="module")
def outputs(sample_dir, tmp_path_factory):
    """The tau1n selection over a 20,000-event sample, written as ROOT and as Parquet."""
    base = tmp_path_factory.mktemp("show")
    made = {}
    for suffix in ("root", "parquet"):
        made[suffix] = base / f"tau1n.{suffix}"
        code = main(["run", PLUGIN, str(sample_dir / "tau1n_mc_000.root"),
                     "-o", str(made[suffix]), "--no-progress"])  # fmt: skip
        assert code == 0
    return made


def test_root_output_as_uproot_reads_it(outputs, capsys):
    path = outputs["root"]
    code, out, err = _show(capsys, path, "-n", "5")
    assert code == 0, err
    tree = uproot.open(path)["events"]
    expected = tree.arrays(entry_stop=5)
    names = list(tree.keys())
    lines = out.splitlines()
    assert lines[0] == f"{path}: ROOT, tree 'events' (TTree), {tree.num_entries:,} events"
    others = [f"{n} ({c})" for n, c in uproot.open(path).classnames(cycle=False).items()
              if n != "events"]  # fmt: skip
    if others:  # e.g. a cut flow and histograms the job wrote beside the tree
        assert "also: " + ", ".join(others) in lines
    else:
        assert not any(line.startswith("also:") for line in lines)
    start = lines.index(f"columns ({len(names)}):")
    shown = [line.split() for line in lines[start + 1 : start + 1 + len(names)]]
    assert [(cols[0], " ".join(cols[1:])) for cols in shown] == [
        (name, str(expected[name].type.content)) for name in names
    ]
    assert dict((c[0], " ".join(c[1:])) for c in shown)["trk_p"] == "var * float32"
    assert f"first 5 of {tree.num_entries:,} events" in out
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 5
    for i, event in enumerate(ak.to_list(expected)):
        cells = [c.strip() for c in rows[i].strip("│").split("│")]
        assert cells == [str(i), *(_cell(event[name]) for name in names)]
    assert any("…] (4)" in row for row in rows)  # a 4-track event, cut to 3 items


def test_json_and_columns(outputs, capsys):
    path = outputs["root"]
    code, out, _ = _show(capsys, path, "-n", "7", "--columns", "event,trk_p,run", "--json")
    assert code == 0
    doc = json.loads(out)
    tree = uproot.open(path)["events"]
    assert (doc["kind"], doc["tree"], doc["tree_class"]) == ("root", "events", "TTree")
    assert doc["events"] == tree.num_entries
    assert doc["columns"] == [
        {"name": "event", "type": "int64"},
        {"name": "trk_p", "type": "var * float32"},
        {"name": "run", "type": "int32"},
    ]
    assert doc["first"] == ak.to_list(tree.arrays(["event", "trk_p", "run"], entry_stop=7))
    assert doc["files"] == [{"path": str(path), "job": None, "events": tree.num_entries}]


def test_histograms_and_other_objects_are_listed(outputs, capsys, tmp_path):
    path = tmp_path / "with_hists.root"
    shutil.copy(outputs["root"], path)
    rng = np.random.default_rng(1)
    with uproot.update(path) as file:
        file["mass"] = np.histogram(rng.normal(size=100), bins=10)
        file["pt_eta"] = np.histogram2d(rng.normal(size=100), rng.normal(size=100), bins=4)
    code, out, _ = _show(capsys, path, "-n", "1")
    assert code == 0
    (also,) = [line for line in out.splitlines() if line.startswith("also: ")]
    assert also.endswith("mass (TH1D), pt_eta (TH2D)")
    _, out, _ = _show(capsys, path, "-n", "0", "--json")
    assert json.loads(out)["also"][-2:] == [
        {"name": "mass", "class": "TH1D"},
        {"name": "pt_eta", "class": "TH2D"},
    ]
    assert json.loads(out)["first"] == []


def test_parquet_output(outputs, capsys):
    path = outputs["parquet"]
    code, out, _ = _show(capsys, path, "-n", "3", "--columns", "run,trk_p")
    assert code == 0
    rows = pq.ParquetFile(path).metadata.num_rows
    assert out.splitlines()[0] == (f"{path}: Parquet (one table, no tree name), {rows:,} events")
    expected = ak.to_list(ak.from_parquet(path, columns=["run", "trk_p"])[:3])
    table = [line for line in out.splitlines() if line.startswith("│")]
    for i, event in enumerate(expected):
        cells = [c.strip() for c in table[i].strip("│").split("│")]
        assert cells == [str(i), str(event["run"]), _cell(event["trk_p"])]
    _, out, _ = _show(capsys, path, "-n", "4", "--json")
    doc = json.loads(out)
    assert (doc["kind"], doc["tree"], doc["events"]) == ("parquet", None, rows)
    assert doc["first"] == ak.to_list(ak.from_parquet(path)[:4])
    # the same selection in both formats
    root = uproot.open(outputs["root"])["events"]
    assert rows == root.num_entries


@pytest.mark.slow
def test_dataset_shows_ok_outputs_and_names_the_others(sample_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", child_env()["PYTHONPATH"])
    doomed = tmp_path / "doomed.root"
    shutil.copy(sample_dir / "tau11_mc_000.root", doomed)
    inputs = [sample_dir / n for n in ("tau1n_mc_000.root", "tau1n_data_000.root",
                                       "tau11_mc_000.root")] + [doomed]  # fmt: skip
    ds = tmp_path / "ds"
    assert main(["dataset", "split", PLUGIN, *map(str, inputs), "--dir", str(ds),
                 "--files-per-job", "1", "--format", "root"]) == 0  # fmt: skip
    doomed.unlink()  # job-00003 fails: its input is gone
    main(["dataset", "submit", str(ds), "--engine", "local", "--concurrency", "4",
          "--retries", "0"])  # fmt: skip
    (ds / "reports" / "job-00002.json").unlink()  # job-00002 missing
    firsts = [uproot.open(ds / "outputs" / f"job-0000{i}.root")["events"] for i in (0, 1)]
    total = sum(t.num_entries for t in firsts)

    code, out, err = _show(capsys, ds, "-n", "3")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == (
        f"{ds}: dataset of 4 jobs; 2 ROOT outputs, tree 'events' (TTree), {total:,} events in total"
    )
    assert lines[1:3] == ["missing (1):", "  job-00002: no report yet"]
    assert lines[3] == "failed (1):"
    assert lines[4].startswith("  job-00003: ")
    assert "not found" in lines[4]
    for i, tree in enumerate(firsts):
        (line,) = [x for x in lines if x.strip().startswith(f"job-0000{i} ")]
        assert f"{tree.num_entries:,} events" in line
    assert f"first 3 of {total:,} events" in out

    # across outputs in job order, as one run over the two ok jobs' inputs would number them
    n = firsts[0].num_entries + 4
    code, out, _ = _show(capsys, ds / "dataset.json", "-n", n, "--columns", "run,event", "--json")
    assert code == 0
    doc = json.loads(out)
    assert (doc["kind"], doc["jobs"], doc["events"]) == ("dataset", 4, total)
    assert [f["job"] for f in doc["files"]] == ["job-00000", "job-00001"]
    assert doc["missing"] == [{"job": "job-00002", "reason": "no report yet"}]
    assert [f["job"] for f in doc["failed"]] == ["job-00003"]
    expected = ak.concatenate([t.arrays(["run", "event"], entry_stop=n) for t in firsts])[:n]
    assert doc["first"] == ak.to_list(expected)


def _damaged_basket(source: Path, target: Path) -> Path:
    """``source`` with the compressed payload of its first ``trk_p`` basket zeroed."""
    blob = bytearray(source.read_bytes())
    branch = uproot.open(source)["events"]["trk_p"]
    seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    blob[seek + size // 2 : seek + size // 2 + 64] = bytes(64)
    target.write_bytes(bytes(blob))
    return target


def _bad_inputs(outputs, tmp_path, sample_dir):
    """(argv after ``show``, exit code, words of the one error line)."""
    root, parquet = outputs["root"], outputs["parquet"]
    text = tmp_path / "notes.root"
    text.write_text("selected events, I promise\n" * 10)
    empty = tmp_path / "empty.parquet"
    empty.touch()
    cut_root = tmp_path / "cut.root"
    cut_root.write_bytes(root.read_bytes()[: root.stat().st_size * 6 // 10])
    cut_parquet = tmp_path / "cut.parquet"
    cut_parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    blob = bytearray(parquet.read_bytes())
    blob[100:1100] = bytes(1000)
    bad_parquet = tmp_path / "bad.parquet"
    bad_parquet.write_bytes(bytes(blob))
    hists = tmp_path / "hists.root"
    with uproot.recreate(hists) as file:
        file["mass"] = np.histogram(np.arange(10.0), bins=5)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    unrun = tmp_path / "unrun"
    assert main(["dataset", "split", PLUGIN, str(sample_dir / "tau11_mc_000.root"),
                 "--dir", str(unrun), "--files-per-job", "1"]) == 0  # fmt: skip
    return [
        ([tmp_path / "nope.root"], 3, ["output not found", "nope.root", "check the path"]),
        ([plain_dir], 3, ["plain", "not a dataset (no dataset.json)"]),
        ([unrun], 3, ["none of its 1 jobs has an output yet (1 missing)", "dataset submit"]),
        ([text], 3, ["notes.root", "neither a ROOT nor a Parquet file", "b'selected'"]),
        ([empty], 3, ["empty.parquet", "is empty (0 bytes)"]),
        ([cut_root], 3, ["cut.root is truncated", "(60 %)"]),
        ([cut_parquet], 3, ["cut.parquet is a truncated Parquet file"]),
        ([bad_parquet], 3, ["bad.parquet: cannot read", "damaged"]),
        ([_damaged_basket(root, tmp_path / "bad.root"), "--columns", "trk_p"], 3,
         ["bad.root: cannot read tree 'events', entries 0-10 (", "damaged"]),
        ([hists], 3, ["hists.root holds no tree of events", "mass (TH1D)"]),
        ([root, "--tree", "mass"], 3, ["no tree 'mass'", "its trees: events"]),
        ([root, "--columns", "run,nope"], 2, ["no column 'nope'", "its columns are", "trk_p"]),
        (["root://127.0.0.1:1094//data/x.root"], 2, ["show reads local files", "xrdcp"]),
    ]  # fmt: skip


def test_each_bad_input_is_one_line(outputs, tmp_path, sample_dir, capsys):
    for argv, exit_code, words in _bad_inputs(outputs, tmp_path, sample_dir):
        code, out, err = _show(capsys, *argv)
        assert code == exit_code, (argv, err)
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1, (argv, err)
        assert lines[0].startswith("hepstream: error: "), (argv, err)
        for word in words:
            assert word in lines[0], (argv, lines[0])


def test_help_has_a_runnable_example(capsys):
    assert main(["show", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out
    assert "hepstream show out/tau1n.root" in out
