"""``hepstream submit``: write an HTCondor submit file whose jobs carry VM attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hepstream.errors import ConfigError
from hepstream.jobspec import JobSpec


def _quote(value: str) -> str:
    if '"' in value or "\n" in value:
        raise ConfigError(f"value {value!r} may not contain quotes or newlines")
    return f'"{value}"'


def _word(value: str) -> str:
    if not value or any(c in value for c in " \t\n\"'"):
        raise ConfigError(f"{value!r} must be one word without quotes or spaces")
    return value


#: The site of a job on a VM: the cloud name its startd advertises, substituted by Condor.
_SITE = "$$(HepstreamCloud:local)"


def condor_arguments(job: JobSpec) -> str:
    """The submit file's ``arguments`` value running ``job`` through ``/usr/bin/env``."""
    return '"' + " ".join(["hepstream", *map(_word, job.to_argv())]) + '"'


def submit_text(
    plugin: str,
    inputs: list[str],
    image: str,
    output_dir: str,
    cpus: int = 1,
    memory_mb: int = 2048,
    target_clouds: list[str] | None = None,
    owner: str | None = None,
    log_dir: str = "logs",
) -> str:
    """The submit description: one job per input, each naming the VM it needs."""
    if not inputs:
        raise ConfigError("give at least one input file; one Condor job runs per input")
    if cpus < 1 or memory_mb < 256:
        raise ConfigError("--cpus must be >= 1 and --memory >= 256 MB")
    job = JobSpec(
        _word(plugin),
        ("$(input)",),
        f"{_word(output_dir)}/$(Cluster).$(Process).parquet",
        report=f"{output_dir}/$(Cluster).$(Process).report.json",
        site=_SITE,  # the cloud the VM runs on, from the machine ad at match time
    )
    lines = [
        "# written by hepstream submit; one job per input, run on a VM the shim boots",
        "universe = vanilla",
        "executable = /usr/bin/env",
        f"arguments = {condor_arguments(job)}",
        f"output = {log_dir}/$(Cluster).$(Process).out",
        f"error = {log_dir}/$(Cluster).$(Process).err",
        f"log = {log_dir}/$(Cluster).log",
        f"request_cpus = {cpus}",
        f"request_memory = {memory_mb}",
        f"+VMType = {_quote(image)}",
        f"+VMCPUCores = {cpus}",
        f"+VMMem = {memory_mb}",
        "+VMStorage = 16",
    ]
    if target_clouds:
        lines.append(f"+TargetClouds = {_quote(','.join(target_clouds))}")
    if owner:
        lines.append(f"+VMOwner = {_quote(owner)}")
    # a VM runs only jobs for its image and, through its START expression, its owner
    lines.append('requirements = (VMType =?= MY.VMType) && (Arch == "X86_64")')
    lines.append("queue input from (")
    lines.extend(f"  {i}" for i in inputs)
    lines.append(")")
    return "\n".join(lines) + "\n"


def submit(
    plugin: Annotated[str, typer.Argument(help="Selection plugin file (inside the VM image).")],
    inputs: Annotated[list[str], typer.Argument(help="Input URLs; one Condor job each.")],
    image: Annotated[str, typer.Option(help="VM image the jobs need (+VMType).")],
    output_dir: Annotated[str, typer.Option("--output-dir", help="Where outputs go.")] = "out",
    cpus: Annotated[int, typer.Option(help="VM CPU cores (+VMCPUCores).")] = 1,
    memory: Annotated[int, typer.Option(help="VM memory in MB (+VMMem).")] = 2048,
    target_cloud: Annotated[
        list[str] | None, typer.Option("--target-cloud", help="Allowed cloud (repeat).")
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Write an HTCondor submit file whose jobs ask the shim for a VM.

    \b
    Example:
        hepstream submit examples/tau1n.py root://host//data/a.root root://host//data/b.root \\
            --image babar-sl55 --memory 2048 --target-cloud nrc -f tau1n.sub
        condor_submit tau1n.sub
    """
    import os

    text = submit_text(
        plugin,
        list(inputs),
        image,
        output_dir,
        cpus,
        memory,
        target_cloud,
        owner=os.environ.get("USER"),
    )
    if file is None:
        typer.echo(text, nl=False)
        return
    from hepstream.report import write_json_atomic

    write_json_atomic(file, text)  # temp + rename, whatever the content
