"""hepstream: stream HEP ROOT data over XRootD into numba selections, on VMs across clouds."""

from typing import TYPE_CHECKING, Any

from hepstream._version import __version__
from hepstream.errors import ConfigError, HepstreamError, InputError, OutputError, PluginError
from hepstream.io import IOStats, StreamConfig, StreamingSource, open_source
from hepstream.jobspec import JobSpec
from hepstream.plugin.api import Selection, flat, jagged
from hepstream.plugin.loader import load_plugin
from hepstream.report import FileReport, JobReport

if TYPE_CHECKING:
    from hepstream.hists.kernels import bin_index
    from hepstream.job.runner import run_job

__all__ = [
    "ConfigError",
    "FileReport",
    "HepstreamError",
    "IOStats",
    "InputError",
    "JobReport",
    "JobSpec",
    "OutputError",
    "PluginError",
    "Selection",
    "StreamConfig",
    "StreamingSource",
    "__version__",
    "bin_index",
    "flat",
    "jagged",
    "load_plugin",
    "open_source",
    "run_job",
]


def __getattr__(name: str) -> Any:
    """``run_job``, imported on first use: the job's modules (the reader and its numba
    decoders, the writer, the conditions client) would otherwise add ~250 ms to every CLI
    command's start-up (docs/performance.md, "CLI start-up")."""
    if name == "run_job":
        from hepstream.job.runner import run_job

        globals()["run_job"] = run_job
        return run_job
    if name == "bin_index":  # a numba helper for plugins' kernels: loads numba
        from hepstream.hists.kernels import bin_index

        globals()["bin_index"] = bin_index
        return bin_index
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
