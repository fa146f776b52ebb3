"""The first run, tried as a new user would from README alone: what got in the way, fixed
(issue 26, item 9). Each test failed on the code before its fix."""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest

from hepstream.cli import main
from hepstream.tools.generate import generate_sample
from tests.test_input_messages import BAD_KERNEL  # the same broken numba kernel

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PLUGIN = ROOT / "examples" / "tau1n.py"

#: A plugin with nothing to compile: a job over it starts in well under a second, so a
#: test's time bound measures the I/O path and not numba.
QUICK = """\
import numpy as np, hepstream

class Everything(hepstream.Selection):
    branches = ["thrust"]
    def select(self, events):
        return np.ones(len(events), dtype=bool)
"""
#: ``select`` returning plain Python lists: bools (accepted), ints (refused).
AS_LIST = """\
import hepstream

class AsList(hepstream.Selection):
    branches = ["thrust"]
    def select(self, events):
        return [{expr} for t in events.thrust.to_list()]
"""


def _errors(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("hepstream: error:")]


@pytest.fixture
def job_path(monkeypatch):
    """Job processes started by the local engine import this checkout."""
    paths = [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A user's analysis directory: a plugin and two small files under data/; the test runs
    in it."""
    home = tmp_path / "analysis"
    (home / "data").mkdir(parents=True)
    for i in range(2):
        generate_sample(home / "data" / f"tau1n_{i}.root", "tau1n-mc", 2_000, seed=40 + i)
    shutil.copy(PLUGIN, home / "sel.py")
    monkeypatch.chdir(home)
    return home


# -- 1. a dataset split in one directory, submitted from another ----------------------------
def test_a_dataset_split_with_relative_paths_runs_from_another_directory(
    project, tmp_path, monkeypatch, capsys, job_path
):
    (project / "files.txt").write_text("data/tau1n_1.root\n")
    argv = ["dataset", "split", "sel.py", "data/tau1n_0.root", "@files.txt"]
    assert main([*argv, "--dir", "ds", "--files-per-job", "1"]) == 0
    body = json.loads((project / "ds" / "dataset.json").read_text())
    for job in body["jobs"]:
        for path in job["spec"]["inputs"]:
            assert Path(path).is_absolute(), path
            assert Path(path).is_file(), path
    assert body["inputs"] == [str(project / "data/tau1n_0.root"), f"@{project / 'files.txt'}"]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    code = main(["dataset", "submit", "../analysis/ds", "--concurrency", "2"])
    assert code == 0, capsys.readouterr().err
    assert main(["collect", "../analysis/ds"]) == 0
    assert "counts add up" in capsys.readouterr().out


def test_a_missing_input_is_not_retried_and_its_line_shows_in_submit_and_collect(
    project, capsys, job_path
):
    argv = ["dataset", "split", "sel.py", "data/*.root", "--dir", "ds", "--files-per-job", "1"]
    assert main(argv) == 0
    gone = project / "data" / "tau1n_1.root"
    gone.unlink()
    capsys.readouterr()
    assert main(["dataset", "submit", "ds", "--concurrency", "2", "--retries", "2"]) == 1
    err = capsys.readouterr().err
    line = f"input file not found: {gone}; check the path"
    assert "retried" not in err, err  # a missing input cannot heal
    assert f"hepstream: job-00001 failed: {line}" in err, err
    log = (project / "ds" / "logs" / "job-00001.local.log").read_text()
    assert log.count("# attempt") == 1, log

    assert main(["collect", "ds"]) == 1
    out = capsys.readouterr().out
    assert f"job-00001: {line}" in out, out
    assert main(["collect", "ds", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == {"job-00001": line}


def test_retries_go_by_what_failed_on_every_engine():
    from hepstream.cloud.submit import VMRequest, jobs_submit_text
    from hepstream.dataset.engines.base import is_transient
    from hepstream.dataset.engines.slurm import TaskState, should_requeue
    from hepstream.errors import ServerUnavailable
    from hepstream.io.xrootd import StorageUnavailable
    from hepstream.jobspec import JobSpec

    assert StorageUnavailable.exit_code == ServerUnavailable.exit_code == 75
    for code in (2, 3, 4):  # config, input, plugin: the same every time
        assert not is_transient(code)
        assert not should_requeue(TaskState(0, "FAILED", code, 0, 0, "1"), retries=2)
    for code in (-9, 5, 70, 75, 143):  # killed, output, internal, server away, SIGTERM
        assert is_transient(code)
    assert should_requeue(TaskState(0, "FAILED", 75, 0, 0, "1"), retries=2)
    text = jobs_submit_text(
        [("job-00000", JobSpec("p.py", ("a.root",), "o.parquet"))], VMRequest("img"), "logs"
    )
    assert "retry_until = ExitCode == 2 || ExitCode == 3 || ExitCode == 4" in text


def test_a_dask_task_returns_an_input_error_instead_of_raising_it(project):
    from hepstream.dataset.engines.dask import run_task

    spec = {"plugin": "sel.py", "inputs": ["data/nope.root"], "output": "o.parquet"}
    report = run_task(spec)  # Dask retries a task that raises: a missing input never heals
    assert report["status"] == "failed"
    assert report["error"] == "input file not found: data/nope.root; check the path"


# -- 2. a refused connection ---------------------------------------------------------------
def _closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("name", ["tau1n_mc_000.root", "tau1n_*.root"])
def test_a_refused_connection_says_so_at_once(tmp_path, capsys, name):
    plugin = tmp_path / "quick.py"
    plugin.write_text(QUICK)
    port = _closed_port()
    url = f"root://127.0.0.1:{port}//data/{name}"
    began = time.monotonic()
    code = main(["run", str(plugin), url, "-o", str(tmp_path / "o.parquet"), "--no-progress"])
    took = time.monotonic() - began
    errors = _errors(capsys.readouterr().err)
    assert code == 75, errors
    assert errors == [
        f"hepstream: error: cannot connect to storage server root://127.0.0.1:{port}: "
        f"connection refused (nothing listens on port {port} of 127.0.0.1); check the URL's "
        f"host and port ('hepstream serve' prints the URL to use) and that the server runs"
    ]
    assert took < 5, f"{took:.1f} s"  # was 17.7 s: the connection window, then the retries


# -- 3. what select may return ---------------------------------------------------------------
def test_select_returns_what_readme_says(project, capsys):
    text = README.read_text()
    bullet = text[text.index("- `select(events)` is called") :].split("\n- ", 1)[0]
    assert "anything numpy turns into" in bullet, bullet  # lists are accepted, and it says so

    lists = project / "lists.py"
    lists.write_text(AS_LIST.format(expr="t > 0.9"))
    argv = ["run", str(lists), "data/tau1n_0.root", "--no-progress"]
    assert main([*argv, "-o", "bools.parquet"]) == 0
    lists.write_text(AS_LIST.format(expr="int(t > 0.9)"))
    capsys.readouterr()
    assert main([*argv, "-o", "ints.parquet"]) == 4
    errors = _errors(capsys.readouterr().err)
    assert len(errors) == 1, errors
    assert "lists.py" in errors[0]
    assert "select" in errors[0]
    assert not Path("ints.parquet").exists()


# -- 5. serve with a keytab that is not there yet ------------------------------------------
def test_serve_with_a_missing_keytab_says_how_to_make_one(tmp_path, capsys, monkeypatch):
    missing, user = tmp_path / "site.keytab", getpass.getuser()
    make = f"'xrdsssadmin -k {user}+ -u {user} -g hepstream add {missing}'"
    code = main(["serve", str(tmp_path), "--keytab", str(missing)])
    errors = _errors(capsys.readouterr().err)
    assert code == 2
    assert errors == [
        f"hepstream: error: sss keytab {missing} (--keytab) does not exist; make one with "
        f"{make} (one key per user let in, see docs/access.md), or leave --keytab out to "
        f"serve with your own key"
    ]
    monkeypatch.setenv("XrdSecsssKT", str(missing))
    code = main(["serve", str(tmp_path)])
    errors = _errors(capsys.readouterr().err)
    assert code == 2
    assert errors == [
        f"hepstream: error: sss keytab {missing} ($XrdSecsssKT) does not exist; point "
        f"$XrdSecsssKT at your keytab file, or make one with {make} (one key per user let "
        f"in, see docs/access.md)"
    ]


# -- 6. the long text of a failed run, where the user looks ---------------------------------
def test_a_failed_runs_log_lies_beside_its_output_and_is_named(project, capsys):
    (project / "bad.py").write_text(BAD_KERNEL)
    (project / "out").mkdir()
    code = main(["run", "bad.py", "data/tau1n_0.root", "-o", "out/o.root", "--no-progress"])
    errors = _errors(capsys.readouterr().err)
    assert code == 4
    log = project / "out" / "o.root.error.log"
    assert errors[0].endswith(f"; full text in {log}"), errors
    assert "TypingError" in log.read_text()
    assert [p.name for p in (project / "out").iterdir()] == [log.name]


def test_a_failed_runs_log_without_a_local_output_goes_to_the_working_directory(
    project, tmp_path, monkeypatch
):
    from hepstream.errors import PluginError
    from hepstream.report import keep_detail

    err = PluginError("numba could not compile kernel k")
    err.detail = "the compiler's words"
    assert keep_detail(err, None, "root://host//out/o.root", str(tmp_path)) == err.detail
    log = project / "o.root.error.log"
    assert str(err) == f"numba could not compile kernel k; full text in {log}"
    assert log.read_text() == "the compiler's words"

    err = PluginError("numba could not compile kernel k")
    err.detail = "the compiler's words"
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # a working directory it cannot write to (even as root): the scratch one
    keep_detail(err, None, "root://host//out/o.root", str(tmp_path))
    assert str(err).endswith(f"full text in {tmp_path / 'o.root.error.log'}")

    err = PluginError("numba could not compile kernel k")
    err.detail = "the compiler's words"
    keep_detail(err, "r.json", "o.root", str(tmp_path))  # with a report, it holds the text
    assert str(err).endswith("full text in the report's detail field (r.json)")
    assert not re.search(r"hepstream-\d+-error\.log", str(err))
