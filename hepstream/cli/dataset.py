"""``hepstream dataset split|submit|status|collect`` and ``hepstream collect``."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from hepstream.dataset import collect as collecting
from hepstream.dataset import split as splitting
from hepstream.dataset.collect import job_rows
from hepstream.dataset.engines.base import Engine
from hepstream.dataset.engines.local import LocalEngine
from hepstream.dataset.engines.slurm import SlurmEngine
from hepstream.dataset.layout import absolute, read_layouts, resolve_inputs
from hepstream.dataset.record import Dataset
from hepstream.errors import ConfigError, HepstreamError, OutputError
from hepstream.jobspec import JobSpec, parse_set
from hepstream.plugin.loader import load_plugin

app = typer.Typer(
    help="A dataset as many jobs: split, submit, status, collect.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
DirArg = Annotated[Path, typer.Argument(help="Dataset directory (made by 'dataset split').")]


@app.command()
def split(
    plugin: Annotated[str, typer.Argument(help="Selection plugin file.")],
    inputs: Annotated[
        list[str], typer.Argument(help="Inputs: paths, root:// globs, or @filelist.txt.")
    ],
    directory: Annotated[Path, typer.Option("--dir", "-d", help="Dataset directory to create.")],
    files_per_job: Annotated[
        int | None, typer.Option("--files-per-job", help="Whole files per job.")
    ] = None,
    events_per_job: Annotated[
        int | None,
        typer.Option("--events-per-job", help="Entries per job, cut on cluster boundaries."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="Job output format: parquet or root.")
    ] = "parquet",
    site: Annotated[
        str | None,
        typer.Option(help="Site name in the reports (default: $HEPSTREAM_SITE or local)."),
    ] = None,
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="Job setting for every job (repeat)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Split INPUTS into jobs and write DIR/dataset.json.

    Local paths are stored absolute: the jobs run from any directory.

    \b
    Example:
      hepstream dataset split myselection.py 'root://127.0.0.1:1094//data/tau1n_mc_*.root' \\
          --dir ds/tau1n --files-per-job 1
      hepstream dataset split myselection.py 'samples/*.root' --dir ds/big --events-per-job 500000
    """

    if (files_per_job is None) == (events_per_job is None):
        raise ConfigError("give exactly one of --files-per-job and --events-per-job")
    if output_format not in ("parquet", "root"):
        raise ConfigError(f"--format {output_format!r}: use parquet or root")
    if (directory / "dataset.json").exists():
        raise ConfigError(f"{directory} already holds a dataset; pick a new --dir")
    selection = load_plugin(plugin)
    paths = resolve_inputs(inputs)
    layouts = read_layouts(paths, selection.tree)
    if files_per_job is not None:
        groups = splitting.by_files(layouts, files_per_job)
        how: dict[str, Any] = {"files_per_job": files_per_job}
    else:
        groups = splitting.by_events(layouts, int(events_per_job or 0))
        how = {"events_per_job": events_per_job}
    mapping: dict[str, Any] = {
        "plugin": str(Path(plugin).resolve()),
        "inputs": paths,
        "output": "-",
        **parse_set(settings or []),
    }
    if site:
        mapping["site"] = site
    template = JobSpec.from_mapping(mapping, where="dataset split")
    # the jobs run from wherever the engine starts them: no path may stay relative to here
    template = dataclasses.replace(
        template,
        conditions=tuple(absolute(c) for c in template.conditions),
        conditions_cache=template.conditions_cache and absolute(template.conditions_cache),
    )
    jobs = splitting.make_jobs(
        groups, layouts, template, str(directory.resolve()), suffix=f".{output_format}"
    )
    typed = tuple(absolute(i) for i in inputs)
    dataset = Dataset(directory, template.plugin, tuple(jobs), how, typed, selection.tree)
    dataset.save()
    ranged = sum(1 for j in jobs if j.spec.entry_ranges)
    summary = {
        "dataset": str(directory),
        "jobs": len(jobs),
        "files": len(paths),
        "events": sum(j.events for j in jobs),
        "jobs_with_entry_ranges": ranged,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(
        f"{directory}: {len(jobs)} jobs over {len(paths)} files, "
        f"{summary['events']:,} events" + (f" ({ranged} read part of a file)" if ranged else "")
    )


def make_engine(
    engine: str,
    *,
    concurrency: int | None = None,
    retries: int = 2,
    address: str | None = None,
    partition: str | None = None,
    max_running: int | None = None,
    wait: bool = True,
    image: str | None = None,
    cpus: int = 1,
    memory: int = 2048,
) -> Engine:
    """The engine named ``engine`` with the CLI's options."""
    if engine == "local":
        return LocalEngine(concurrency, retries)
    if engine == "slurm":
        return SlurmEngine(partition=partition, max_running=max_running, retries=retries, wait=wait)
    if engine == "dask":
        from hepstream.dataset.engines.dask import DaskEngine

        return DaskEngine(address or "", retries=retries)
    if engine == "condor":
        from hepstream.cloud.submit import VMRequest
        from hepstream.dataset.engines.condor import CondorEngine

        if not image:
            raise ConfigError("--engine condor needs --image (the VM image the jobs run in)")

        return CondorEngine(VMRequest(image, cpus, memory, owner=os.environ.get("USER")), retries)
    raise ConfigError(f"--engine {engine!r}: use local, slurm, dask or condor")


class _ShowProgress:
    """Jobs and events done: a rich bar on a terminal, one line per job otherwise; a failed
    or retried job's line (with its error) either way."""

    def __init__(self, total_jobs: int, total_events: int) -> None:
        self.total_jobs, self.total_events = total_jobs, total_events
        self.jobs = self.events = 0
        self.bar: Any = None

    def __enter__(self) -> _ShowProgress:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                transient=True,
                console=Console(stderr=True),  # the lines below print above it
            )
            self.bar.start()
            self._jobs = self.bar.add_task("jobs", total=self.total_jobs)
            self._events = self.bar.add_task("events", total=self.total_events)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def job_done(
        self, name: str, report: dict[str, Any] | None, ok: bool, error: str | None = None
    ) -> None:
        events = int((report or {}).get("events_read", 0)) if ok else 0
        self.jobs += 1
        self.events += events
        if self.bar is not None:
            self.bar.update(self._jobs, advance=1)
            self.bar.update(self._events, advance=events)
            if ok:
                return
        # never an empty reason: the report's line, else what the engine knew
        why = error or (report or {}).get("error") or "no report; see the dataset's logs/"
        status = "ok" if ok else f"failed: {why}"
        self._say(
            f"hepstream: {name} {status} ({self.jobs}/{self.total_jobs} jobs, "
            f"{self.events:,}/{self.total_events:,} events)"
        )

    def job_retry(self, name: str, reason: str) -> None:
        self._say(f"hepstream: {name} retried: {reason}")

    def _say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr, flush=True)


