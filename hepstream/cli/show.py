"""``hepstream show PATH``: a job's or a dataset's output at a glance, without opening Python.

What a file holds (its tree, its events, its columns with their awkward types, the other
objects a ROOT output carries) and its first events as a table. Only metadata and the first
``-n`` entries are read (uproot's ``entry_stop``, pyarrow's batches), so the size of the
output does not matter. A dataset (its directory or its ``dataset.json``) is shown as its ok
jobs' outputs in job order, as ``hepstream collect`` finds them, with the jobs that are
missing or failed named.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import awkward as ak
import typer

from hepstream.dataset.collect import job_rows
from hepstream.dataset.record import Dataset
from hepstream.errors import ConfigError, HepstreamError, InputError
from hepstream.hists.store import STATE_KEY
from hepstream.io.urls import is_remote
from hepstream.root.header import expected_size

#: The classes uproot reads as a table of events.
TREE_CLASSES = ("TTree", "ROOT::RNTuple")
#: ``fBEGIN`` of every ROOT file (ROOT's ``kBEGIN``): the first key's offset, after the header.
ROOT_BEGIN = 100
#: Items of a list shown in a table cell before ``…``.
LIST_ITEMS = 3
#: Outputs and failed or missing jobs listed one per line before the rest is counted.
LISTED = 10
#: Parquet key-value metadata that pyarrow and awkward write for themselves.
_OWN_PARQUET_KEYS = ("ARROW:schema", "ak:parameters", "pandas")
#: Awkward types whose cells are right-aligned.
_NUMBERS = frozenset(
    {"bool", *(f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)), "float32", "float64"}
)
_GIVE = "give a job's output (.root or .parquet) or a dataset directory"


@dataclass(frozen=True)
class OutputFile:
    """One output file as its metadata describes it."""

    path: Path
    #: ``root`` or ``parquet``
    format: str
    #: The tree holding the events (ROOT); None for Parquet (one table, no name).
    tree: str | None
    #: ``TTree`` or ``RNTuple`` (ROOT); None for Parquet.
    tree_class: str | None
    events: int
    #: Everything else the file holds: (name, class), e.g. ("mass", "TH1D").
    also: tuple[tuple[str, str], ...] = ()
    #: The dataset job that wrote it.
    job: str | None = None


@dataclass(frozen=True)
class JobProblem:
    """A dataset job without an output to show, and why."""

    job: str
    #: ``missing`` (no report, or its output is gone) or ``failed``
    status: str
    reason: str


@dataclass
class Look:
    """Everything ``show`` prints."""

    path: str
    files: list[OutputFile]
    #: (name, awkward type of one event's value), in the file's order.
    columns: list[tuple[str, str]]
    #: The first events, fields as in ``columns``.
    first: ak.Array
    #: For a dataset: its jobs, and those without an output.
    dataset_jobs: int | None = None
    problems: list[JobProblem] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(f.events for f in self.files)


# -- reading -----------------------------------------------------------------------------


@contextmanager
def _reading(path: Path, what: str) -> Iterator[None]:
    """Any failure of uproot or pyarrow on ``path`` as one line naming the file."""
    try:
        yield
    except HepstreamError:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise InputError(
            f"{path}: cannot read {what} ({type(err).__name__}: {first}); the file may be "
            f"damaged, rerun the job or copy it again"
        ) from None


def file_format(path: Path) -> str:
    """``root`` or ``parquet`` from the file's own bytes; an InputError for anything else
    (missing, empty, truncated ROOT, neither format)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(20)
            if size >= 8:
                handle.seek(size - 4)
            tail = handle.read(4)
    except FileNotFoundError:
        raise InputError(f"output not found: {path}; check the path ({_GIVE})") from None
    except OSError as err:
        raise InputError(f"{path} cannot be read ({err.strerror}); check its permissions") from None
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes); rerun the job that wrote it")
    if head[:4] == b"root" and int.from_bytes(head[8:12], "big") == ROOT_BEGIN:
        end = expected_size(head)
        if end is not None and size < end:
            raise InputError(
                f"{path} is truncated: {size:,} bytes of the {end:,} its header expects "
                f"({100 * size / end:.0f} %); rerun the job or copy it again"
            )
        return "root"
    if head[:4] == b"PAR1":
        if tail != b"PAR1":
            raise InputError(
                f"{path} is a truncated Parquet file (no footer); rerun the job or copy it again"
            )
        return "parquet"
    raise InputError(
        f"{path} is neither a ROOT nor a Parquet file (it starts with {head[:8]!r}); {_GIVE}"
    )


