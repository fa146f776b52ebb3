"""Truncated, empty and not-ROOT inputs, and a numba kernel that does not compile: one clear line."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepstream.cli import main
from hepstream.root.header import expected_size, header_problem

PLUGIN = str(Path(__file__).resolve().parent.parent / "examples" / "tau1n.py")
BAD_KERNEL = """\
import numba, numpy as np, hepstream
from hepstream import flat

@numba.njit
def bad_kernel(thrust):
    keep = np.zeros(len(thrust), dtype=np.bool_)
    for i in range(len(thrust)):
        keep[i] = thrust[i] + "not a number"
    return keep

class Broken(hepstream.Selection):
    branches = ["thrust"]
    def select(self, events):
        return bad_kernel(flat(events, "thrust"))
"""


def _errors(capsys, *args) -> tuple[int, list[str]]:
    code = main(["run", *map(str, args), "--no-progress"])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.startswith("hepstream: error:")]


def _damaged(sample_dir: Path, where: Path) -> dict[str, Path]:
    """The three broken inputs: first 60 % of a good file, an empty file, a text file."""
    blob = (sample_dir / "tau1n_mc_000.root").read_bytes()
    files = {"truncated": where / "cut.root", "empty": where / "empty.root"}
    files["junk"] = where / "junk.root"
    files["truncated"].write_bytes(blob[: len(blob) * 6 // 10])
    files["empty"].write_bytes(b"")
    files["junk"].write_bytes(b"<html>not found</html>\n" * 40)
    for path in files.values():
        path.chmod(0o644)
    return files


@pytest.fixture(scope="module")
def damaged_dir(sample_dir) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="hepstream-damaged-"))
    base.chmod(0o755)
    _damaged(sample_dir, base)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _expect(kind: str, line: str, sample_dir: Path) -> None:
    if kind == "truncated":
        size = (sample_dir / "tau1n_mc_000.root").stat().st_size
        assert "is truncated" in line
        assert f"{size * 6 // 10:,} bytes of the {size:,}" in line
    elif kind == "empty":
        assert "is empty (0 bytes)" in line
    else:
        assert "is not a ROOT file" in line


@pytest.mark.parametrize("kind", ["truncated", "empty", "junk"])
def test_damaged_local_input(capsys, damaged_dir, sample_dir, out_dir, kind):
    path = damaged_dir / {"truncated": "cut", "empty": "empty", "junk": "junk"}[kind]
    path = path.with_suffix(".root")
    code, errors = _errors(capsys, PLUGIN, path, "-o", out_dir / "o.root",
                           "--report", out_dir / "r.json")  # fmt: skip
    assert code == 3
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"hepstream: error: {path} ")
    _expect(kind, errors[0], sample_dir)
    assert [p.name for p in out_dir.iterdir()] == ["r.json"]
    assert json.loads((out_dir / "r.json").read_text())["error"] == errors[0].split(": ", 2)[2]


@pytest.mark.xrootd
@pytest.mark.parametrize("kind", ["truncated", "empty", "junk"])
def test_damaged_remote_input(capsys, damaged_dir, sample_dir, out_dir, kind):
    from hepstream.tools.serve import XRootDServer

    name = {"truncated": "cut", "empty": "empty", "junk": "junk"}[kind] + ".root"
    with XRootDServer(damaged_dir) as server:
        url = server.data_url(name)
        code, errors = _errors(capsys, PLUGIN, url, "-o", out_dir / "o.root")
    assert code == 3
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"hepstream: error: {url} ")
    _expect(kind, errors[0], sample_dir)
    assert list(out_dir.iterdir()) == []


def test_header_check_is_pure():
    head = (
        b"root" + (62400).to_bytes(4, "big") + (100).to_bytes(4, "big") + (5000).to_bytes(4, "big")
    )
    assert expected_size(head + bytes(4)) == 5000
    assert header_problem(head + bytes(4), 5000) is None
    assert "3,000 bytes of the 5,000" in header_problem(head + bytes(4), 3000)
    big = b"root" + (1_062_400).to_bytes(4, "big") + (100).to_bytes(4, "big")
    assert expected_size(big + (2**33).to_bytes(8, "big")) == 2**33
    assert "empty" in header_problem(b"", 0)
    assert "not a ROOT file" in header_problem(b"PK\x03\x04", 1000)
    assert "too short for a ROOT header" in header_problem(b"root\0\0", 6)


def test_numba_compile_error_is_one_line_with_the_text_in_the_report(
    capsys, tmp_path, sample_dir, out_dir
):
    plugin = tmp_path / "bad_numba.py"
    plugin.write_text(BAD_KERNEL)
    report = out_dir / "r.json"
    code, errors = _errors(capsys, plugin, sample_dir / "tau11_mc_000.root",
                           "-o", out_dir / "o.root", "--report", report)  # fmt: skip
    assert code == 4
    assert len(errors) == 1, errors
    line = errors[0]
    assert "bad_numba.py" in line
    assert "numba could not compile kernel bad_kernel" in line
    assert f"full text in the report's detail field ({report})" in line
    data = json.loads(report.read_text())
    assert data["status"] == "failed"
    assert "TypingError" in data["detail"]
    assert len(data["detail"].splitlines()) > 10
    assert "\n" not in data["error"]


def test_numba_compile_error_without_report_names_a_log_file(
    capsys, tmp_path, sample_dir, out_dir, monkeypatch
):
    monkeypatch.setenv("HEPSTREAM_SCRATCH", str(tmp_path))  # not where the user looks
    plugin = tmp_path / "bad_numba.py"
    plugin.write_text(BAD_KERNEL)
    code, errors = _errors(capsys, plugin, sample_dir / "tau11_mc_000.root",
                           "-o", out_dir / "o.root")  # fmt: skip
    assert code == 4
    assert len(errors) == 1, errors
    log = Path(errors[0].rsplit("full text in ", 1)[1])
    assert log == out_dir / "o.root.error.log"  # beside the output
    assert "TypingError" in log.read_text()
    assert list(out_dir.iterdir()) == [log]  # no output, no temp file: the log alone
