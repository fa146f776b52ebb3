"""The ``generate`` and ``serve`` commands (registered on the main app by ``hepstream.cli``)."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from hepstream.errors import ConfigError, InputError
from hepstream.io.auth import check_keytab, env_keytab
from hepstream.tools.generate import SAMPLES, generate_sample, sample_filenames
from hepstream.tools.serve import XRootDServer


def generate(
    outdir: Annotated[Path, typer.Argument(help="Directory to write the ROOT files into.")],
    sample: Annotated[str, typer.Option(help="tau1n-data | tau1n-mc | tau11-mc")] = "tau1n-mc",
    events: Annotated[int, typer.Option(min=1, help="Events per file.")] = 100_000,
    files: Annotated[int, typer.Option(min=1, help="Number of files (seed + i each).")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed of the first file.")] = 1,
    compression: Annotated[str, typer.Option(help="zlib | lz4 | zstd")] = "zlib",
    level: Annotated[int | None, typer.Option(help="Compression level (codec default).")] = None,
    events_per_basket: Annotated[int, typer.Option(min=1, help="Events per basket.")] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead.")] = False,
) -> None:
    """Write synthetic BaBar-like tau-pair samples (one TTree 'events' per file).

    Sizes with the default zlib, measured: about 2.6 KB per event (tau1n-mc and tau11-mc),
    3.0 KB (tau1n-data), so 100000 events make a 260-310 MB file, written in 15-25 s on
    one core; lz4 files are about 20 % larger, zstd ones about the same.

    \b
    Example:
        hepstream generate samples/ --events 10000 --files 2
        hepstream generate samples/ --sample tau1n-data --events 5000
    """
    from rich.progress import Progress

    if sample not in SAMPLES:
        raise ConfigError(f"unknown --sample {sample!r}: choose one of {', '.join(SAMPLES)}")
    outdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    names = sample_filenames(sample, files)
    with Progress(transient=True, disable=as_json) as progress:
        task = progress.add_task(f"generating {sample}", total=files)
        for i, name in enumerate(names):
            path = generate_sample(
                outdir / name,
                sample,
                events,
                seed=seed + i,
                compression=compression,
                level=level,
                events_per_basket=events_per_basket,
                first_event=i * events,
            )
            size = path.stat().st_size
            rows.append(
                {
                    "path": str(path),
                    "events": events,
                    "bytes": size,
                    "kb_per_event": round(size / events / 1024, 3),
                }
            )
            progress.advance(task)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(
            f"{row['path']}  {row['events']} events  {row['bytes'] / 1e6:.1f} MB  "
            f"{row['kb_per_event']:.2f} KB/event"
        )


def serve(
    directory: Annotated[Path, typer.Argument(help="Directory served read-only as /data.")],
    out: Annotated[
        Path | None, typer.Option(help="Directory served writable as /out (default: temp).")
    ] = None,
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 = any free.")] = 0,
    host: Annotated[str, typer.Option(help="Address clients use in the URL.")] = "127.0.0.1",
    keytab: Annotated[
        Path | None,
        typer.Option(
            help="sss keytab of the users let in (xrdsssadmin). Default: $XrdSecsssKT, else "
            "~/.config/hepstream/xrootd-sss.keytab, made on first use for you alone."
        ),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth/--no-auth",
            help="Require sss authentication (default). --no-auth lets anyone read and write.",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print URLs as one JSON line.")] = False,
) -> None:
    """Serve DIRECTORY over root:// with Debian's xrootd daemon until Ctrl-C.

    Clients authenticate with the sss shared secret: /data is readable by every key holder,
    /out/USER/ writable by USER alone; clients without a key are refused.

    Without --keytab it trusts your own key, which hepstream's clients present by
    themselves; other XRootD clients (xrdcp) need $XrdSecsssKT set to it (--json names it).

    \b
    Example:
        hepstream serve samples/ --port 1094
        # root://127.0.0.1:1094//data/ read-only (no --port: a free one); --out DIR: /out
    """

    if auth:  # the key first: a first run's missing keytab is told how to make one
        if keytab is not None:
            check_keytab(keytab, given_by="--keytab")
        elif (named := env_keytab()) is not None:
            check_keytab(named)
    server = XRootDServer(
        directory, out, port=port, host=host, cleanup=out is not None, auth=auth, keytab=keytab
    )
    serve_until_stopped(server, lambda srv: _announce(srv, auth, as_json))


def _announce(srv: XRootDServer, auth: bool, as_json: bool) -> None:
    if as_json:
        info: dict[str, Any] = {"url": srv.url, "data": srv.data_url(), "out": srv.out_url()}
        info |= {"out_dir": str(srv.out_dir), "pid": srv.pid, "log": str(srv.log_path)}
        info |= {"users": srv.users, "keytab": str(srv.keytab) if auth else None}
        typer.echo(json.dumps(info), nl=True)
        return
    typer.echo(srv.data_url())
    typer.echo(f"# writable: {srv.out_url()} -> {srv.out_dir}", err=True)
    if auth:  # the file's path, never its contents
        typer.echo(
            f"# users {', '.join(srv.users)}: export XrdSecsssKT=<their key file> "
            f"(server keytab {srv.keytab})",
            err=True,
        )
    else:
        typer.echo("# no authentication: anyone may read, write and delete", err=True)
    typer.echo(f"# log: {srv.log_path}   (Ctrl-C to stop)", err=True)


_S = TypeVar("_S", bound=XRootDServer)


def serve_until_stopped(
    server: _S, announce: Callable[[_S], None], *, restarts: tuple[int, float] = (0, 0.0)
) -> None:
    """Start ``server``, ``announce`` it, and keep it until Ctrl-C or SIGTERM (a clean stop,
    exit 0). A daemon that dies on its own is restarted on its port up to ``restarts[0]``
    times within ``restarts[1]`` seconds (each time a line on stderr), then it is an error
    naming its log."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    allowed, window = restarts
    recent: deque[float] = deque()
    try:
        with server as srv:
            announce(srv)
            try:
                while not stop.is_set():
                    stop.wait(0.5)
                    if stop.is_set() or srv.running:
                        continue
                    now = time.monotonic()
                    while recent and now - recent[0] > window:
                        recent.popleft()
                    if len(recent) >= allowed:
                        often = f" ({allowed} restarts within {window:.0f} s)" if allowed else ""
                        raise InputError(f"xrootd exited unexpectedly{often}; see {srv.log_path}")
                    recent.append(now)
                    tail = srv.restart()
                    typer.echo(
                        f"# xrootd exited unexpectedly; restarted on port {srv.port} "
                        f"(last log lines: {tail[-300:]})",
                        err=True,
                    )
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
