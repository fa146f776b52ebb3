"""``hepstream run`` and ``hepstream demo``: the analyst's commands."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from hepstream.errors import HepstreamError, Interrupted, JobIncomplete
from hepstream.jobspec import JobSpec, parse_set
from hepstream.report import print_summary


def run(
    plugin: Annotated[str, typer.Argument(help="Plugin file defining one hepstream.Selection.")],
    inputs: Annotated[
        list[str], typer.Argument(help="Input ROOT files: paths or root:// URLs; globs allowed.")
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Output file (.root or .parquet), or root:// URL.")
    ],
    report: Annotated[
        str | None,
        typer.Option("--report", help="Write the job report JSON here (path or root://)."),
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            "--site", help="Site name for the report (default: $HEPSTREAM_SITE, else local)."
        ),
    ] = None,
    readahead: Annotated[
        str, typer.Option("--readahead", help="Read-ahead window, e.g. 1M, 256k, 0 to disable.")
    ] = "1M",
    cache: Annotated[
        str | None,
        typer.Option(
            "--cache",
            help="Memory bound for fetched bytes, e.g. 64M; never exceeded. Default: sized "
            "from each file's read plan to hold the chunk being read and the fetch_ahead (4) "
            "chunks fetched ahead of it, plus the next file's metadata windows (at least 10M, "
            "at most 256M).",
        ),
    ] = None,
    chunk: Annotated[
        str, typer.Option("--chunk", help="Uncompressed bytes per chunk (cluster aligned).")
    ] = "8M",
    prefetch: Annotated[
        int, typer.Option("--prefetch", min=1, help="Chunks read ahead of the selection.")
    ] = 1,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="NAME=VALUE",
            help="Any other job setting (repeat), e.g. fetch_ahead=3, stream.timeout=30, "
            "entry_ranges=0:5000 (see hepstream.jobspec.JobSpec).",
        ),
    ] = None,
    conditions: Annotated[
        list[str] | None,
        typer.Option(
            "--conditions",
            envvar="HEPSTREAM_CONDITIONS",
            help="Conditions source: http(s):// service or snapshot directory; repeat for "
            "fallbacks, tried in order.",
        ),
    ] = None,
    global_tag: Annotated[
        str | None,
        typer.Option("--global-tag", envvar="HEPSTREAM_GLOBAL_TAG", help="Conditions global tag."),
    ] = None,
    allow_open_tag: Annotated[
        bool, typer.Option("--allow-open-tag", help="Accept an OPEN global tag (test jobs).")
    ] = False,
    skip_bad_files: Annotated[
        bool,
        typer.Option(
            "--skip-bad-files",
            help="Skip missing, truncated or corrupt inputs (listed in the report; status "
            "partial, exit 6) instead of failing the job.",
        ),
    ] = False,
    histograms_only: Annotated[
        bool,
        typer.Option(
            "--histograms-only",
            help="Write only the plugin's histograms and cut flow (a .root output), no events.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=0,
            help="Processes reading the inputs, each its own interpreter (inputs dealt out "
            "in turn; output in input order); 0: one per core.",
        ),
    ] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report JSON on stdout.")
    ] = False,
    progress: Annotated[
        bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")
    ] = True,
) -> None:
    """Stream INPUTS through a selection PLUGIN and write the selected events.

    PLUGIN is your own file (README, "The selection plugin API"); a source checkout has
    examples/tau1n.py. The URL is the one 'hepstream serve' prints.

    \b
    Example:
      hepstream serve samples/ --port 1094 &
      hepstream run myselection.py 'root://127.0.0.1:1094//data/tau1n_mc_*.root' \\
          -o out/tau1n.root --report out/report.json
      hepstream run myselection.py samples/tau1n_mc_000.root -o out/local.parquet
    """
    from hepstream.job.runner import run_job

    spec = spec_from_options(
        plugin, inputs, output, report, site, readahead, cache, chunk, prefetch, settings,
        conditions, global_tag, allow_open_tag, skip_bad_files, workers, histograms_only,
    )  # fmt: skip
    job_report = None
    try:
        if progress and sys.stderr.isatty():
            job_report = _run_with_progress(spec, run_job)
        else:
            job_report = run_job(spec)
    except (HepstreamError, Interrupted) as err:
        if as_json:
            print(json.dumps({"status": "failed", "error": str(err)}))
        raise
    if as_json:
        print(job_report.to_json(), end="")
    print_summary(job_report)
    if job_report.status == "partial":
        skipped = [f.path for f in job_report.files if f.status == "skipped"]
        raise JobIncomplete(
            f"{len(skipped)} of {len(job_report.files)} inputs skipped ({', '.join(skipped)}); "
            f"the output holds the other files' events; the report lists why"
        )


def spec_from_options(
    plugin: str,
    inputs: list[str],
    output: str,
    report: str | None = None,
    site: str | None = None,
    readahead: str = "1M",
    cache: str | None = None,
    chunk: str = "8M",
    prefetch: int = 1,
    settings: list[str] | None = None,
    conditions: list[str] | None = None,
    global_tag: str | None = None,
    allow_open_tag: bool = False,
    skip_bad_files: bool = False,
    workers: int = 1,
    histograms_only: bool = False,
) -> JobSpec:
    """The :class:`JobSpec` of ``hepstream run``'s parsed options (``JobSpec.to_argv``'s
    inverse): the options become a mapping, read by ``JobSpec.from_mapping``."""

    mapping = {
        "plugin": plugin,
        "inputs": inputs,
        "output": output,
        "report": report,
        "site": site or os.environ.get("HEPSTREAM_SITE", "local"),
        "readahead": readahead,
        "cache": cache,
        "chunk": chunk,
        "prefetch": prefetch,
        "conditions": list(conditions or ()),
        "global_tag": global_tag,
        "allow_open_tag": allow_open_tag,
        "skip_bad_files": skip_bad_files,
        "histograms_only": histograms_only,
        "workers": workers,
        **parse_set(settings or []),
    }
    return JobSpec.from_mapping(mapping, where="hepstream run")


def _run_with_progress(spec, run_job):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("[bold]events"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True, console=None) as bar:
        task = bar.add_task("events", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, advance=done, total=total or None)

        return run_job(spec, progress=advance)


def register(app: typer.Typer) -> None:
    """Attach the analyst commands to the top-level app."""
    from hepstream.cli.data import generate, serve
    from hepstream.cli.demo import demo

    app.command()(run)
    app.command()(generate)
    app.command()(serve)
    app.command()(demo)
