"""Helpers of the dataset tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import awkward as ak
import typer

from hepstream.cli.analyst import run, spec_from_options

ROOT = Path(__file__).resolve().parents[2]
#: The dataset tests' plugin books histograms and names its cuts: every engine's test also
#: checks that collect merges them bit for bit as one job over all inputs.
PLUGIN = ROOT / "examples" / "tau1n_hists.py"


def child_env() -> dict[str, str]:
    """Environment for job processes and daemons: this checkout first on the path."""
    paths = [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def same_events(a: Path, b: Path) -> bool:
    left, right = ak.from_parquet(a), ak.from_parquet(b)
    return len(left) == len(right) and ak.to_list(left) == ak.to_list(right)


def histogram_state(path: Path) -> str:
    """The exact histogram state (hists/store.py) in a ROOT file: equal text, equal bits."""
    import uproot

    with uproot.open(path) as file:
        return str(file["hepstream_histograms"])


def same_histograms(dataset: Path, reference: Path) -> bool:
    """collect's merged histograms and cut flow of ``dataset`` are, bit for bit, those of
    the one job ``reference`` (a Parquet output: its ``.hist.root`` sidecar)."""
    merged = histogram_state(dataset / "histograms.root")
    one_job = histogram_state(reference.with_suffix(".hist.root"))
    return merged == one_job and '"histograms": []' not in merged


def job_pids(marker: str) -> list[int]:
    """Pids of ``hepstream run`` processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [a.decode(errors="replace") for a in argv]
        if "hepstream" in words and "run" in words and any(marker in w for w in words):
            pids.append(int(entry.name))
    return pids


def kill_when_running(marker: str, timeout: float = 120.0, settle: float = 0.3) -> int:
    """SIGKILL the job process matching ``marker`` once it has run ``settle`` seconds."""

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pids = job_pids(marker)
        if pids:
            time.sleep(settle)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return len(pids)
        time.sleep(0.02)
    raise AssertionError(f"no job process for {marker} within {timeout} s")


def parse_run_argv(argv: list[str]):
    """The JobSpec ``hepstream run ARGV`` builds, through the real command's parser."""

    command = typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=run), pretty_exceptions_short=True, rich_markup_mode=None
    )
    assert argv[0] == "run"
    params = command.make_context("run", argv[1:]).params
    params.pop("as_json")
    params.pop("progress")
    return spec_from_options(**params)
