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