def describe(path: Path, tree: str | None = None, job: str | None = None) -> OutputFile:
    """``path``'s metadata: format, tree, events, other objects (no event is read)."""
    kind = file_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        with _reading(path, "its Parquet footer"):
            meta = pq.ParquetFile(path).metadata
            keys = [k.decode(errors="replace") for k in (meta.metadata or {})]
            also = tuple((k, "key-value metadata") for k in keys if k not in _OWN_PARQUET_KEYS)
            return OutputFile(path, "parquet", None, None, int(meta.num_rows), also, job)
    import uproot

    with _reading(path, "its keys"), uproot.open(path) as file:
        classes = file.classnames(cycle=False)
    trees = [name for name, cls in classes.items() if cls in TREE_CLASSES]
    if tree is None:
        if not trees and STATE_KEY in classes:  # a --histograms-only output
            raise InputError(
                f"{path} holds histograms and a cut flow, no events (a --histograms-only "
                f"output); look at them with: hepstream hist show {path}"
            )
        if not trees:
            held = ", ".join(f"{n} ({c})" for n, c in classes.items()) or "nothing"
            raise InputError(
                f"{path} holds no tree of events (it holds {held}); {_GIVE} "
                f"with the events hepstream wrote"
            )
        if len(trees) > 1:
            raise ConfigError(
                f"{path} holds {len(trees)} trees ({', '.join(trees)}); choose one with --tree"
            )
        tree = trees[0]
    elif classes.get(tree) not in TREE_CLASSES:
        raise InputError(
            f"{path} holds no tree {tree!r} (its trees: {', '.join(trees) or 'none'}); "
            f"check the name"
        )
    with _reading(path, f"tree {tree!r}"), uproot.open(path) as file:
        events = int(file[tree].num_entries)
    also = tuple(
        (name, cls) for name, cls in classes.items() if name != tree and cls != "TDirectory"
    )
    cls = classes[tree].removeprefix("ROOT::")
    return OutputFile(path, "root", tree, cls, events, also, job)


def read_first(output: OutputFile, n: int, columns: Sequence[str] | None = None) -> ak.Array:
    """The first ``n`` events of ``output`` (all of them when it has fewer), ``columns``
    only when given; only what those entries need is read."""
    stop = min(n, output.events)
    if output.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        with _reading(output.path, f"its rows 0-{stop}" if stop else "its schema"):
            reader = pq.ParquetFile(output.path)
            wanted = list(columns) if columns is not None else None
            groups: list[int] = []  # only the row groups that hold the first `stop` rows
            held = 0
            while held < stop and len(groups) < reader.metadata.num_row_groups:
                held += reader.metadata.row_group(len(groups)).num_rows
                groups.append(len(groups))
            batches, rows = [], 0
            if stop:
                for batch in reader.iter_batches(
                    batch_size=stop, row_groups=groups, columns=wanted, use_threads=False
                ):
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows >= stop:
                        break
            schema = reader.schema_arrow
            if wanted is not None:
                schema = pa.schema([schema.field(name) for name in wanted])
            table = pa.Table.from_batches(batches, schema=schema).slice(0, stop)
            return ak.from_arrow(table)
    import uproot

    what = f"tree {output.tree!r}" + (f", entries 0-{stop}" if stop else "")
    with _reading(output.path, what), uproot.open(output.path) as file:
        events = file[output.tree]
        if columns is None:
            return events.arrays(entry_stop=stop)
        return events.arrays(filter_name=list(columns), entry_stop=stop)[list(columns)]


def column_names(output: OutputFile) -> list[str]:
    """The columns of ``output``, from its metadata."""
    if output.format == "parquet":
        import pyarrow.parquet as pq

        with _reading(output.path, "its Parquet schema"):
            return list(pq.ParquetFile(output.path).schema_arrow.names)
    import uproot

    with _reading(output.path, f"tree {output.tree!r}"), uproot.open(output.path) as file:
        return list(file[output.tree].keys(recursive=False))


def column_types(array: ak.Array) -> list[tuple[str, str]]:
    """Each field of ``array`` with the awkward type of one event's value."""
    return [(name, str(array[name].type.content)) for name in array.fields]


