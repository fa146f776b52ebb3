"""``hepstream hist show FILE``: a job's (or a merge's) histograms and cut flow in a terminal.

FILE is a ROOT output holding them, a Parquet output's ``.hist.root`` sidecar, or the
Parquet output itself (then its sidecar is read). The histogram modules (boost-histogram,
numba's kernels) and matplotlib are imported inside the command: every other command's
start-up imports this module too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from hepstream.errors import HepstreamError, InputError
from hepstream.io.urls import is_remote

if TYPE_CHECKING:
    from hepstream.hists.store import Results

app = typer.Typer(help="Histograms and cut flows a job wrote.", no_args_is_help=True)


@app.command("show")
def show(
    file: Annotated[
        str,
        typer.Argument(
            help="A job's .root output, a .hist.root sidecar, or a .parquet output "
            "(its sidecar is read)."
        ),
    ],
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Values, variances, edges and the cut flow as JSON on stdout."),
    ] = False,
    png: Annotated[
        str | None,
        typer.Option(
            "--png",
            metavar="PREFIX",
            help="Also draw PREFIX-<histogram>.png per histogram and PREFIX-cutflow.png.",
        ),
    ] = None,
) -> None:
    """Print a file's histograms (axes, entries, sum of weights, flow, bins as bars) and
    its cut flow.

    \b
    Example:
      hepstream generate samples/ --events 20000
      hepstream run examples/tau1n_hists.py samples/tau1n_mc_000.root -o out/tau1n.root
      hepstream hist show out/tau1n.root --png out/tau1n
      hepstream hist show out/tau1n.root --json
    """

    path, results = load(file)
    written: list[Path] = []
    if png:
        from hepstream.hists.plot import draw

        written = draw(results, png, title=_job_name(path))
    if as_json:
        from hepstream.hists.text import as_json as to_json

        body = {"file": str(path), **to_json(results), "png": [str(p) for p in written]}
        typer.echo(json.dumps(body, indent=1))
        return
    from hepstream.hists.text import summary

    counted = f"{len(results.histograms)} histogram" + ("s" if len(results.histograms) != 1 else "")
    cuts = f", a cut flow of {len(results.cutflow)} rows" if results.cutflow else ""
    typer.echo(f"{path}: {counted}{cuts}\n")
    typer.echo(summary(results), nl=False)
    if written:
        typer.echo("\nwrote " + ", ".join(str(p) for p in written))


def load(file: str) -> tuple[Path, Results]:
    """The file whose histograms ``file`` names (a Parquet output's sidecar) and what it
    holds; an InputError (one line) for anything that has none to show."""
    from hepstream.cli.show import file_format
    from hepstream.hists.store import read_results, sidecar_of

    if is_remote(file):
        raise InputError(f"{file}: hist show reads local files; copy it here first (xrdcp)")
    path = Path(file)
    if path.is_dir():
        raise InputError(
            f"{path} is a directory; give a job's output (.root, .parquet or .hist.root)"
        )
    if path.suffix.lower() == ".parquet":
        sidecar = Path(sidecar_of(str(path)))
        if not sidecar.exists():
            what = "output" if path.exists() else "output (also missing)"
            raise InputError(
                f"{path}: no histograms beside this Parquet {what}: {sidecar} is missing "
                f"(the plugin books no histograms: a cut flow alone is in the job's report and "
                f"the Parquet metadata; or the job did not finish)"
            )
        path = sidecar
    if file_format(path) != "root":  # missing, empty, truncated, not ROOT: one line each
        raise InputError(
            f"{path} is a Parquet file, not ROOT; give the .root output or the .hist.root "
            f"sidecar holding the histograms"
        )
    try:
        results = read_results(path)
    except (ValueError, HepstreamError) as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise InputError(
            f"{path}: its histograms cannot be read ({first}); the file may be damaged, "
            f"rerun the job or copy it again"
        ) from None
    if not results:
        raise InputError(
            f"{path} holds no histograms and no cut flow hepstream wrote (its plugin books "
            f"none and names no cuts); 'hepstream show {path}' lists what it holds"
        )
    return path, results


def _job_name(path: Path) -> str:
    """The job's output name in plot titles: ``out/a.hist.root`` -> ``a``."""
    name = path.name
    for suffix in (".hist.root", ".root"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name
