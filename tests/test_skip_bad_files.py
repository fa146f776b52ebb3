"""``--skip-bad-files``: missing, truncated and corrupt inputs among good ones, local and
over a real xrootd; and without the flag, a missing input fails before any event is read."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import uproot

from hepstream.cli import main
from hepstream.errors import JobIncomplete
from hepstream.tools.serve import XRootDServer

PLUGIN = """\
import numpy as np, hepstream
class Thrust(hepstream.Selection):
    branches = ["thrust", "event"]
    def select(self, events):
        return np.asarray(events.thrust) > 0.8
    def output(self, events):
        return {"thrust": events.thrust, "event": events.event}
"""
GOOD = ("tau1n_mc_000.root", "tau1n_data_000.root")
#: The job's inputs, in order: good, missing, corrupt (breaks mid-way), good, truncated.
ORDER = ("tau1n_mc_000.root", "missing.root", "corrupt.root", "tau1n_data_000.root", "cut.root")
EVENTS = 20_000  # per good sample (tests/conftest.py)


@pytest.fixture(scope="module")
def inputs_dir(sample_dir) -> Iterator[Path]:
    """The good samples (hard links) beside a truncated and a corrupt copy of one."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-skip-"))
    base.chmod(0o755)
    try:
        for name in GOOD:
            try:
                os.link(sample_dir / name, base / name)
            except OSError:
                shutil.copy(sample_dir / name, base / name)
        blob = bytearray((sample_dir / GOOD[0]).read_bytes())
        (base / "cut.root").write_bytes(blob[: len(blob) * 6 // 10])
        # baskets of the later clusters overwritten: header, first cluster and the
        # metadata at the end stay good, so the file opens and breaks mid-way
        lo, hi = len(blob) // 2, len(blob) * 3 // 4
        blob[lo:hi] = np.random.default_rng(7).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
        (base / "corrupt.root").write_bytes(bytes(blob))
        for path in base.iterdir():
            path.chmod(0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def server(inputs_dir) -> Iterator[XRootDServer]:
    with XRootDServer(inputs_dir) as served:
        yield served


def _run(tmp_path: Path, capsys, inputs: list[str], name: str, *flags: str):
    plugin = tmp_path / "thrust.py"
    plugin.write_text(PLUGIN)
    out, report = tmp_path / f"{name}.root", tmp_path / f"{name}.json"
    argv = ["run", str(plugin), *inputs, "-o", str(out), "--report", str(report),
            "--chunk", "64k", "--no-progress", *flags]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    data = json.loads(report.read_text())
    return code, err, data, out


def _columns(path: Path) -> dict[str, np.ndarray]:
    with uproot.open(path) as file:
        return {k: np.asarray(v) for k, v in file["events"].arrays(library="np").items()}


def _where(kind: str, inputs_dir: Path, server: XRootDServer):
    if kind == "local":
        return lambda name: str(inputs_dir / name)
    return server.data_url


#: One process, and two worker processes (inputs dealt out in turn: each sees bad ones).
WORKERS = ["1", "2"]


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("kind", ["local", pytest.param("remote", marks=pytest.mark.xrootd)])
def test_bad_files_are_skipped_and_listed(tmp_path, capsys, inputs_dir, kind, request, workers):
    where = _where(
        kind, inputs_dir, request.getfixturevalue("server") if kind == "remote" else None
    )
    code, err, clean, clean_out = _run(tmp_path, capsys, [where(n) for n in GOOD], "clean")
    assert code == 0, err
    code, err, data, out = _run(
        tmp_path, capsys, [where(n) for n in ORDER], "skip", "--skip-bad-files",
        "--workers", workers,
    )  # fmt: skip
    assert code == JobIncomplete.exit_code == 6, err
    assert not [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    warnings = [line for line in err.splitlines() if line.startswith("hepstream: warning:")]
    assert len(warnings) == 1
    assert "3 of 5 inputs skipped" in warnings[0]
    assert data["status"] == "partial"
    files = data["files"]
    assert [f["status"] for f in files] == ["ok", "skipped", "skipped", "ok", "skipped"]
    assert "not found" in files[1]["error"]
    assert "cannot read entries" in files[2]["error"]
    assert "is truncated" in files[4]["error"]
    assert files[2]["events_read"] > 0  # it broke mid-way, after chunks that were dropped
    # the output holds exactly the good files' events, and the totals count only them
    assert data["events_read"] == clean["events_read"] == 2 * EVENTS
    assert data["events_selected"] == clean["events_selected"]
    want, got = _columns(clean_out), _columns(out)
    assert len(got["event"]) == clean["events_selected"] > 0
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".root") == [
        "clean.root", "skip.root",
    ]  # fmt: skip


@pytest.mark.parametrize("workers", WORKERS)
@pytest.mark.parametrize("kind", ["local", pytest.param("remote", marks=pytest.mark.xrootd)])
def test_without_the_flag_a_missing_input_fails_before_any_event_is_read(
    tmp_path, capsys, inputs_dir, kind, request, workers
):
    where = _where(
        kind, inputs_dir, request.getfixturevalue("server") if kind == "remote" else None
    )
    # the missing one last: with 2 workers, the first worker's second input
    inputs = [where(GOOD[0]), where(GOOD[1]), where("missing.root")]
    code, err, data, out = _run(tmp_path, capsys, inputs, "o", "--workers", workers)
    assert code == 3, err
    errors = [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    assert errors == [f"hepstream: error: input file not found: {inputs[2]}; check the path"]
    assert data["status"] == "failed"
    assert data["events_read"] == 0
    assert data["bytes_read"] == 0
    assert data["files"][2]["status"] == "failed"
    assert not out.exists()


def test_without_the_flag_a_corrupt_basket_header_is_one_line(tmp_path, capsys, inputs_dir):
    """uproot's DeserializationError (a basket header of garbage) was a traceback."""
    path = inputs_dir / "corrupt.root"
    code, err, data, out = _run(tmp_path, capsys, [str(path)], "c")
    assert code == 3, err
    errors = [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"hepstream: error: {path}: cannot read entries ")
    assert errors[0].endswith("the file may be corrupt, copy it again")
    assert "Traceback" not in err
    assert data["status"] == "failed"
    assert not out.exists()
