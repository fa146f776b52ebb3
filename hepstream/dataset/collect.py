"""Collect a dataset: its jobs' reports as one dataset report, its outputs merged.

:func:`job_rows` is the I/O edge (reports, submissions, file times); :func:`summarize`
is pure: per site and engine, jobs, events, events/s and KB/s per job (mean, spread),
CPU efficiency, bytes read through the site cache vs from the origin, failures; the
missing and failed jobs and the one command that resubmits exactly those.
"""

from __future__ import annotations

import json
import shlex
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import uproot

from hepstream.dataset.record import Dataset, read_report
from hepstream.errors import InputError
from hepstream.hists.plot import pyplot, save_png
from hepstream.job.writer import OutputWriter
from hepstream.report import write_json_atomic


@dataclass(frozen=True)
class JobRow:
    """One job as collect sees it."""

    name: str
    engine: str
    #: ok | failed | missing | damaged (its report cannot be read: ``error`` says why;
    #: counted as failed)
    status: str
    expected_events: int
    site: str = ""
    events: int = 0
    events_selected: int = 0
    bytes_read: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    events_per_s: float = 0.0
    kb_per_s: float = 0.0
    error: str | None = None
    #: When the job ended (its report's modification time), for the throughput plot.
    ended_at: float = 0.0
    #: Bytes its reads got from the site cache / from the origin directly (0 in reports
    #: written before hepstream had site caches).
    cache_bytes: int = 0
    origin_bytes: int = 0


@dataclass(frozen=True)
class GroupStats:
    """Jobs of one site on one engine."""

    site: str
    engine: str
    jobs: int
    ok: int
    failed: int
    events: int
    events_per_s_mean: float
    events_per_s_spread: float
    kb_per_s_mean: float
    kb_per_s_spread: float
    #: CPU seconds over wall seconds, summed over the group's ok jobs (>1: threads).
    cpu_efficiency: float
    #: Bytes the group's jobs (every job with a report, failed ones too: they crossed the
    #: network as well) read through the site cache, and from the origin directly (no
    #: cache, a fallback, short answers asked again). The jobs' reports know only their
    #: side of the cache: what the cache itself fetched from the origin to answer them is
    #: known to the cache alone (``hepstream cache status``).
    cache_bytes: int = 0
    origin_bytes: int = 0


@dataclass(frozen=True)
class DatasetReport:
    dataset: str
    jobs: int
    ok: int
    failed: list[str]
    missing: list[str]
    events_read: int
    events_expected: int
    events_selected: int
    #: True when every job is ok and each read exactly the entries the split gave it.
    events_add_up: bool
    groups: list[GroupStats] = field(default_factory=list)
    resubmit: str | None = None
    #: Each failed (or damaged) job's error line, by name: what to fix before resubmitting.
    errors: dict[str, str] = field(default_factory=dict)
    #: The merged histograms and cut flow (:mod:`hepstream.dataset.histograms`): where they
    #: are, ``complete`` only when every job is in them; None when no job filled any.
    histograms: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"


def job_rows(dataset: Dataset) -> list[JobRow]:
    """Each job's report read back (missing when it has none, damaged when it cannot be
    read as a report)."""
    engines = dataset.engine_of()
    rows = []
    for job in dataset.jobs:
        engine = engines.get(job.name, "-")
        path = Path(str(job.spec.report))
        try:
            report = read_report(path)
        except InputError as err:
            rows.append(JobRow(job.name, engine, "damaged", job.events, site="-", error=str(err)))
            continue
        if report is None:
            rows.append(JobRow(job.name, engine, "missing", job.events))
            continue
        try:
            ended = path.stat().st_mtime
        except OSError:
            ended = 0.0
        try:
            moved = [_bytes_field(path, report, name) for name in ("cache_bytes", "origin_bytes")]
        except InputError as err:
            rows.append(JobRow(job.name, engine, "damaged", job.events, site="-", error=str(err)))
            continue
        rows.append(
            JobRow(
                job.name,
                engine,
                "ok" if report.get("status") == "ok" else "failed",
                job.events,
                site=report["site"],
                events=report["events_read"],
                events_selected=report["events_selected"],
                bytes_read=report["bytes_read"],
                wall_s=float(report["wall_s"]),
                cpu_s=float(report["cpu_s"]),
                events_per_s=float(report["events_per_s"]),
                kb_per_s=float(report["kb_per_s"]),
                error=report["error"],
                ended_at=ended,
                cache_bytes=moved[0],
                origin_bytes=moved[1],
            )
        )
    return rows


def _bytes_field(path: Path, report: dict[str, Any], name: str) -> int:
    """A byte count of ``report`` that older reports lack (then 0); an InputError naming
    the report when it holds something else."""
    value = report.get(name, 0)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InputError(f"{path}: {name} is {value!r:.40}, not a byte count")
    return value