def _pick_columns(wanted: str | None, first: OutputFile) -> list[str] | None:
    """``--columns a,b`` checked against what ``first`` holds."""
    if wanted is None:
        return None
    names = [name.strip() for name in wanted.split(",") if name.strip()]
    if not names:
        raise ConfigError("--columns is empty; give column names separated by commas")
    have = column_names(first)
    unknown = [name for name in names if name not in have]
    if unknown:
        raise ConfigError(
            f"--columns: {first.path} has no column {', '.join(map(repr, unknown))}; "
            f"its columns are {', '.join(have)}"
        )
    return names


def look(
    path: str | Path, n: int = 10, columns: str | None = None, tree: str | None = None
) -> Look:
    """What ``hepstream show`` prints for ``path``: an output file, a dataset directory or
    its ``dataset.json``."""
    if is_remote(str(path)):
        raise ConfigError(f"{path}: show reads local files; copy it here first (xrdcp {path} .)")
    if n < 0:
        raise ConfigError(f"-n {n}: give 0 or more events")
    where = Path(path)
    if where.is_dir() or where.name == "dataset.json":
        return _look_dataset(where if where.is_dir() else where.parent, n, columns, tree)
    output = describe(where, tree)
    names = _pick_columns(columns, output)
    first = read_first(output, n, names)
    return Look(str(path), [output], column_types(first), first)


def _look_dataset(directory: Path, n: int, columns: str | None, tree: str | None) -> Look:
    if not (directory / "dataset.json").is_file():
        raise InputError(f"{directory} is a directory but not a dataset (no dataset.json); {_GIVE}")
    dataset = Dataset.load(directory)
    rows = {row.name: row for row in job_rows(dataset)}
    files: list[OutputFile] = []
    problems: list[JobProblem] = []
    for job in dataset.jobs:
        row = rows[job.name]
        output = Path(job.spec.output)
        if row.status == "missing":
            problems.append(JobProblem(job.name, "missing", "no report yet"))
        elif row.status != "ok":
            problems.append(JobProblem(job.name, "failed", row.error or "no error line"))
        elif not output.exists():
            problems.append(
                JobProblem(job.name, "missing", f"its report says ok but {output} is gone")
            )
        else:
            files.append(describe(output, tree or dataset.tree, job.name))
    if not files:
        raise InputError(
            f"{directory}: none of its {len(dataset.jobs)} jobs has an output yet "
            f"({_problem_counts(problems)}); run 'hepstream dataset submit {directory}' "
            f"and see 'hepstream collect {directory}'"
        )
    names = _pick_columns(columns, files[0])
    parts: list[ak.Array] = []
    left = n
    for found in files:
        if left <= 0 and parts:
            break
        part = read_first(found, left, names)
        parts.append(part)
        left -= len(part)
    first = parts[0] if len(parts) == 1 else ak.concatenate(parts)
    return Look(str(directory), files, column_types(parts[0]), first, len(dataset.jobs), problems)


def _problem_counts(problems: Sequence[JobProblem]) -> str:
    counts = {s: sum(p.status == s for p in problems) for s in ("missing", "failed")}
    return ", ".join(f"{c} {s}" for s, c in counts.items() if c) or "no jobs"


# -- showing ---------------------------------------------------------------------------


def cell(value: Any) -> str:
    """One value as a short table cell: lists cut to :data:`LIST_ITEMS` items, with their
    length, ``[1.2, 3.4, 5.6, …] (7)``."""
    if isinstance(value, list):
        items = ", ".join(_item(v) for v in value[:LIST_ITEMS])
        more = ", …" if len(value) > LIST_ITEMS else ""
        return f"[{items}{more}] ({len(value)})"
    return _item(value)


