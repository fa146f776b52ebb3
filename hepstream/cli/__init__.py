"""The ``hepstream`` command line: one entry point, one error wrapper, a module per user.

``analyst`` (run, demo, generate, serve via ``data``), ``bench`` and ``cache`` (site admins), ``image`` (VM
builders), ``cloud`` (operators), ``dataset`` and ``conditions``. Nothing below this package
imports it.

Every command's start-up imports all of cli/, so a command's own heavy machinery is imported
inside that command, and only there; the rest is imported at the top. Measured after the
CLI's own start (docs/performance.md, "CLI start-up", has the command): the job's runner
(numba) ~250 ms, the Dask engine ~240 ms, the storage bench ~280 ms, the cloud shim and the
simulation 50-60 ms, the conditions server 60-80 ms, rich's progress bars ~25 ms, the cloud
and conditions commands' modules 15-30 ms each.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import threading
import traceback

import typer

from hepstream.cli import analyst
from hepstream.cli.bench import app as bench_app
from hepstream.cli.cache import app as cache_app
from hepstream.cli.cloud import app as cloud_app
from hepstream.cli.cloud import submit
from hepstream.cli.conditions import app as conditions_app
from hepstream.cli.dataset import register as register_dataset
from hepstream.cli.hist import app as hist_app
from hepstream.cli.image import app as image_app
from hepstream.cli.show import show
from hepstream.errors import HepstreamError, JobIncomplete
from hepstream.io.xrootd import storage_unavailable
from hepstream.job.signals import stop_on_signals

app = typer.Typer(
    name="hepstream",
    help="Stream HEP ROOT data over XRootD into numba selections, on VMs across clouds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    """Attach the sub-command groups that live in their own modules."""
    analyst.register(app)
    app.add_typer(bench_app, name="bench")
    app.add_typer(cache_app, name="cache")
    app.add_typer(image_app, name="image")
    app.add_typer(cloud_app, name="cloud")
    app.command("submit")(submit)
    register_dataset(app)
    app.add_typer(conditions_app, name="conditions")
    app.add_typer(hist_app, name="hist")
    app.command()(show)


_register()


def main(argv: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run the CLI; a :class:`HepstreamError` becomes one line on stderr and its exit code.

    SIGINT and SIGTERM stop a command cleanly (its ``finally`` blocks run: temp files go, a
    job writes its ``failed`` report) and exit 130 / 143, as a shell reports a signal.
    """

    with stop_on_signals() as stopped:
        code = _main(argv, prog_name)
    if stopped and code != 0:  # a command that handles Ctrl-C itself (serve) ends with 0
        print(f"hepstream: error: {stopped[0]}", file=sys.stderr)
        return stopped[0].exit_code
    return code


def entry() -> None:
    """The ``hepstream`` console script: :func:`main`, then exit with its code.

    A failed job has written its report and removed its temp files before ``main``
    returns. What is left of it must not keep the process alive: a read blocked on a
    stalled server (it ends within its retry policy) that the interpreter's exit would
    join, or an XRootD file handle whose destructor would wait for that server to answer
    a close. Then the process ends at once, with its code.
    """

    code = main()
    if code != 0:
        stuck = [
            t for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()
        ]  # fmt: skip
        if stuck or storage_unavailable():
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    sys.exit(code)


def _main(argv: list[str] | None, prog_name: str | None) -> int:
    try:
        # typer returns a command's exit code (130 for a KeyboardInterrupt) in this mode
        code = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except JobIncomplete as err:  # the job ran; some inputs were skipped on request
        print(f"hepstream: warning: {err}", file=sys.stderr)
        return err.exit_code
    except HepstreamError as err:
        print(f"hepstream: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("hepstream: interrupted", file=sys.stderr)
        return 130
    except SystemExit as err:  # typer/click exits (e.g. --help) pass through
        return int(err.code or 0)
    except Exception as err:
        usage, abort = _click_errors()
        if isinstance(err, usage):  # a bad option or argument: click's usage line, exit 2
            err.show()  # type: ignore[attr-defined]
            return int(err.exit_code)  # type: ignore[attr-defined]
        if isinstance(err, abort):
            print("hepstream: aborted", file=sys.stderr)
            return 130
        return _internal_error(err)
    return code if isinstance(code, int) else 0


#: Exit code of a failure hepstream did not foresee (sysexits' EX_SOFTWARE).
INTERNAL_ERROR = 70


def _internal_error(err: Exception) -> int:
    """A failure no error class names is hepstream's own bug: one line that says so and
    where its traceback went (a log file, not the terminal), and :data:`INTERNAL_ERROR`."""

    text = "".join(traceback.format_exception(err))
    where = "stderr was the only place left"
    try:
        fd, log = tempfile.mkstemp(prefix=f"hepstream-{os.getpid()}-", suffix="-traceback.log")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        where = f"the traceback is in {log}"
    except OSError:
        print(text, file=sys.stderr, end="")
    first = (str(err).strip().splitlines() or [""])[0][:200]
    print(
        f"hepstream: error: internal error ({type(err).__name__}: {first}); {where}, "
        f"please report it",
        file=sys.stderr,
    )
    return INTERNAL_ERROR


def _click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Click's usage and abort exceptions: typer raises those of its vendored copy of click
    (``typer._click``) where it has one, of ``click`` itself otherwise."""

    usage: list[type[BaseException]] = []
    abort: list[type[BaseException]] = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        usage.append(module.ClickException)
        if hasattr(module, "Abort"):
            abort.append(module.Abort)
    return tuple(usage), tuple(abort)


if __name__ == "__main__":
    entry()