def _spread(values: Sequence[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: Sequence[JobRow], dataset_dir: str) -> DatasetReport:
    """The dataset report of ``rows`` (pure)."""
    groups: dict[tuple[str, str], list[JobRow]] = {}
    for row in rows:
        if row.status != "missing":
            groups.setdefault((row.site, row.engine), []).append(row)
    stats = []
    for (site, engine), members in sorted(groups.items()):
        ok = [r for r in members if r.status == "ok"]
        eps = [r.events_per_s for r in ok]
        kbs = [r.kb_per_s for r in ok]
        wall = sum(r.wall_s for r in ok)
        stats.append(
            GroupStats(
                site,
                engine,
                len(members),
                len(ok),
                len(members) - len(ok),
                sum(r.events for r in ok),
                round(statistics.fmean(eps), 1) if eps else 0.0,
                round(_spread(eps), 1),
                round(statistics.fmean(kbs), 1) if kbs else 0.0,
                round(_spread(kbs), 1),
                round(sum(r.cpu_s for r in ok) / wall, 3) if wall else 0.0,
                sum(r.cache_bytes for r in members),
                sum(r.origin_bytes for r in members),
            )
        )
    failed = [r.name for r in rows if r.status in ("failed", "damaged")]
    errors = {
        r.name: r.error or "its report names no error"
        for r in rows
        if r.status in ("failed", "damaged")
    }
    missing = [r.name for r in rows if r.status == "missing"]
    ok_rows = [r for r in rows if r.status == "ok"]
    return DatasetReport(
        dataset=dataset_dir,
        jobs=len(rows),
        ok=len(ok_rows),
        failed=failed,
        missing=missing,
        events_read=sum(r.events for r in ok_rows),
        events_expected=sum(r.expected_events for r in rows),
        events_selected=sum(r.events_selected for r in ok_rows),
        events_add_up=not failed
        and not missing
        and all(r.events == r.expected_events for r in ok_rows),
        groups=stats,
        resubmit=resubmit_command(dataset_dir, rows, failed + missing),
        errors=errors,
    )


def resubmit_command(dataset_dir: str, rows: Sequence[JobRow], names: Sequence[str]) -> str | None:
    """``hepstream dataset submit DIR --engine E --jobs a,b``: exactly ``names`` again.

    The engine is the one that ran most of them (``local`` if none ever ran).
    """
    if not names:
        return None
    wanted = set(names)
    engines = [r.engine for r in rows if r.name in wanted and r.engine != "-"]
    engine = max(set(engines), key=engines.count) if engines else "local"
    ordered = [r.name for r in rows if r.name in wanted]
    argv = [
        "hepstream",
        "dataset",
        "submit",
        dataset_dir,
        "--engine",
        engine,
        "--jobs",
        ",".join(ordered),
    ]
    return shlex.join(argv)


#: Failed jobs whose error line the table shows (a dataset of 500 jobs failing for one
#: reason needs a few to see it, not 500 lines).
_ERRORS_SHOWN = 20


def table(report: DatasetReport) -> str:
    """The terminal table, whole at any width (plain columns sized to their content).

    ``cache MB`` / ``origin MB``: what the site's jobs read through its cache / from the
    origin directly, from their reports; what the cache itself fetched from the origin
    only the cache knows (``hepstream cache status``)."""
    header = (
        "site",
        "engine",
        "jobs",
        "ok",
        "failed",
        "events",
        "events/s/job",
        "KB/s/job",
        "CPU eff",
        "cache MB",
        "origin MB",
    )
    body = [
        (
            g.site,
            g.engine,
            str(g.jobs),
            str(g.ok),
            str(g.failed),
            f"{g.events:,}",
            f"{g.events_per_s_mean:,.0f} ± {g.events_per_s_spread:,.0f}",
            f"{g.kb_per_s_mean:,.0f} ± {g.kb_per_s_spread:,.0f}",
            f"{g.cpu_efficiency:.2f}",
            f"{g.cache_bytes / 1e6:,.1f}",
            f"{g.origin_bytes / 1e6:,.1f}",
        )
        for g in report.groups
    ]
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in (header, *body)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"{report.ok}/{report.jobs} jobs ok; events {report.events_read:,} read of "
        f"{report.events_expected:,} expected, {report.events_selected:,} selected; "
        + ("counts add up" if report.events_add_up else "counts do NOT add up")
    )
    if report.failed:
        lines.append(f"failed:  {', '.join(report.failed)}")
        shown = report.failed[:_ERRORS_SHOWN]
        lines += [f"  {name}: {report.errors.get(name, '?')}" for name in shown]
        if len(report.failed) > len(shown):
            lines.append(f"  ... and {len(report.failed) - len(shown)} more (--json lists all)")
    if report.missing:
        lines.append(f"missing: {', '.join(report.missing)}")
    if report.resubmit:
        lines.append(f"resubmit: {report.resubmit}")
    return "\n".join(lines) + "\n"