def _item(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        text = f"{value:.4g}"
        return text if any(c in text for c in ".enai") else text + ".0"  # 1.0 is no int
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_item(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return cell(value)
    if isinstance(value, str | bytes):
        text = repr(value)
        return text if len(text) <= 24 else text[:23] + "…"
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (JSON has no word for them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


def as_dict(shown: Look) -> dict[str, Any]:
    """The ``--json`` document."""
    first = shown.files[0]
    return {
        "path": shown.path,
        "kind": "dataset" if shown.dataset_jobs is not None else first.format,
        "format": first.format,
        "tree": first.tree,
        "tree_class": first.tree_class,
        "events": shown.events,
        "files": [{"path": str(f.path), "job": f.job, "events": f.events} for f in shown.files],
        "also": [{"name": n, "class": c} for n, c in first.also],
        "columns": [{"name": n, "type": t} for n, t in shown.columns],
        "first": _finite(ak.to_list(shown.first)),
        "jobs": shown.dataset_jobs,
        "missing": [
            {"job": p.job, "reason": p.reason} for p in shown.problems if p.status == "missing"
        ],
        "failed": [
            {"job": p.job, "error": p.reason} for p in shown.problems if p.status == "failed"
        ],
    }


def _holds(output: OutputFile, count: str = "") -> str:
    """``ROOT, tree 'events' (TTree)``; with ``count``, ``2 ROOT outputs, tree …``."""
    kind = "Parquet" if output.format == "parquet" else "ROOT"
    head = f"{count} {kind} outputs" if count else kind
    if output.format == "parquet":
        return f"{head} (one table{' each' if count else ''}, no tree name)"
    return f"{head}, tree '{output.tree}' ({output.tree_class})"


def summary_lines(shown: Look) -> list[str]:
    """The text above the table: files, tree, events, other objects, columns."""
    first = shown.files[0]
    lines = []
    if shown.dataset_jobs is None:
        lines.append(f"{first.path}: {_holds(first)}, {first.events:,} events")
    else:
        lines.append(
            f"{shown.path}: dataset of {shown.dataset_jobs} jobs; "
            f"{_holds(first, str(len(shown.files)))}, {shown.events:,} events in total"
        )
        for status in ("missing", "failed"):
            these = [p for p in shown.problems if p.status == status]
            if these:
                lines.append(f"{status} ({len(these)}):")
                lines += [f"  {p.job}: {p.reason}" for p in these[:LISTED]]
                if len(these) > LISTED:
                    lines.append(f"  … and {len(these) - LISTED} more (--json lists them)")
        lines.append("outputs:")
        width = max(len(str(f.path)) for f in shown.files[:LISTED])
        lines += [
            f"  {f.job}  {str(f.path).ljust(width)}  {f.events:>12,} events"
            for f in shown.files[:LISTED]
        ]
        if len(shown.files) > LISTED:
            lines.append(f"  … and {len(shown.files) - LISTED} more (--json lists them)")
    if first.also:
        lines.append("also: " + ", ".join(f"{n} ({c})" for n, c in first.also))
    lines.append(f"columns ({len(shown.columns)}):")
    width = max((len(n) for n, _ in shown.columns), default=0)
    lines += [f"  {name.ljust(width)}  {kind}" for name, kind in shown.columns]
    return lines


def events_table(shown: Look) -> Any:
    """The first events as a rich table: the entry (and job), then one column per field."""
    from rich.table import Table

    table = Table(
        title=f"first {len(shown.first):,} of {shown.events:,} events",
        title_justify="left",
    )
    table.add_column("entry", justify="right", no_wrap=True)
    jobs: list[str] = []
    if shown.dataset_jobs is not None:
        table.add_column("job", no_wrap=True)
        for f in shown.files:
            jobs += [f.job or ""] * f.events
            if len(jobs) >= len(shown.first):
                break
    for name, kind in shown.columns:
        table.add_column(name, justify="right" if kind in _NUMBERS else "left")
    for i, event in enumerate(ak.to_list(shown.first)):
        row = [str(i), *([jobs[i]] if jobs else [])]
        row += [cell(event[name]) for name, _ in shown.columns]
        table.add_row(*row)
    return table


def _console() -> Any:
    """stdout's console: full width when piped, so rich never cuts a table."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=10_000, soft_wrap=True)


def show(
    path: Annotated[
        str,
        typer.Argument(
            help="A job's output (.root or .parquet), a dataset directory or its dataset.json."
        ),
    ],
    events: Annotated[
        int, typer.Option("-n", "--events", min=0, help="Events to print (from the first).")
    ] = 10,
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="Only these columns, comma separated (default: all)."),
    ] = None,
    tree: Annotated[
        str | None,
        typer.Option("--tree", help="The tree to show, in a ROOT file holding several."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output on stdout.")
    ] = False,
) -> None:
    """Print an output's tree, events, columns with their types, and its first events.

    Reads only the file's metadata and the first -n events, however large
    the output. A dataset shows its ok jobs' outputs in job order and names
    its missing and failed jobs.

    \b
    Example:
      hepstream generate samples/ --events 20000
      hepstream run examples/tau1n.py samples/tau1n_mc_000.root -o out/tau1n.root
      hepstream show out/tau1n.root -n 5 --columns run,event,trk_p
      hepstream show ds/tau1n --json
    """

    shown = look(path, events, columns, tree)
    if as_json:
        typer.echo(json.dumps(as_dict(shown), indent=2))
        return
    typer.echo("\n".join(summary_lines(shown)))
    if len(shown.first):
        _console().print(events_table(shown))
