"""Output and report on real broken filesystems: full, read-only. One line, exit 5, nothing kept.

Each test mounts its own small tmpfs (CI runs as root); it is unmounted afterwards.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepstream.cli import main

PLUGIN = str(Path(__file__).resolve().parent.parent / "examples" / "tau1n.py")
KEEP_ALL = """\
import numpy as np, hepstream
class All(hepstream.Selection):
    branches = ["thrust", "missing_pt", "trk_p", "trk_charge"]
    def select(self, events):
        return np.ones(len(events), bool)
"""


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    where.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:  # not root: CI is, so this never hides a failure there
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs with only ~40 KiB left."""
    with _tmpfs(tmp_path / "full", "size=512k,mode=0755") as mnt:
        (mnt / "filler").write_bytes(b"\0" * (472 * 1024))
        yield mnt


@pytest.fixture
def read_only_fs(tmp_path: Path) -> Iterator[Path]:
    with _tmpfs(tmp_path / "ro", "size=1m,mode=0755,ro") as mnt:
        yield mnt


def _run(capsys, *args) -> tuple[int, list[str]]:
    code = main(["run", *map(str, args), "--no-progress"])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("hepstream: error:")]


def _keep_all(tmp_path: Path) -> Path:
    plugin = tmp_path / "all.py"
    plugin.write_text(KEEP_ALL)
    return plugin


def test_output_on_a_full_filesystem(capsys, tmp_path, full_fs, sample_dir, out_dir):
    target = full_fs / "o.root"
    code, errors = _run(capsys, _keep_all(tmp_path), sample_dir / "tau1n_mc_000.root",
                        "-o", target, "--report", out_dir / "r.json")  # fmt: skip
    assert code == 5
    assert len(errors) == 1, errors
    assert str(target) in errors[0]
    assert "No space left on device" in errors[0]
    assert [p.name for p in full_fs.iterdir()] == ["filler"]  # no output, no temp file
    report = json.loads((out_dir / "r.json").read_text())
    assert report["status"] == "failed"
    assert "No space left on device" in report["error"]


def test_report_on_a_full_filesystem(capsys, tmp_path, full_fs, sample_dir, out_dir):
    (full_fs / "more").write_bytes(b"\0" * (40 * 1024))  # now not a byte left
    target = full_fs / "r.json"
    code, errors = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root",
                        "-o", out_dir / "o.root", "--report", target)  # fmt: skip
    assert code == 5
    assert len(errors) == 1, errors
    assert str(target) in errors[0]
    assert "No space left on device" in errors[0]
    assert sorted(p.name for p in full_fs.iterdir()) == ["filler", "more"]


def test_output_on_a_read_only_filesystem(capsys, sample_dir, read_only_fs, out_dir):
    target = read_only_fs / "o.root"
    code, errors = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root", "-o", target,
                        "--report", out_dir / "r.json")  # fmt: skip
    assert code == 5
    assert len(errors) == 1, errors
    assert str(read_only_fs) in errors[0]
    assert "Read-only file system" in errors[0]
    assert list(read_only_fs.iterdir()) == []
    assert json.loads((out_dir / "r.json").read_text())["status"] == "failed"


def test_report_on_a_read_only_filesystem(capsys, sample_dir, read_only_fs, out_dir):
    target = read_only_fs / "r.json"
    code, errors = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root",
                        "-o", out_dir / "o.root", "--report", target)  # fmt: skip
    assert code == 5
    assert errors == [
        f"hepstream: error: cannot write report {target}: Read-only file system; "
        f"free space or choose another path"
    ]
    assert list(read_only_fs.iterdir()) == []


@pytest.mark.xrootd
def test_remote_output_with_a_full_scratch(
    capsys, tmp_path, full_fs, sample_dir, xrootd_server, monkeypatch
):
    monkeypatch.setenv("HEPSTREAM_SCRATCH", str(full_fs))  # where -o root:// is staged
    code, errors = _run(capsys, _keep_all(tmp_path), sample_dir / "tau1n_mc_000.root",
                        "-o", xrootd_server.out_url("full/o.root"))  # fmt: skip
    assert code == 5
    assert len(errors) == 1, errors
    assert str(full_fs / "o.root") in errors[0]
    assert "No space left on device" in errors[0]
    assert [p.name for p in full_fs.iterdir()] == ["filler"]
    assert not xrootd_server.out_path("full").exists()