# -- outputs -----------------------------------------------------------------------


def ok_outputs(dataset: Dataset, rows: Sequence[JobRow]) -> list[Path]:
    ok = {r.name for r in rows if r.status == "ok"}
    return [Path(j.spec.output) for j in dataset.jobs if j.name in ok]


def merge_outputs(outputs: Sequence[Path], target: str | Path, tree: str = "events") -> int:
    """Concatenate job outputs (Parquet or ROOT) in job order into ``target`` atomically;
    returns the events written. The format of ``target`` follows its suffix."""
    if not outputs:
        raise InputError("no finished job outputs to merge; run the jobs first")
    writer = OutputWriter(target, tree=tree)
    try:
        for path in outputs:
            if path.suffix == ".parquet":
                array = ak.from_parquet(path)
            else:
                with uproot.open(path) as file:
                    array = file[tree].arrays()
            writer.write({name: array[name] for name in array.fields})
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return writer.entries


def write_manifest(dataset: Dataset, rows: Sequence[JobRow], tree: str = "events") -> Path:
    """``DIR/manifest.json``: the ok outputs in job order, with their events, in forms
    uproot and awkward open directly; Parquet outputs also get ``outputs/_metadata``
    (``ak.from_parquet(DIR / "outputs")`` then reads them as one array)."""
    outputs = ok_outputs(dataset, rows)
    by_name = {r.name: r for r in rows}
    files = [
        {
            "job": j.name,
            "path": str(Path(j.spec.output).resolve()),
            "events_selected": by_name[j.name].events_selected,
        }
        for j in dataset.jobs
        if by_name[j.name].status == "ok"
    ]
    body: dict[str, Any] = {"files": files}
    parquet = [p for p in outputs if p.suffix == ".parquet"]
    if parquet:
        ak.to_parquet_dataset(str(dataset.path / "outputs"), filenames=[p.name for p in parquet])
        body["awkward"] = {"from_parquet": str((dataset.path / "outputs").resolve())}
    roots = [str(p.resolve()) for p in outputs if p.suffix == ".root"]
    if roots:
        body["uproot"] = {path: tree for path in roots}  # uproot.concatenate(manifest["uproot"])
    target = dataset.path / "manifest.json"
    write_json_atomic(target, json.dumps(body, indent=1) + "\n")
    return target


# -- plots ---------------------------------------------------------------------------


def throughput_series(
    rows: Sequence[JobRow], step_s: float = 1.0
) -> tuple[list[float], list[float]]:
    """Aggregate MB/s over time: each ok job reads at its mean rate from end - wall to end."""
    spans = [
        (r.ended_at - r.wall_s, r.ended_at, r.bytes_read / 1e6 / r.wall_s)
        for r in rows
        if r.status == "ok" and r.wall_s > 0 and r.ended_at
    ]
    if not spans:
        return [], []
    t0 = min(s for s, _, _ in spans)
    t1 = max(e for _, e, _ in spans)
    steps = max(1, int((t1 - t0) / step_s) + 1)
    times = [i * step_s for i in range(steps + 1)]
    rates = [sum(rate for s, e, rate in spans if s <= t0 + t < e) for t in times]
    return times, rates


def plot(report: DatasetReport, rows: Sequence[JobRow], prefix: str) -> list[Path]:
    """``PREFIX-sites.png`` (events/s per job per site, the paper's figure 3) and
    ``PREFIX-throughput.png`` (aggregate MB/s over time, figure 4)."""
    plt = pyplot()
    written = []
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{g.site}\n({g.engine})" for g in report.groups]
    ax.bar(
        labels,
        [g.events_per_s_mean for g in report.groups],
        yerr=[g.events_per_s_spread for g in report.groups],
        capsize=4,
    )
    ax.set_ylabel("events/s per job (mean ± spread)")
    ax.set_title(f"{Path(report.dataset).name}: rate per site")
    fig.tight_layout()
    path = Path(f"{prefix}-sites.png")
    save_png(plt, fig, path)
    written.append(path)

    times, rates = throughput_series(rows)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.step(times, rates, where="post")
    ax.set_xlabel("seconds since the first job started")
    ax.set_ylabel("aggregate MB/s read")
    ax.set_title(f"{Path(report.dataset).name}: throughput")
    fig.tight_layout()
    path = Path(f"{prefix}-throughput.png")
    save_png(plt, fig, path)
    written.append(path)
    return written
