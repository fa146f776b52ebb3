"""The ``cache`` commands (site admins): a site's XCache in front of the central storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hepstream.cli.data import serve_until_stopped
from hepstream.tools.sitecache import SiteCache, cache_status, parse_limits

#: Restarts of a cache daemon that died on its own: at most 10 within 10 minutes, then the
#: command fails (a daemon dying faster than that has a cause a restart will not cure).
RESTARTS = (10, 600.0)

app = typer.Typer(
    help="A site cache (XCache): each site reads a file over the WAN once.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command()
def serve(
    origin: Annotated[
        str, typer.Option(help="The central storage, root://host:port (what jobs' URLs name).")
    ],
    directory: Annotated[
        Path,
        typer.Option(
            "--dir", help="Cache directory; best on its own filesystem (kept across restarts)."
        ),
    ],
    disk: Annotated[
        str, typer.Option(help="Purge least recently used files above this share of the disk.")
    ] = "90%",
    ram: Annotated[
        str, typer.Option(help="Cap on blocks in flight in memory (xrootd accepts >= 1g).")
    ] = "1g",
    block: Annotated[str, typer.Option(help="Block size fetched from the origin and kept.")] = "1M",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port; 0 = any free.")] = 0,
    host: Annotated[str, typer.Option(help="Address the site's jobs use.")] = "127.0.0.1",
    keytab: Annotated[
        Path | None,
        typer.Option(help="sss keytab of the site's users (default: yours, as for serve)."),
    ] = None,
    origin_keytab: Annotated[
        Path | None,
        typer.Option(help="The key the cache presents to the origin (default: --keytab)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print URLs as one JSON line.")] = False,
) -> None:
    """Run a caching proxy (Debian's xrootd with libXrdPss + libXrdPfc) until Ctrl-C.

    Jobs at the site then read through it with HEPSTREAM_SITE_CACHE=URL (or
    --set stream.site_cache=URL, or site_cache in the cloud config): their URLs stay those of
    the origin. The cache logs in to the origin with sss; the origin's keytab must hold its key.

    \b
    Example:
        hepstream serve samples/ --port 1094 &     # the central storage
        hepstream cache serve --origin root://127.0.0.1:1094 --dir cache/ --port 1095
        export HEPSTREAM_SITE_CACHE=root://127.0.0.1:1095   # in the jobs' shells
    """
    limits = parse_limits(ram=ram, disk=disk, block=block)
    cache = SiteCache(
        origin, directory, limits=limits, keytab=keytab, origin_keytab=origin_keytab,
        port=port, host=host,
    )  # fmt: skip

    def announce(srv: SiteCache) -> None:
        if as_json:
            info: dict[str, Any] = {"url": srv.url, "origin": srv.origin, "dir": str(srv.cache_dir)}
            info |= {"pid": srv.pid, "log": str(srv.log_path)}
            typer.echo(json.dumps(info))
            return
        typer.echo(srv.url)
        typer.echo(f"# caching {srv.origin} in {srv.cache_dir}", err=True)
        typer.echo(f"# jobs: export HEPSTREAM_SITE_CACHE={srv.url}", err=True)
        typer.echo(f"# log: {srv.log_path}   (Ctrl-C to stop)", err=True)

    # XCache 5.5.3 aborts now and then under concurrent opens of one uncached file (heap
    # corruption: docs/sitecache.md); the blocks on disk survive, so a restart loses nothing
    # but the reads in flight, which jobs retry or take from the origin
    serve_until_stopped(cache, announce, restarts=RESTARTS)


@app.command()
def status(
    directory: Annotated[Path, typer.Option("--dir", help="The cache's --dir.")],
    files: Annotated[bool, typer.Option("--files", help="One row per cached file too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What a site cache holds: files, bytes, blocks complete, hit ratio.

    Read from the cache's own records (each file's .cinfo, via xrdpfc_print). The hit ratio
    is 1 - fetched/served over the access records XrdPfc keeps (the last 20 opens per file).

    \b
    Example:
        hepstream cache status --dir cache/ --files
    """
    st = cache_status(directory)
    if as_json:
        typer.echo(json.dumps(st.asdict(), indent=2))
        return
    ratio = "-" if st.hit_ratio is None else f"{st.hit_ratio:.1%}"
    rows: list[tuple[str, Any]] = [
        ("directory", st.directory),
        ("files", f"{len(st.files)} ({st.complete_files} complete)"),
        ("cached", f"{st.bytes_cached / 1e6:.1f} MB"),
        ("blocks", f"{st.blocks_cached} of {st.blocks}"),
        ("served", f"{st.bytes_served / 1e6:.1f} MB"),
        ("fetched from origin", f"{st.bytes_fetched / 1e6:.1f} MB"),
        ("hit ratio", ratio),
    ]
    for name, value in rows:
        typer.echo(f"{name:<20} {value}")
    if files:
        typer.echo(f"\n{'cached MB':>10} {'blocks':>13}  path")
        for f in st.files:
            typer.echo(
                f"{f.bytes_cached / 1e6:>10.1f} {f.blocks_cached:>6}/{f.blocks:<6}  {f.path}"
            )
