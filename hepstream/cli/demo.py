"""``hepstream demo``: generate a sample, serve it with xrootd, stream a job, print the report."""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from hepstream.io import StreamConfig
from hepstream.io.auth import KEYTAB_ENV, create_keytab, env_keytab
from hepstream.jobspec import JobSpec
from hepstream.report import print_summary
from hepstream.tools.generate import GeneratorConfig, generate_sample, sample_filenames
from hepstream.tools.serve import XRootDServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_PLUGIN = EXAMPLES / "tau1n_calib.py"
#: The second job: the same events into histograms and a cut flow only.
HISTOGRAM_PLUGIN = EXAMPLES / "tau1n_hists.py"
GLOBAL_TAG = "demo-beam-v1"


def demo(
    events: Annotated[int, typer.Option("--events", help="Events per generated file.")] = 200_000,
    files: Annotated[int, typer.Option("--files", help="Files of Tau1N-data to generate.")] = 2,
    workdir: Annotated[
        Path | None, typer.Option("--workdir", help="Keep data and output here (default: temp).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job report JSON.")] = False,
) -> None:
    """Run a real streaming job end to end on an embedded local XRootD server.

    Generates Tau1N-data samples, serves them with Debian's xrootd on 127.0.0.1,
    builds a conditions database with a per-run beam-energy calibration (LOCKED global
    tag demo-beam-v1) and serves it over HTTP, runs examples/tau1n_calib.py over root://
    with 1 MB read-ahead and a 10 MB cache, writes the reduced output back to the server,
    and prints the job report (global tag and IOV hash included). A second job,
    examples/tau1n_hists.py with --histograms-only, fills a visible-mass histogram and a
    cut flow: printed as text, and drawn to hepstream-demo-*.png (in --workdir, else here).

    \b
    Example:
      hepstream demo --events 200000 --files 2
    """
    from hepstream.conditions.sample import build_beam_db
    from hepstream.conditions.server import ConditionsServer
    from hepstream.job.runner import run_job

    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="hepstream-demo-"))
    data, out = base / "data", base / "out"
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    for directory in (base, data, out):
        directory.chmod(0o777 if directory is out else 0o755)
    try:
        names = sample_filenames("tau1n-data", files)
        for index, name in enumerate(names):
            if not (data / name).exists():
                typer.echo(f"demo: generating {name} ({events:,} events)", err=True)
                generate_sample(data / name, "tau1n-data", events, seed=index + 1)
        conditions = base / "conditions"
        if not conditions.exists():  # every file starts at event 0: the same runs in each
            per_run = GeneratorConfig().events_per_run
            runs = range(10_000, 10_000 + -(-events // per_run))
            typer.echo(f"demo: conditions {GLOBAL_TAG}, beam calibration for runs "
                       f"{runs[0]}-{runs[-1]}", err=True)  # fmt: skip
            build_beam_db(conditions, runs, GLOBAL_TAG).close()
        keytab = _demo_credential(base)
        with XRootDServer(data, out, keytab=keytab) as server, ConditionsServer(conditions) as cond:
            typer.echo(f"demo: serving {data} at {server.url}//data/", err=True)
            typer.echo(f"demo: writes need the sss key {keytab} (user {server.user})", err=True)
            typer.echo(f"demo: serving conditions at {cond.url}", err=True)
            spec = JobSpec(
                plugin=str(EXAMPLE_PLUGIN),
                inputs=(server.data_url("tau1n_data_*.root"),),
                output=server.out_url("tau1n_selected.root"),
                report=str(out / "report.json"),
                site="demo-local",
                stream=StreamConfig(),
                conditions=(cond.url,),
                global_tag=GLOBAL_TAG,
                conditions_cache=str(base / "conditions-cache"),
            )
            shown = replace(spec, plugin=f"examples/{EXAMPLE_PLUGIN.name}")
            typer.echo(f"demo: {shlex.join(['hepstream', *shown.to_argv()])}", err=True)
            report = run_job(spec)
            histograms = replace(
                spec,
                plugin=str(HISTOGRAM_PLUGIN),
                output=str(out / "tau1n_hists.root"),
                report=str(out / "report-hists.json"),
                conditions=(),
                global_tag=None,
                histograms_only=True,
            )
            shown = replace(histograms, plugin=f"examples/{HISTOGRAM_PLUGIN.name}")
            typer.echo(f"demo: {shlex.join(['hepstream', *shown.to_argv()])}", err=True)
            run_job(histograms)
        if as_json:
            print(report.to_json(), end="")
        print_summary(report)
        _show_histograms(Path(histograms.output), base if workdir else Path.cwd(), as_json)
        if workdir is not None:
            typer.echo(f"demo: report written to {spec.report}", err=True)
    finally:
        if workdir is None:
            shutil.rmtree(base, ignore_errors=True)


def _show_histograms(output: Path, where: Path, as_json: bool) -> None:
    """The histogram job's results as text (on stderr beside ``--json``'s report), and as
    PNGs in ``where`` (with matplotlib)."""
    from hepstream.errors import HepstreamError
    from hepstream.hists.plot import draw
    from hepstream.hists.store import read_results
    from hepstream.hists.text import summary

    results = read_results(output)
    if results is None:  # the job wrote its output: it holds what it filled
        raise HepstreamError(f"demo: {output} holds no histograms")
    typer.echo(summary(results), err=as_json)
    try:
        written = draw(results, where / "hepstream-demo", title="demo: tau1n_hists.py")
    except HepstreamError as err:  # no matplotlib: the text above is the demo's answer
        typer.echo(f"demo: no PNG ({err})", err=True)
        return
    typer.echo(f"demo: histograms drawn to {', '.join(str(p) for p in written)}", err=True)


def _demo_credential(base: Path) -> Path:
    """The caller's ``$XrdSecsssKT`` if set, else a fresh key for user ``demo`` in ``base``,
    put in this process's environment before its XRootD client first connects."""

    found = env_keytab()
    if found is not None:
        return found
    keytab = base / "demo-sss.keytab"
    if not keytab.exists():
        create_keytab(keytab, ["demo"])
    os.environ[KEYTAB_ENV] = str(keytab)
    return keytab
