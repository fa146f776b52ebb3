"""hepstream: stream HEP ROOT data over XRootD into numba selections, on VMs across clouds."""

from hepstream._version import __version__
from hepstream.errors import ConfigError, HepstreamError, InputError, OutputError, PluginError
from hepstream.io import IOStats, StreamConfig, StreamingSource, open_source
from hepstream.job.runner import run_job
from hepstream.jobspec import JobSpec
from hepstream.plugin.api import Selection, flat, jagged, load_plugin
from hepstream.report import FileReport, JobReport

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
    "flat",
    "jagged",
    "load_plugin",
    "open_source",
    "run_job",
]
