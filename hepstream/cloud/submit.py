"""HTCondor submit files whose jobs carry VM attributes (``hepstream submit`` writes them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from hepstream.errors import PERMANENT_EXIT_CODES, ConfigError
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


@dataclass(frozen=True)
class VMRequest:
    """The VM a Condor job asks the shim for (``+VM*`` attributes)."""

    image: str
    cpus: int = 1
    memory_mb: int = 2048
    target_clouds: tuple[str, ...] = ()
    owner: str | None = None

    def lines(self) -> list[str]:
        if self.cpus < 1 or self.memory_mb < 256:
            raise ConfigError("--cpus must be >= 1 and --memory >= 256 MB")
        lines = [
            f"request_cpus = {self.cpus}",
            f"request_memory = {self.memory_mb}",
            f"+VMType = {_quote(self.image)}",
            f"+VMCPUCores = {self.cpus}",
            f"+VMMem = {self.memory_mb}",
            "+VMStorage = 16",
        ]
        if self.target_clouds:
            lines.append(f"+TargetClouds = {_quote(','.join(self.target_clouds))}")
        if self.owner:
            lines.append(f"+VMOwner = {_quote(self.owner)}")
        # a VM runs only jobs for its image and, through its START expression, its owner
        lines.append('requirements = (VMType =?= MY.VMType) && (Arch == "X86_64")')
        return lines


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
    vm = VMRequest(image, cpus, memory_mb, tuple(target_clouds or ()), owner)
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
        *vm.lines(),
        "queue input from (",
        *(f"  {i}" for i in inputs),
        ")",
    ]
    return "\n".join(lines) + "\n"


def jobs_submit_text(
    jobs: Sequence[tuple[str, JobSpec]], vm: VMRequest, log_dir: str, retries: int = 2
) -> str:
    """One Condor job per ``(name, spec)``: the dataset engine's submit description.

    Each queue line carries the job's name and its whole ``hepstream run`` command; a job
    that fails for a transient reason is retried by Condor itself (``max_retries``), a
    config, input or plugin error (exit 2, 3 or 4) is not.
    """
    if not jobs:
        raise ConfigError("no jobs to submit")
    if retries < 0:
        raise ConfigError("--retries must be >= 0")
    lines = [
        "# written by hepstream dataset submit --engine condor; one job per dataset job",
        "universe = vanilla",
        "executable = /usr/bin/env",
        'arguments = "$(args)"',
        f"output = {_word(log_dir)}/$(name).out",
        f"error = {log_dir}/$(name).err",
        f"log = {log_dir}/condor.log",
        f"max_retries = {retries}",
        "retry_until = " + " || ".join(f"ExitCode == {c}" for c in sorted(PERMANENT_EXIT_CODES)),
        *vm.lines(),
        "queue name,args from (",
    ]
    for name, spec in jobs:
        site = replace(spec, site=_SITE)
        lines.append(f"  {_word(name)} " + " ".join(["hepstream", *map(_word, site.to_argv())]))
    lines.append(")")
    return "\n".join(lines) + "\n"