@app.command()
def submit(
    directory: DirArg,
    engine: Annotated[str, typer.Option(help="local, slurm, dask or condor.")] = "local",
    jobs: Annotated[
        str | None, typer.Option(help="Only these jobs, comma separated (collect prints them).")
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="local: jobs at once (default: the CPU count).")
    ] = None,
    retries: Annotated[int, typer.Option(help="Retries of a transiently failed job.")] = 2,
    address: Annotated[
        str | None, typer.Option(help="dask: scheduler address, tcp://host:8786.")
    ] = None,
    partition: Annotated[str | None, typer.Option(help="slurm: partition.")] = None,
    max_running: Annotated[int | None, typer.Option(help="slurm: array tasks at once.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="slurm: follow the jobs to their end.")
    ] = True,
    image: Annotated[str | None, typer.Option(help="condor: VM image (+VMType).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the dataset's jobs (all, or --jobs) on an engine.

    A job that failed for a config, input or plugin error (exit 2, 3, 4) is not retried:
    it would fail the same way; each failed job's error line is printed.

    \b
    Example:
      hepstream dataset submit ds/tau1n --engine local --concurrency 2
      hepstream dataset submit ds/tau1n --engine slurm --max-running 50
      hepstream dataset submit ds/tau1n --engine dask --address tcp://127.0.0.1:8786
    """

    dataset = Dataset.load(directory)
    chosen = dataset.select([n.strip() for n in jobs.split(",")] if jobs else None)
    runner = make_engine(
        engine,
        concurrency=concurrency,
        retries=retries,
        address=address,
        partition=partition,
        max_running=max_running,
        wait=wait,
        image=image,
    )
    for job in chosen:  # a rerun's old report must not count as its result
        try:
            Path(str(job.spec.report)).unlink(missing_ok=True)
        except OSError as err:  # a directory in its place, a read-only reports/
            raise OutputError(
                f"cannot remove {job.name}'s old report {job.spec.report} ({err.strerror}); "
                f"remove it by hand"
            ) from None
    with _ShowProgress(len(chosen), sum(j.events for j in chosen)) as progress:
        outcomes = runner.submit(dataset, chosen, progress)
    if as_json:
        typer.echo(json.dumps([o.__dict__ | {"report": None} for o in outcomes], indent=2))
    failed = [o.name for o in outcomes if o.status == "failed"]
    if engine == "condor":
        typer.echo(f"condor_submit {outcomes[0].engine_id}", err=as_json)
    if failed:
        raise HepstreamError(
            f"{len(failed)} of {len(outcomes)} jobs failed ({', '.join(failed)}); "
            f"see 'hepstream collect {directory}'"
        )


@app.command()
def status(directory: DirArg, as_json: JsonOpt = False) -> None:
    """Each job's state: ok, failed or missing (and Slurm's own state while queued).

    \b
    Example:
      hepstream dataset status ds/tau1n
    """

    dataset = Dataset.load(directory)
    rows = job_rows(dataset)
    states = {r.name: r.status for r in rows}
    states.update(_slurm_states(dataset, states))
    if as_json:
        typer.echo(json.dumps(states, indent=2))
        return
    for name, state in states.items():
        typer.echo(f"{name}  {state}")


def _slurm_states(dataset, states: dict[str, str]) -> dict[str, str]:
    """Queued/running states of jobs last sent to Slurm that have no report yet."""

    out: dict[str, str] = {}
    for sub in dataset.submissions():
        if sub["engine"] != "slurm" or not any(states.get(n) == "missing" for n in sub["jobs"]):
            continue
        try:
            tasks = SlurmEngine().tasks(sub["array_id"])
        except HepstreamError:
            continue  # the array is gone from slurmctld: the reports are all there is
        index = {j.name: i for i, j in enumerate(dataset.jobs)}
        for name in sub["jobs"]:
            task = tasks.get(index[name])
            if task is not None and states.get(name) == "missing":
                out[name] = f"slurm:{task.state.lower()}"
    return out


def collect(
    directory: DirArg,
    as_json: JsonOpt = False,
    png: Annotated[
        str | None, typer.Option("--png", help="Write PREFIX-sites.png and PREFIX-throughput.png.")
    ] = None,
    merge: Annotated[
        Path | None,
        typer.Option("--merge", help="Merge the ok outputs into this .parquet or .root file."),
    ] = None,
) -> None:
    """Merge a dataset's reports: per site and engine, jobs, events, rates, failures.

    Also writes DIR/manifest.json (and outputs/_metadata for Parquet) so that
    ak.from_parquet(DIR/outputs) or uproot.concatenate(manifest["uproot"]) open the
    whole selection. Missing or failed jobs are named with the command that resubmits them.

    \b
    Example:
      hepstream collect ds/tau1n --png ds/tau1n/plot --merge ds/tau1n/all.parquet
    """

    from hepstream.dataset.histograms import merge_dataset

    dataset = Dataset.load(directory)
    rows = collecting.job_rows(dataset)
    report = collecting.summarize(rows, str(directory))
    if any(r.status == "ok" for r in rows):
        collecting.write_manifest(dataset, rows, dataset.tree)
    histograms = merge_dataset(dataset, rows)
    if histograms is not None:
        report = dataclasses.replace(report, histograms=histograms.record())
    if merge is not None:
        collecting.merge_outputs(collecting.ok_outputs(dataset, rows), merge, dataset.tree)
    if png:
        collecting.plot(report, rows, png)
        if histograms is not None:
            from hepstream.hists.plot import draw

            draw(histograms.results, png, title=f"{dataset.name}: {histograms.state()}")
    if as_json:
        typer.echo(report.to_json(), nl=False)
    else:
        typer.echo(collecting.table(report), nl=False)
        if histograms is not None:
            typer.echo("\n".join(histograms.lines()))
    if report.failed or report.missing:
        damaged = [r.error for r in rows if r.status == "damaged"]
        why = f", {len(damaged)} with a damaged report ({damaged[0]})" if damaged else ""
        raise HepstreamError(
            f"{len(report.failed) + len(report.missing)} of {report.jobs} jobs failed or "
            f"missing{why}; resubmit them with: {report.resubmit}"
        )


app.command("collect")(collect)


def register(app_: typer.Typer) -> None:
    """Attach ``hepstream dataset ...`` and ``hepstream collect`` to the top-level app."""
    app_.add_typer(app, name="dataset")
    app_.command("collect")(collect)
