"""Every bad input: one clear error line, a non-zero exit, nothing at the final path."""

import json
from pathlib import Path

import pytest

from hepstream.cli import main

PLUGIN = str(Path(__file__).resolve().parent.parent / "examples" / "tau1n.py")


def _run(capsys, *args):
    code = main(["run", *map(str, args), "--no-progress"])
    err = capsys.readouterr().err
    return code, err


def _assert_failed_cleanly(code, err, out_dir, needle, report=None):
    assert code != 0
    errors = [line for line in err.splitlines() if line.startswith("hepstream: error:")]
    assert len(errors) == 1, err
    assert needle in errors[0]
    leftovers = [p.name for p in out_dir.iterdir() if p.suffix != ".json"]
    assert leftovers == []
    if report is not None:
        data = json.loads(report.read_text())
        assert data["status"] == "failed"
        assert needle in data["error"]


def test_help_has_an_example(capsys):
    assert main(["run", "--help"]) == 0
    assert "Example" in capsys.readouterr().out


def test_missing_input(capsys, out_dir):
    code, err = _run(capsys, PLUGIN, out_dir / "nope.root", "-o", out_dir / "o.root",
                     "--report", out_dir / "r.json")  # fmt: skip
    _assert_failed_cleanly(code, err, out_dir, "not found", out_dir / "r.json")


def test_unreachable_server(capsys, out_dir):
    code, err = _run(capsys, PLUGIN, "root://127.0.0.1:1//data/x.root", "-o", out_dir / "o.root",
                     "--report", out_dir / "r.json")  # fmt: skip
    _assert_failed_cleanly(code, err, out_dir, "127.0.0.1:1", out_dir / "r.json")


def test_not_a_root_file(capsys, out_dir, tmp_path):
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"this is not ROOT" * 100)
    code, err = _run(capsys, PLUGIN, junk, "-o", out_dir / "o.root", "--report", out_dir / "r.json")
    _assert_failed_cleanly(code, err, out_dir, "not a ROOT file", out_dir / "r.json")


def test_corrupt_basket(capsys, out_dir, tmp_path, sample_dir):
    import uproot

    original = sample_dir / "tau1n_mc_000.root"  # zlib: its adler32 catches damage
    broken = tmp_path / "broken.root"
    blob = bytearray(original.read_bytes())
    branch = uproot.open(original)["events"]["trk_p"]
    seek = int(branch.member("fBasketSeek")[0])
    size = int(branch.member("fBasketBytes")[0])
    blob[seek + size // 2 : seek + size // 2 + 64] = bytes(64)  # inside the compressed payload
    broken.write_bytes(bytes(blob))
    code, err = _run(
        capsys, PLUGIN, broken, "-o", out_dir / "o.root", "--report", out_dir / "r.json"
    )
    _assert_failed_cleanly(code, err, out_dir, "broken.root", out_dir / "r.json")


def test_missing_tree_and_branch(capsys, out_dir, tmp_path, sample_dir):
    data = sample_dir / "tau11_mc_000.root"
    for text, needle in [
        ("tree = 'nosuchtree'\n    branches = ['thrust']", "no TTree 'nosuchtree'"),
        ("branches = ['thrust', 'no_such_branch']", "no_such_branch"),
    ]:
        plugin = tmp_path / "p.py"
        plugin.write_text(
            "import numpy as np, hepstream\n"
            "class P(hepstream.Selection):\n"
            f"    {text}\n"
            "    def select(self, events):\n"
            "        return np.ones(len(events), bool)\n"
        )
        code, err = _run(capsys, plugin, data, "-o", out_dir / "o.root")
        _assert_failed_cleanly(code, err, out_dir, needle)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("import nosuchmodule", "failed to import"),
        ("class P(hepstream.Selection):\n    branches = ['thrust']\n    def select(self, e):\n"
         "        return np.ones(len(e), dtype=np.int64)", "int64"),
        ("class P(hepstream.Selection):\n    branches = ['thrust']\n    def select(self, e):\n"
         "        return np.ones(3, dtype=bool)", "shape"),
        ("class P(hepstream.Selection):\n    branches = ['thrust']\n    def select(self, e):\n"
         "        raise ZeroDivisionError('boom')", "ZeroDivisionError: boom"),
        ("x = 1", "exactly one hepstream.Selection"),
    ],
)  # fmt: skip
def test_broken_plugin(capsys, out_dir, tmp_path, sample_dir, body, needle):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text("import numpy as np\nimport hepstream\n" + body + "\n")
    code, err = _run(capsys, plugin, sample_dir / "tau11_mc_000.root", "-o", out_dir / "o.root",
                     "--report", out_dir / "r.json")  # fmt: skip
    _assert_failed_cleanly(code, err, out_dir, needle, out_dir / "r.json")
    assert "broken_plugin.py" in err


