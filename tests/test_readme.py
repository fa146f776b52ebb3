"""The plugin shown in README.md runs as documented."""

import re
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hepstream.job.runner import JobSpec, run_job

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_plugin_runs_and_selects_what_it_says(sample_dir, out_dir, tmp_path):
    text = README.read_text()
    section = text[text.index("### The selection plugin API") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    plugin = tmp_path / "readme_plugin.py"
    plugin.write_text(code)
    data = sample_dir / "tau1n_mc_000.root"
    report = run_job(JobSpec(str(plugin), (str(data),), str(out_dir / "readme.root")))
    events = uproot.open(data)["events"].arrays(["ntrk", "thrust", "trk_p"])
    lead = ak.fill_none(ak.firsts(events.trk_p), np.inf)
    expected = (events.ntrk == 2) & (events.thrust > 0.85) & (lead < 4.0)
    assert report.status == "ok"
    assert report.events_selected == int(ak.sum(expected)) > 0
    written = uproot.open(out_dir / "readme.root")["events"]
    assert set(written.keys()) >= {"thrust", "trk_p"}


def test_readme_histogram_plugin_fills_what_it_says(sample_dir, out_dir, tmp_path):
    """The histograms-and-cut-flow example: its TH1/TH2 and cut flow against hist filled
    from an independent awkward reading of the same file."""
    import hist

    from hepstream.hists import read_results

    text = README.read_text()
    section = text[text.index("### Histograms and cut flows") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    plugin = tmp_path / "readme_hists.py"
    plugin.write_text(code)
    data = sample_dir / "tau1n_mc_000.root"
    output = out_dir / "readme_hists.root"
    report = run_job(JobSpec(str(plugin), (str(data),), str(output)))

    events = uproot.open(data)["events"].arrays()
    two = events.ntrk == 2
    flat = two & (events.thrust > 0.85)
    kept = flat & (ak.sum(events.trk_charge, axis=1) == 0)
    assert report.cutflow == [
        ["events read", len(events)],
        ["two tracks", int(ak.sum(two))],
        ["thrust > 0.85", int(ak.sum(flat))],
        ["opposite charge", int(ak.sum(kept))],
    ]
    assert report.events_selected == int(ak.sum(kept)) > 0
    thrust = hist.Hist.new.Reg(30, 0.7, 1).Int64().fill(events.thrust.to_numpy())
    sel = events[kept]
    p_mpt = hist.Hist.new.Reg(20, 0, 5).Var([0, 0.3, 1, 3]).Weight()
    p_mpt.fill(
        ak.max(sel.trk_p, axis=1).to_numpy(),
        sel.missing_pt.to_numpy(),
        weight=sel.thrust.to_numpy(),
    )
    written = uproot.open(output)
    assert np.array_equal(written["thrust"].values(flow=True), thrust.values(flow=True))
    assert np.allclose(written["p_mpt"].values(flow=True), p_mpt.values(flow=True), rtol=1e-12)
    assert np.allclose(
        written["p_mpt"].variances(flow=True), p_mpt.variances(flow=True), rtol=1e-12
    )
    results = read_results(output)
    assert results is not None
    assert list(results.histograms) == ["thrust", "p_mpt"]
