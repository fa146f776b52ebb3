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
def test_demo_streams_end_to_end_and_prints_the_report(capsys, traversable_dir):
    workdir = traversable_dir / "demo"
    code = main(["demo", "--events", "5000", "--files", "2", "--workdir", str(workdir), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["status"] == "ok"
    assert report["events_read"] == 10_000
    assert 0 < report["events_selected"] < report["events_read"]
    assert report["output"].startswith("root://127.0.0.1:")
    assert (workdir / "out" / "tau1n_selected.root").stat().st_size == report["output_bytes"]
    assert json.loads((workdir / "out" / "report.json").read_text())["status"] == "ok"
    assert "events/s" in captured.err
    assert report["conditions"]["global_tag"] == "demo-beam-v1"
    assert report["conditions"]["status"] == "LOCKED"
    assert report["conditions"]["payloads_loaded"] == 1  # 5000 events: all in run 10000