def test_exception_in_plugin_names_the_chunk(capsys, out_dir, tmp_path, sample_dir):
    plugin = tmp_path / "late.py"
    plugin.write_text(
        "import numpy as np, hepstream\n"
        "class Late(hepstream.Selection):\n"
        "    branches = ['thrust']\n"
        "    def select(self, events):\n"
        "        raise ValueError('bad chunk')\n"
    )
    code, err = _run(capsys, plugin, sample_dir / "tau11_mc_000.root", "-o", out_dir / "o.root")
    _assert_failed_cleanly(code, err, out_dir, "entries 0-")


def test_unwritable_output(capsys, tmp_path, sample_dir):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    code, err = _run(
        capsys, PLUGIN, sample_dir / "tau11_mc_000.root", "-o", locked / "file" / "o.root"
    )
    assert code != 0
    assert "hepstream: error: cannot write output" in err
    assert not (locked / "file" / "o.root").exists()


def test_bad_option_value(capsys, out_dir, sample_dir):
    code, err = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root", "-o", out_dir / "o.root",
                     "--readahead", "lots")  # fmt: skip
    _assert_failed_cleanly(code, err, out_dir, "cannot read size 'lots'")


def test_tiny_chunk_is_refused(capsys, out_dir, sample_dir):
    code, err = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root", "-o", out_dir / "o.root",
                     "--chunk", "1")  # fmt: skip
    assert code == 2
    _assert_failed_cleanly(code, err, out_dir, "chunk size 1 B is too small: use at least 16k")


@pytest.mark.parametrize(("value", "needle"), [
    ("gzip", "compression 'gzip': use one of zlib, lz4, zstd, none"),
    ("zstd:99", "zstd levels are 0 to 22"),
    ("zlib:x", "the level after ':' must be a number"),
])  # fmt: skip
def test_bad_compression(capsys, out_dir, sample_dir, value, needle):
    code, err = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root", "-o", out_dir / "o.root",
                     "--set", f"compression={value}")  # fmt: skip
    assert code == 2
    _assert_failed_cleanly(code, err, out_dir, needle)


def test_unknown_output_format(capsys, out_dir, sample_dir):
    code, err = _run(capsys, PLUGIN, sample_dir / "tau11_mc_000.root", "-o", out_dir / "o.csv")
    _assert_failed_cleanly(code, err, out_dir, "use .root or .parquet")


def test_successful_run_prints_summary_and_json(capsys, out_dir, sample_dir):
    code = main(["run", PLUGIN, str(sample_dir / "tau11_mc_000.root"), "-o", str(out_dir / "o.root"),
                 "--json", "--no-progress", "--site", "here"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert report["status"] == "ok"
    assert report["site"] == "here"
    assert "events/s" in captured.err
    assert (out_dir / "o.root").exists()


def test_an_unknown_option_is_a_usage_line_and_exit_2(capsys):
    assert main(["run", "--nosuch", "x"]) == 2
    err = capsys.readouterr().err
    assert "No such option: --nosuch" in err
    assert "Traceback" not in err
