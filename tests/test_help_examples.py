"""Every command's ``--help``: clean text, and every example in it runs as shown here.

A new user copies the examples of ``--help`` (issue 26, item 9): each one runs below, in a
fresh directory, in the order a user would (samples, then the server, conditions, jobs,
datasets, plots). An example that cannot run on this machine is listed in
:data:`NOT_HERE` with the reason; none is passed over silently, and an entry that no
``--help`` shows any more fails the test. What the examples take from the user is made
first, as a user would make it: their plugin (README's), a payload file. The well-known
ports of the examples (1094, 1095, 8080) become free ones, so that two runs of the test do
not collide.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from hepstream.cli import app, main

pytestmark = [pytest.mark.xrootd, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: Examples that cannot run on this machine, and why.
NOT_HERE = {
    "hepstream demo --events 200000 --files 2": (
        "makes its own samples, servers and conditions (~30 s alone); tests/test_demo.py runs it"
    ),
    "condor_submit tau1n.sub": "needs an HTCondor pool (schedd)",
    "hepstream bench storage root://xrootd.example.org//data/tau1n_mc_000.root --max-jobs 512 "
    "--readahead-sweep 0,1M --duration 10 --xrdcp --plot storage.png": (
        "loads a production storage endpoint (example.org) for minutes"
    ),
    "hepstream bench storage root://central.example.org//data/tau1n_mc_000.root "
    "--site-cache root://xcache.example.org:1094 --cache-dir /var/cache/hepstream": (
        "a production origin and site cache (example.org)"
    ),
    "hepstream bench run --quick": "the benchmark suites take minutes (make bench)",
    "hepstream bench run -k layouts --results-dir /tmp/bench": "the layout matrix takes minutes",
    "python -m bench": "the full benchmark suites, an hour",
    "sudo hepstream image build --source . -o hepstream.qcow2": (
        "debootstrap and a VM image as root, minutes (tests/vmimage)"
    ),
    "hepstream image build --json": "builds a VM image, minutes (tests/vmimage)",
    "hepstream image derive hepstream.qcow2 --plugin myselection.py -o user.qcow2": (
        "needs the base image 'image build' makes"
    ),
    "hepstream image derive hepstream.qcow2 -p calib.py --conditions beam-v1 -o user.qcow2": (
        "needs the base image 'image build' makes"
    ),
    "hepstream image boot hepstream.qcow2 --job job.json --forward 1094:1094": (
        "boots a VM under qemu (~45 s) from a built image"
    ),
    "hepstream image bench --events 20000 --json": "builds and boots a VM image, minutes",
    "hepstream image push user.qcow2 root://127.0.0.1:1094//out/images --name tau1n "
    "--version 1": "needs the user image 'image derive' makes",
    "hepstream image pull root://127.0.0.1:1094//data/images tau1n:1 --dest /var/lib/images "
    "--cache root://127.0.0.1:1095": "needs an image 'image push' put in a repository",
    "hepstream image list ./repo": "needs a repository 'image push' made",
    "hepstream cloud plan -c hepstream-cloud.toml": "needs a cloud config and cloud APIs",
    "hepstream cloud run -c hepstream-cloud.toml --interval 30": (
        "boots VMs on clouds until stopped"
    ),
    "hepstream cloud status -c hepstream-cloud.toml --json": "needs a cloud config",
    "hepstream cloud simulate --config examples/cloud-sim-20.toml --json": (
        "a 20-cloud simulation, ~40 s: over this test's budget (the preset one runs)"
    ),
    "hepstream cloud queue add --image hepstream-test --plugin sel.py --input "
    "root://127.0.0.1//data/a.root --output out.parquet": "needs a cloud config (docs/cloud.md)",
    "hepstream cloud queue list --status idle --json": "needs a cloud config (docs/cloud.md)",
    "hepstream dataset submit ds/tau1n --engine slurm --max-running 50": (
        "needs a Slurm cluster (tests/dataset/test_slurm.py starts one)"
    ),
    "hepstream dataset submit ds/tau1n --engine dask --address tcp://127.0.0.1:8786": (
        "needs a Dask scheduler (tests/dataset/test_dask.py starts one)"
    ),
}

#: Commands whose examples run first, in this order: each uses what the ones before it
#: made (samples, the server, a dataset). The others follow in the order of the CLI.
FIRST = [
    "generate", "serve", "conditions create", "conditions add", "conditions show",
    "conditions diff", "conditions lock", "conditions snapshot", "conditions serve", "run",
    "dataset split", "dataset submit", "dataset status", "collect", "dataset collect",
]  # fmt: skip
#: What a user would have done before an example, beyond the examples before it.
BEFORE = {
    "conditions diff": ["hepstream conditions create beam-2026-v2 --db conditions"],
}
#: Commands that serve until stopped: started in the background, stopped at the end.
SERVERS = {"serve", "conditions serve", "cache serve"}
#: The examples' well-known ports, each replaced by a free one.
PORTS = (1094, 1095, 8080)
#: A help line that ends in a space before its full stop or comma (rich ate a markup-like
#: "[default: ...]" there), inside a panel or at the end of a line.
STRAY = re.compile(r"\w [.,;:](?=\s*(│|$))", re.MULTILINE)


def _commands() -> Iterator[tuple[str, object]]:
    """Every command and group of the CLI, as ``(path, command)``, ``""`` for the top."""

    def walk(command: object, path: list[str]) -> Iterator[tuple[str, object]]:
        yield " ".join(path), command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def _examples(help_text: str | None) -> list[str]:
    """The example lines of a command's help, continuation lines joined, comments and the
    ``\\b`` marks dropped."""
    lines = (help_text or "").splitlines()
    out: list[str] = []
    for at, line in enumerate(lines):
        if re.fullmatch(r"\s*Examples?:\s*", line):
            joined = ""
            for raw in lines[at + 1 :]:
                if not raw.strip():
                    break
                joined += " " + raw.strip()
                if joined.endswith("\\"):
                    joined = joined[:-1]
                    continue
                words = shlex.split(joined, comments=True)
                background = words[-1:] == ["&"]
                if background:
                    words = words[:-1]
                if words:  # one canonical spelling: quotes where a shell needs them
                    out.append(shlex.join(words) + (" &" if background else ""))
                joined = ""
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_every_help_is_clean_text():
    runner = CliRunner()
    problems = []
    for path, _ in _commands():
        done = runner.invoke(
            app, [*path.split(), "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"}
        )
        assert done.exit_code == 0, (path, done.output)
        text = done.output
        problems += [f"{path or 'hepstream'}: {m.group(0)!r}" for m in STRAY.finditer(text)]
        if "``" in text:
            problems.append(f"{path or 'hepstream'}: literal ``RST`` markup")
    assert problems == []


@pytest.fixture
def workdir(monkeypatch) -> Iterator[Path]:
    """A fresh, world-traversable directory (the xrootd daemon's user reads what the
    examples serve), holding what a user brings: their plugin (README's) and a payload."""
    base = Path(tempfile.mkdtemp(prefix="hepstream-help-"))
    base.chmod(0o755)
    text = README.read_text()
    section = text[text.index("### The selection plugin API") :]
    plugin = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert plugin is not None
    (base / "myselection.py").write_text(plugin.group(1))
    np.savez(base / "beam_10002.npz", energy=np.array([5.29]))
    (base / "examples").symlink_to(ROOT / "examples")  # a source checkout's examples/
    paths = [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
    monkeypatch.chdir(base)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_every_help_example_runs_as_shown(workdir, capsys, monkeypatch):
    shown: dict[str, list[str]] = {}
    for path, command in _commands():
        found = _examples(getattr(command, "help", None))
        if found:
            shown[path] = found
    every = {line for lines in shown.values() for line in lines}
    assert sorted(set(NOT_HERE) - every) == [], "NOT_HERE names examples no --help shows"
    owners = [p for p in FIRST if p in shown] + [p for p in shown if p not in FIRST]
    ports = {port: _free_port() for port in PORTS}
    ports_re = re.compile(r"(?<=[:\s=])(" + "|".join(map(str, ports)) + r")\b")
    servers: list[tuple[str, subprocess.Popen]] = []
    ran: dict[str, float] = {}
    began = time.monotonic()

    def give_up(*_):
        raise TimeoutError(f"examples still running after 240 s; done: {list(ran)}")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(240)  # bounded: a hung example fails the test, it does not hold it
    try:
        for owner in owners:
            for line in [*BEFORE.get(owner, []), *shown[owner]]:
                if line in NOT_HERE or line.rstrip(" &") in ran:
                    continue  # listed above with its reason / the same command already ran
                command = ports_re.sub(lambda m: str(ports[int(m.group(1))]), line)
                at = time.monotonic()
                if command.startswith("export "):
                    name, _, value = command.removeprefix("export ").partition("=")
                    monkeypatch.setenv(name, os.path.expanduser(value))
                elif not command.startswith("hepstream "):
                    pytest.fail(f"{owner} --help: {line!r} is not a hepstream command; run it "
                                f"or list it in NOT_HERE with the reason")  # fmt: skip
                elif line.endswith("&") or any(
                    command.startswith(f"hepstream {s} ") for s in SERVERS
                ):
                    servers.append((line, _start_server(command.rstrip(" &"), workdir)))
                else:
                    capsys.readouterr()
                    code = main(shlex.split(command)[1:])
                    said = capsys.readouterr()
                    assert code == 0, f"{owner} --help: {command}\n{said.err[-3000:]}"
                ran[line.rstrip(" &")] = round(time.monotonic() - at, 2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for _, proc in servers:
            proc.send_signal(signal.SIGINT)
        for _, proc in servers:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    took = time.monotonic() - began
    print(f"{len(ran)} examples in {took:.1f} s: {ran}")
    assert (workdir / "ds" / "tau1n" / "manifest.json").is_file()  # the dataset went through
    assert (workdir / "snapshots" / "beam-2026-v1").is_dir()


def _start_server(command: str, workdir: Path) -> subprocess.Popen:
    """``hepstream ... serve ...`` in the background, once its ``--port`` accepts."""
    argv = shlex.split(command)
    if "--port" not in argv:
        pytest.fail(f"{command}: a server's example needs --port, or the examples after it "
                    f"cannot name its URL")  # fmt: skip
    port = int(argv[argv.index("--port") + 1])
    log = workdir / f"server-{port}.log"
    with log.open("w") as out:  # the child holds its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "hepstream", *argv[1:]],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    deadline = time.monotonic() + 60
    while not _listening(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"{command}: not serving on {port}:\n{log.read_text()}")
        time.sleep(0.2)
    return proc
