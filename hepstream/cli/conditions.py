"""``hepstream conditions``: author, inspect, lock, serve and snapshot global tags."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Conditions database: global tags, IOVs and payloads (author, serve, snapshot).",
    no_args_is_help=True,
)

DbOpt = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="HEPSTREAM_CONDITIONS_DB",
        help="Conditions directory (SQLite, created by 'create') or postgresql:// URL.",
    ),
]
PayloadsOpt = Annotated[
    Path | None,
    typer.Option(
        "--payloads", help="Payload directory (default: DB/payloads; required for PostgreSQL)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
_DB = "conditions"


def _store(db: str, payloads: Path | None, create: bool = False):
    from hepstream.conditions.store import Store

    return Store(db, payloads, create=create)


@app.command("create")
def create_cmd(
    global_tag: Annotated[str, typer.Argument(help="Name of the new (OPEN) global tag.")],
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
) -> None:
    """Create an OPEN global tag (and the database, if new).

    \b
    Example:
      hepstream conditions create beam-2026-v1 --db conditions
    """
    with _store(db, payloads, create=True) as store:
        store.create(global_tag)
    typer.echo(f"created global tag {global_tag} (OPEN) in {db}", err=True)


@app.command("add")
def add_cmd(
    global_tag: Annotated[str, typer.Argument(help="An OPEN global tag.")],
    record: Annotated[str, typer.Argument(help="Record name, e.g. beam.")],
    payload: Annotated[Path, typer.Argument(help="Payload file: .npz (numpy arrays) or .json.")],
    since: Annotated[
        str, typer.Option("--since", help="First run (RUN or RUN:SUBRUN) the payload is valid for.")
    ],
    tag: Annotated[
        str | None, typer.Option("--tag", help="Tag name for a new record (default: RECORD-GT).")
    ] = None,
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add PAYLOAD as RECORD's IOV starting at --since (valid until the next IOV).

    \b
    Example:
      hepstream conditions add beam-2026-v1 beam beam_10002.npz --since 10002:0 --db conditions
    """
    from hepstream.conditions.model import parse_since

    with _store(db, payloads) as store:
        added, iov = store.add(global_tag, record, payload, parse_since(since), tag)
    if as_json:
        print(json.dumps({"record": record, "since": list(iov.since), "sha256": added.sha256}))
    typer.echo(f"{global_tag}: {record} from {since} -> payload {added.sha256}", err=True)


@app.command("show")
def show_cmd(
    global_tag: Annotated[
        str | None, typer.Argument(help="Global tag to show (default: list them all).")
    ] = None,
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List global tags, or show one: its records, IOVs and payloads.

    \b
    Example:
      hepstream conditions show beam-2026-v1 --db conditions
    """
    with _store(db, payloads) as store:
        if global_tag is None:
            names = store.names()
            if as_json:
                print(json.dumps([{"name": n, "status": s} for n, s in names]))
                return
            for name, status in names:
                typer.echo(f"{name}\t{status}")
            return
        gt = store.global_tag(global_tag)
    if as_json:
        print(json.dumps(gt.to_dict(), indent=2))
        return
    typer.echo(f"global tag {gt.name} ({gt.status})")
    for record, t in sorted(gt.tags.items()):
        typer.echo(f"  record {record} (tag {t.name}), {len(t.iovs)} IOVs")
        for k, iov in enumerate(t.iovs):
            until = t.iovs[k + 1].since if k + 1 < len(t.iovs) else None
            end = f"{until[0]}:{until[1]}" if until else "open end"
            p = gt.payloads[iov.payload]
            typer.echo(
                f"    [{iov.since[0]}:{iov.since[1]}, {end})  {p.kind:4} {p.size:>9,} B  "
                f"{iov.payload}"
            )


@app.command("diff")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="Old global tag.")],
    b: Annotated[str, typer.Argument(help="New global tag.")],
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """What changes from global tag A to B: IOVs added (+), removed (-), repointed (~).

    \b
    Example:
      hepstream conditions diff beam-2026-v1 beam-2026-v2 --db conditions
    """
    from hepstream.conditions.model import diff

    with _store(db, payloads) as store:
        rows = diff(store.global_tag(a), store.global_tag(b))
    if as_json:
        keys = ("change", "record", "since", "payload")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
        return
    for change, record, since, detail in rows:
        typer.echo(f"{change} {record} {since} {detail}")
    if not rows:
        typer.echo(f"{a} and {b} resolve identically", err=True)


@app.command("lock")
def lock_cmd(
    global_tag: Annotated[str, typer.Argument(help="The OPEN global tag to lock.")],
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
) -> None:
    """Lock a global tag: it never changes again, and jobs accept it.

    \b
    Example:
      hepstream conditions lock beam-2026-v1 --db conditions
    """
    with _store(db, payloads) as store:
        store.lock(global_tag)
    typer.echo(f"locked global tag {global_tag}", err=True)


@app.command("serve")
def serve_cmd(
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one.")] = 8080,
    access_log: Annotated[
        Path | None, typer.Option("--access-log", help="Append 'METHOD PATH STATUS' lines here.")
    ] = None,
) -> None:
    """Serve the database read-only over HTTP (put a caching proxy such as squid in front).

    Prints 'serving http://HOST:PORT' once listening; stop it with Ctrl-C or SIGTERM.

    \b
    Example:
      hepstream conditions serve --db conditions --port 8080
    """
    from hepstream.conditions.server import serve

    with _store(db, payloads) as store:
        serve(store, host, port, str(access_log) if access_log else None)


@app.command("snapshot")
def snapshot_cmd(
    global_tag: Annotated[str, typer.Argument(help="A LOCKED global tag.")],
    target: Annotated[Path, typer.Argument(help="New directory for the snapshot.")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="Take it from this http(s):// service instead of --db."),
    ] = None,
    db: DbOpt = _DB,
    payloads: PayloadsOpt = None,
    allow_open: Annotated[
        bool, typer.Option("--allow-open-tag", help="Snapshot an OPEN tag (tests only).")
    ] = False,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Payload cache for --from (default: user's).")
    ] = None,
) -> None:
    """Write one global tag's metadata and payloads to TARGET for jobs with no network.

    Jobs then use it with 'hepstream run ... --conditions TARGET --global-tag NAME'.

    \b
    Example:
      hepstream conditions snapshot beam-2026-v1 snapshots/beam-2026-v1 --db conditions
    """

    from hepstream.conditions.client import LocalSource, open_source
    from hepstream.conditions.snapshot import write_snapshot

    def progress(done: int, total: int) -> None:  # on a terminal: a counter on one line
        print(f"\rsnapshot: {done}/{total} payloads", end="\n" if done == total else "",
              file=sys.stderr, flush=True)  # fmt: skip

    src = open_source(source, cache) if source else LocalSource(_store(db, payloads))
    try:
        gt = write_snapshot(
            src, global_tag, target, allow_open, progress if sys.stderr.isatty() else None
        )
    finally:
        if isinstance(src, LocalSource):
            src.store.close()
        else:
            getattr(src, "close", lambda: None)()
    typer.echo(f"snapshot of {gt.name}: {len(gt.payloads)} payloads in {target}", err=True)
