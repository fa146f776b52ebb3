"""Errors the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class HepstreamError(Exception):
    """A user-facing failure: the message names the thing and what to do."""

    exit_code = 1
    #: Long text (e.g. a compiler's output) for the report's ``detail`` field, not the line.
    detail: str | None = None


class ConfigError(HepstreamError):
    """Bad command-line option or configuration value."""

    exit_code = 2


class InputError(HepstreamError):
    """An input file or server cannot be read, or is not what the job expects."""

    exit_code = 3


#: sysexits' "temporary failure; the user is invited to retry".
EX_TEMPFAIL = 75


class ServerUnavailable(InputError):
    """A server the job reads from (storage, a site cache, a conditions service) did not
    answer, or refused the connection: not the input's fault, and the same job may succeed
    later. Exits :data:`EX_TEMPFAIL`, so that a batch system (Condor's ``retry_until``,
    Slurm, the dataset engines) can tell it from an input error (3), which fails the same
    way every time."""

    exit_code = EX_TEMPFAIL


class PluginError(HepstreamError):
    """The analyst's selection plugin failed to load or misbehaved."""

    exit_code = 4


class OutputError(HepstreamError):
    """The output cannot be written or uploaded."""

    exit_code = 5


class JobIncomplete(HepstreamError):
    """The job finished without some inputs (``--skip-bad-files`` skipped them): its report
    says ``partial`` and lists them; the output holds exactly the other files' events."""

    exit_code = 6


#: Exit codes of a job that fails the same way every time it runs (a bad option or spec,
#: a missing or damaged input, a broken plugin): a retry would only repeat them. Everything
#: else (a signal, a lost node, a server that did not answer, an output error) may heal.
PERMANENT_EXIT_CODES = frozenset(
    {ConfigError.exit_code, InputError.exit_code, PluginError.exit_code}
)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the job; exits ``128 + signal`` (130 / 143) as a shell would.

    A :class:`KeyboardInterrupt` subclass, so no ``except Exception`` in plugin or library
    code swallows it on the way out.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[type[Interrupted], tuple[int]]:
        return (Interrupted, (self.signum,))  # a worker process's stop reaches the job
