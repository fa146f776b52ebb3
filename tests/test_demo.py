import json
import shutil
import tempfile
from pathlib import Path

import pytest

from hepstream.cli import main


@pytest.fixture
def traversable_dir():
    """A temp dir the daemon's user can traverse (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-demo-test-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.xrootd
def test_demo_streams_end_to_end_and_prints_the_report(capfd, traversable_dir):
    workdir = traversable_dir / "demo"
    code = main(["demo", "--events", "5000", "--files", "2", "--workdir", str(workdir), "--json"])
    captured = capfd.readouterr()  # the file descriptors: what the demo's servers print too
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["status"] == "ok"
    assert report["events_read"] == 10_000
    assert 0 < report["events_selected"] < report["events_read"]
    assert report["output"].startswith("root://127.0.0.1:")
    user = report["output"].split("//out/")[1].split("/")[0]
    assert user == "hepstream-test"  # the session's key (tests/conftest.py) writes /out/<user>/
    assert (workdir / "out" / user / "tau1n_selected.root").stat().st_size == report["output_bytes"]
    assert json.loads((workdir / "out" / "report.json").read_text())["status"] == "ok"
    assert "events/s" in captured.err
    # a newcomer's first run: no error line from anything the demo started and stopped
    assert "error" not in captured.err.lower(), captured.err
    assert report["conditions"]["global_tag"] == "demo-beam-v1"
    assert report["conditions"]["status"] == "LOCKED"
    assert report["conditions"]["payloads_loaded"] == 1  # 5000 events: all in run 10000
    # the second job: histograms and a cut flow only, shown as text and drawn
    hists = json.loads((workdir / "out" / "report-hists.json").read_text())
    assert hists["status"] == "ok"
    assert hists["histograms"] == ["mass", "thrust", "lead_p"]
    assert hists["cutflow"][0] == ["events read", 10_000]
    assert "visible mass [GeV]" in captured.err
    assert "lepton-pair veto" in captured.err
    for name in ("mass", "cutflow"):
        assert (workdir / f"hepstream-demo-{name}.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.xrootd
@pytest.mark.slow
def test_demo_in_a_fresh_process_makes_its_own_key(traversable_dir):
    """``make demo`` on a machine with no sss key: the demo makes one and writes with it."""
    import os
    import stat
    import subprocess
    import sys

    from hepstream.io.auth import KEYTAB_ENV

    env = {k: v for k, v in os.environ.items() if k not in (KEYTAB_ENV, "XrdSecSSSKT")}
    env["HOME"] = str(traversable_dir)
    workdir = traversable_dir / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "hepstream", "demo", "--events", "3000", "--files", "1",
         "--workdir", str(workdir), "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr.lower(), proc.stderr
    report = json.loads(proc.stdout[: proc.stdout.rindex("}") + 1])
    assert report["status"] == "ok"
    assert "//out/demo/" in report["output"]
    assert (workdir / "out" / "demo" / "tau1n_selected.root").stat().st_size > 0
    assert stat.S_IMODE((workdir / "demo-sss.keytab").stat().st_mode) == 0o600
