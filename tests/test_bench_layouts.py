"""The layout generators, their plugins, the awkward answers and the RDataFrame anchor agree.

Small files (seconds each); the ROOT-written layouts run ROOT in a child process.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.answers import check_output
from bench.layouts import LAYOUTS, answer, ensure, generate

pytestmark = pytest.mark.slow

N_EVENTS = 20_000


def _run(name: str, path: Path, out: Path):
    from hepstream.job.runner import JobSpec, run_job

    spec = JobSpec(plugin=str(LAYOUTS[name].plugin), inputs=(str(path),), output=str(out))
    return run_job(spec)


@pytest.mark.parametrize("name", ["uproot-bigbasket", "smallbasket", "tau1n"])
def test_plugin_output_equals_the_awkward_answer(tmp_path: Path, name: str) -> None:
    path = generate(name, tmp_path / f"{name}.root", N_EVENTS, seed=11)
    report = _run(name, path, tmp_path / "out.root")
    want = answer(name, [str(path)])
    assert report.status == "ok"
    assert want.selected > 0  # the cuts keep something, so the comparison means something
    assert report.events_read == want.events == N_EVENTS
    assert check_output(want, str(tmp_path / "out.root"), LAYOUTS[name].tree,
                        report.events_selected) == []  # fmt: skip


def test_answer_comparison_catches_a_wrong_value(tmp_path: Path) -> None:
    from bench.answers import compare

    path = generate("uproot-bigbasket", tmp_path / "b.root", 1_000, seed=3)
    want = answer("uproot-bigbasket", [str(path)])
    got = {name: want.column(name) for name in want.columns}
    assert compare(want, got, want.selected) == []
    got["x"] = got["x"] * 1.001
    assert compare(want, got, want.selected) == [f"x: {want.selected:,} values differ"]
    assert compare(want, got, want.selected + 1)[0].startswith("selected")


def test_bigbasket_layout_has_one_basket_per_100k_entries(tmp_path: Path) -> None:
    import uproot

    path = generate("uproot-bigbasket", tmp_path / "b.root", 250_000, seed=1)
    with uproot.open(path) as file:
        tree = file["events"]
        assert tree.common_entry_offsets() == [0, 100_000, 200_000, 250_000]
        assert tree["hit_e"].num_baskets == 3
        # incompressible: stored bytes are at least the data (3 float64 hits/event on average)
        assert tree["hit_e"].compressed_bytes > 0.95 * 8 * len(tree["hit_e"].array(library="np"))


def test_root_layouts_hold_the_same_events_as_ttree_and_rntuple(tmp_path: Path) -> None:
    """The NanoAOD-like TTree and RNTuple (written by ROOT) give the same Z -> mu mu answer,
    and the TTree job's output agrees with it; the small-basket file has small baskets."""
    import uproot

    ttree = ensure("root-nanoaod", N_EVENTS, 5, cache=tmp_path)
    rntuple = ensure("root-nanoaod-rntuple", N_EVENTS, 5, cache=tmp_path)
    with uproot.open(ttree) as file:
        assert file.classname_of("Events") == "TTree"
        assert len(file["Events"].keys()) >= 100
    with uproot.open(rntuple) as file:
        assert file.classname_of("Events") == "ROOT::RNTuple"
    from_tree, from_ntuple = answer("root-nanoaod", [str(ttree)]), answer(
        "root-nanoaod-rntuple", [str(rntuple)])  # fmt: skip
    assert from_tree.selected == from_ntuple.selected > 0
    for name in from_tree.columns:
        assert from_tree.column(name).tolist() == from_ntuple.column(name).tolist()
    report = _run("root-nanoaod", ttree, tmp_path / "out.root")
    assert check_output(from_tree, str(tmp_path / "out.root"), "Events",
                        report.events_selected) == []  # fmt: skip
    assert ensure("root-nanoaod", N_EVENTS, 5, cache=tmp_path) == ttree  # cached, not rewritten
    assert not list(tmp_path.rglob("*.tmp*"))  # no temp files left behind


def test_rdataframe_anchor_counts_match_the_answers(tmp_path: Path) -> None:
    from bench.rdf import run_rdf

    path = generate("uproot-bigbasket", tmp_path / "b.root", 50_000, seed=2)
    want = answer("uproot-bigbasket", [str(path)])
    run = run_rdf("uproot-bigbasket", [str(path), str(path)], threads=1)
    assert (run.events, run.selected) == (2 * want.events, 2 * want.selected)
    assert run.process_s > run.loop_s > 0


def test_a_failed_root_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "bad.root"
    with pytest.raises(RuntimeError, match="ROOT writer for ttree exited"):
        generate("root-nanoaod", target, -5, seed=1)  # RDataFrame refuses a negative count
    assert list(tmp_path.iterdir()) == []


def test_ensure_removes_the_leftovers_of_a_killed_writer(tmp_path: Path) -> None:
    cached = tmp_path / "layouts" / LAYOUTS["uproot-bigbasket"].file_name(1_000, 9)
    cached.parent.mkdir(parents=True)
    leftovers = [cached.parent / f".{cached.name}.abc.tmp.root",
                 cached.parent / f"..{cached.name}.abc.tmp.root.123.tmp"]  # fmt: skip
    for path in leftovers:
        path.write_bytes(b"half a file")
    assert ensure("uproot-bigbasket", 1_000, 9, cache=tmp_path) == cached
    assert sorted(p.name for p in cached.parent.iterdir()) == [".lock", cached.name]
