"""``hepstream bench``: the site admin's storage benchmark and the performance suites."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from hepstream.errors import ConfigError
from hepstream.storagebench import storage_cmd

app = typer.Typer(
    help="Benchmarks: storage throughput and the performance suites.", no_args_is_help=True
)
app.command("storage")(storage_cmd)

#: A source checkout: the package's parent directory holds bench/ (not installed with it).
_CHECKOUT = Path(__file__).resolve().parents[2]


@app.command("run")
def run_cmd(
    quick: Annotated[
        bool, typer.Option("--quick", help="Small samples, 1-2 rounds (the CI smoke test).")
    ] = False,
    keyword: Annotated[
        str | None, typer.Option("-k", help="Only benchmarks matching this pytest -k expression.")
    ] = None,
    results_dir: Annotated[
        Path | None,
        typer.Option(
            "--results-dir", help="Where latest.json and latest.md go (default: bench/results)."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Cache of generated samples (default: bench/.data)."),
    ] = None,
) -> None:
    """Run the performance suites of a source checkout (``python -m bench`` in it).

    Needs the repository's bench/ directory, pytest-benchmark and Debian's xrootd. Writes
    bench/results/latest.json and latest.md and prints the targets.

    \b
    Example:
        hepstream bench run --quick
        hepstream bench run -k layouts --results-dir /tmp/bench
        python -m bench                  # the same, full run
    """
    if not (_CHECKOUT / "bench" / "runner.py").is_file():
        raise ConfigError(
            "hepstream bench run needs a source checkout (bench/ is not installed with the "
            "package): run `make bench` or `python -m bench` in the repository"
        )
    cmd = [sys.executable, "-m", "bench"]
    cmd += ["--quick"] if quick else []
    cmd += ["-k", keyword] if keyword else []
    cmd += ["--results-dir", str(results_dir)] if results_dir else []
    cmd += ["--data-dir", str(data_dir)] if data_dir else []
    code = subprocess.call(cmd, cwd=_CHECKOUT)
    if code:
        raise typer.Exit(code)
