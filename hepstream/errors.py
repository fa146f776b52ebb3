"""Errors the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class HepstreamError(Exception):
    """A user-facing failure: the message names the thing and what to do."""

    exit_code = 1


class ConfigError(HepstreamError):
    """Bad command-line option or configuration value."""

    exit_code = 2


class InputError(HepstreamError):
    """An input file or server cannot be read, or is not what the job expects."""

    exit_code = 3


class PluginError(HepstreamError):
    """The analyst's selection plugin failed to load or misbehaved."""

    exit_code = 4


class OutputError(HepstreamError):
    """The output cannot be written or uploaded."""

    exit_code = 5
