"""Turn pytest-benchmark's JSON into per-suite tables and the issue-4 targets table (Markdown).

Pure functions of the JSON document, so tests drive them with hand-made documents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Suites every full run reports, in the order they are rendered.
SUITES = ("kernels", "streaming", "endtoend", "longjob", "memory", "latency")
MB = 1e6  # decimal MB/s, like network links


@dataclass(frozen=True)
class Record:
    """One benchmark: its median seconds per round and the numbers it attached."""

    name: str
    median: float
    rounds: int
    info: dict[str, Any]

    @property
    def suite(self) -> str:
        return self.info.get("suite", "")

    @property
    def events_per_s(self) -> float:
        return self.info["events"] / self.median if self.median > 0 else 0.0


def records(doc: dict) -> list[Record]:
    """Every benchmark of a pytest-benchmark JSON document that carries a ``suite``."""
    out = []
    for bench in doc.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if "suite" in info:
            stats = bench["stats"]
            out.append(Record(bench["name"], stats["median"], stats["rounds"], info))
    return out


def _find(recs: list[Record], suite: str, **match) -> Record | None:
    for rec in recs:
        if rec.suite == suite and all(rec.info.get(k) == v for k, v in match.items()):
            return rec
    return None


def _rate(rec: Record | None) -> float | None:
    return rec.events_per_s if rec is not None else None


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom <= 0:
        return None
    return top / bottom


# -- targets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One issue-4 target: a measured number (usually a ratio) against a threshold."""

    name: str
    #: What the measured number is, for the table.
    measure: str
    #: The pass threshold; ``at_least`` says on which side of it a pass lies.
    threshold: float
    at_least: bool
    compute: Callable[[list[Record]], float | None]
    unit: str = "x"

    def evaluate(self, recs: list[Record]) -> tuple[float | None, str]:
        value = self.compute(recs)
        if value is None:
            return None, "not run"
        ok = value >= self.threshold if self.at_least else value < self.threshold
        return value, "pass" if ok else "miss"


def _kernel_per_event(recs: list[Record], kernel: str) -> float | None:
    rec = _find(recs, "kernels", kernel=kernel)
    return rec.median / rec.info["events"] if rec is not None else None


def _e2e(recs: list[Record], link: str) -> float | None:
    return _rate(_find(recs, "endtoend", link=link))


def _read(recs: list[Record], handler: str, link: str) -> float | None:
    return _rate(_find(recs, "streaming", handler=handler, link=link))


def _rss(recs: list[Record], scale: str) -> float | None:
    rec = _find(recs, "memory", scale=scale)
    return rec.info["peak_rss_mb"] if rec is not None else None


def _latency(recs: list[Record], run: int) -> float | None:
    rec = _find(recs, "latency")
    return rec.info[f"run{run}_first_chunk_s"] if rec is not None else None


#: The WAN delay the streaming targets are judged at.
FAR = "wan30ms"

TARGETS: tuple[Target, ...] = (
    Target(
        "numba >= 10x vectorized awkward",
        "awkward s/event / numba s/event",
        10.0, True,
        lambda r: _ratio(_kernel_per_event(r, "awkward"), _kernel_per_event(r, "numba")),
    ),
    Target(
        "numba >= 100x plain Python",
        "plain-Python plugin s/event / numba plugin s/event (both from the job's arrays)",
        100.0, True,
        lambda r: _ratio(_kernel_per_event(r, "python"), _kernel_per_event(r, "numba")),
    ),
    Target(
        "numba >= 100x the plain-Python loop alone (stricter)",
        "Python loop on lists prepared untimed s/event / numba plugin s/event",
        100.0, True,
        lambda r: _ratio(_kernel_per_event(r, "python-loop"), _kernel_per_event(r, "numba")),
    ),
    Target(
        "short job at 30 ms RTT >= 0.9x its zero-delay rate",
        "events/s at wan30ms / at wan0ms (same proxy), 2-file job",
        0.9, True,
        lambda r: _ratio(_e2e(r, FAR), _e2e(r, "wan0ms")),
    ),
    Target(
        "long job at 30 ms RTT >= 0.9x its zero-delay rate",
        "events/s at wan30ms / at wan0ms, 100-file job",
        0.9, True,
        lambda r: _ratio(
            _rate(_find(r, "longjob", link=FAR)), _rate(_find(r, "longjob", link="wan0ms"))
        ),
    ),
    Target(
        "job at 30 ms ahead of uproot XRootDSource",
        "job events/s / XRootDSource read events/s, both at wan30ms",
        1.0, True,
        lambda r: _ratio(_e2e(r, FAR), _read(r, "uproot-xrootd", FAR)),
    ),
    Target(
        "job at 30 ms ahead of uproot fsspec-xrootd",
        "job events/s / fsspec read events/s, both at wan30ms",
        1.0, True,
        lambda r: _ratio(_e2e(r, FAR), _read(r, "uproot-fsspec", FAR)),
    ),
    Target(
        "loopback root:// >= 0.9x local disk",
        "job events/s loopback / local",
        0.9, True,
        lambda r: _ratio(_e2e(r, "loopback"), _e2e(r, "local")),
    ),
    Target(
        "peak RSS flat from N to 10xN events",
        "peak RSS 10xN / peak RSS N (the 10 files read 10 times / once)",
        1.25, False,
        lambda r: _ratio(_rss(r, "10xN"), _rss(r, "N")),
    ),
    Target(
        "peak RSS < 1 GB",
        "peak RSS of the 10xN job",
        1024.0, False,
        lambda r: _rss(r, "10xN"),
        unit=" MB",
    ),
    Target(
        "warm start: first chunk < 1 s",
        "first_chunk_s of run 2 (numba cache warm)",
        1.0, False,
        lambda r: _latency(r, 2),
        unit=" s",
    ),
)  # fmt: skip


def evaluate(recs: list[Record]) -> list[tuple[Target, float | None, str]]:
    """Every target with its measured number (None when its suite did not run) and verdict."""
    return [(t, *t.evaluate(recs)) for t in TARGETS]


# -- Markdown -------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _link(info: dict) -> str:
    if info.get("rtt_ms") is None:
        return info["link"]
    bw = info.get("bandwidth_mbps")
    cap = f", {bw / 1000:g} Gbit/s" if bw else ""
    return f"WAN proxy {info['rtt_ms']:g} ms{cap}"


def _order(info: dict) -> tuple[int, float]:
    """Local disk, then loopback, then the WAN proxy by increasing RTT."""
    if info.get("rtt_ms") is None:
        return (0 if info["link"] == "local" else 1, 0.0)
    return (2, info["rtt_ms"])


def _kernels(recs: list[Record]) -> list[str]:
    numba = _kernel_per_event(recs, "numba")
    rows = []
    for rec in recs:
        per = rec.median / rec.info["events"]
        rows.append([
            rec.info["kernel"], f"{rec.info['events']:,}", _num(rec.median * 1e3, 2),
            _num(per * 1e9, 1), _num(1 / per), _num(_ratio(per, numba), 1), str(rec.rounds),
        ])  # fmt: skip
    notes = [f"- {r.info['kernel']}: {r.info['note']}" for r in recs if "note" in r.info]
    return [
        *_table(["kernel", "events", "median ms", "ns/event", "events/s", "x numba", "rounds"],
                rows),
        *(["", *notes] if notes else []),
    ]  # fmt: skip


def _streaming(recs: list[Record]) -> list[str]:
    rows = []
    for rec in sorted(recs, key=lambda r: (_order(r.info), r.info["handler"])):
        info = rec.info
        rows.append([
            info["handler"], _link(info), f"{info['events']:,}", _num(info["bytes"] / MB, 1),
            _num(rec.median, 3), _num(rec.events_per_s), _num(info["bytes"] / MB / rec.median, 1),
            str(rec.rounds),
        ])  # fmt: skip
    return _table(
        ["handler", "link", "events", "MB (compressed)", "median s", "events/s", "MB/s", "rounds"],
        rows,
    )


def _endtoend(recs: list[Record]) -> list[str]:
    rows = []
    for rec in sorted(recs, key=lambda r: _order(r.info)):
        info = rec.info
        rows.append([
            _link(info), f"{info['events']:,}", f"{info['selected']:,}", _num(rec.median, 3),
            _num(rec.events_per_s), _num(info["bytes"] / 1024 / rec.median),
            _num(info["io_wait_s"], 3), str(rec.rounds),
        ])  # fmt: skip
    return _table(
        ["input", "events", "selected", "median s", "events/s", "KB/s", "io_wait s (last)",
         "rounds"],
        rows,
    )  # fmt: skip


def _memory(recs: list[Record]) -> list[str]:
    rows = [
        [r.info["scale"], str(r.info["files"]), f"{r.info['events']:,}",
         _num(r.info["peak_rss_mb"], 1), r.info.get("rss_source", "-"),
         _num(r.info.get("report_peak_rss_mb"), 1), _num(r.info["cache_peak_bytes"] / MB, 1),
         _num(r.info["process_wall_s"], 2)]
        for r in sorted(recs, key=lambda r: r.info["events"])
    ]  # fmt: skip
    return _table(
        ["input", "files", "events", "peak RSS MB", "measured by", "report peak_rss_mb",
         "cache peak MB", "process s"],
        rows,
    )  # fmt: skip


def _latency_table(recs: list[Record]) -> list[str]:
    rows = []
    for rec in recs:
        for run, label in ((1, "1 (fresh NUMBA_CACHE_DIR)"), (2, "2 (same cache)")):
            rows.append([
                label, _num(rec.info[f"run{run}_first_chunk_s"], 3),
                _num(rec.info[f"run{run}_wall_s"], 3), _num(rec.info[f"run{run}_process_s"], 3),
                str(rec.info["pairs"]),
            ])  # fmt: skip
    return _table(["run", "first_chunk_s (median)", "job wall_s", "process wall s", "pairs"], rows)


_SECTIONS: dict[str, tuple[str, Callable[[list[Record]], list[str]]]] = {
    "kernels": ("Selection kernels (events in memory)", _kernels),
    "streaming": ("Streaming reads of one file (plugin branches, job chunking)", _streaming),
    "endtoend": ("End-to-end jobs (`run_job`, tau1n plugin)", _endtoend),
    "longjob": ("Long jobs (the 10 files read 10 times: 100 files, WAN proxy)", _endtoend),
    "memory": ("Peak memory (`hepstream run` subprocess over root:// loopback)", _memory),
    "latency": ("First-chunk latency (`hepstream run` subprocesses)", _latency_table),
}


def targets_table(recs: list[Record]) -> list[str]:
    rows = []
    for target, value, verdict in evaluate(recs):
        need = f"{'>=' if target.at_least else '<'} {target.threshold:g}{target.unit}"
        measured = "-" if value is None else f"{value:,.2f}{target.unit}"
        rows.append([target.name, target.measure, measured, need, verdict])
    return _table(["target", "measured as", "measured", "need", "result"], rows)


def render(doc: dict, mode: str = "full") -> str:
    """The whole Markdown report of one bench run."""
    recs = records(doc)
    machine = doc.get("machine_info", {})
    cpu = machine.get("cpu", {})
    lines = [
        "# hepstream benchmarks",
        "",
        f"{doc.get('datetime', '')} · {machine.get('node', '')} · "
        f"{cpu.get('brand_raw', '?')} · {cpu.get('count', '?')} cores · "
        f"Python {machine.get('python_version', '?')} · mode {mode}",
        "",
        "Rates use the median of the timed rounds; both sides of every ratio come from this run.",
        "",
        "## Targets",
        "",
        *targets_table(recs),
    ]
    for suite in SUITES:
        mine = [r for r in recs if r.suite == suite]
        if not mine:
            continue
        heading, table = _SECTIONS[suite]
        lines += ["", f"## {heading}", "", *table(mine)]
    return "\n".join(lines) + "\n"


# -- conditions suite (bench/test_conditions.py): kept in one block ----------------------


def _conditions_cost(recs: list[Record]) -> float | None:
    """Events/s lost to conditions in %, floored at 0 (a faster run is noise, not a gain)."""
    rec = _find(recs, "conditions", kind="lookup")
    return max(0.0, 100.0 * rec.info["rate_cost"]) if rec is not None else None


def _conditions_table(recs: list[Record]) -> list[str]:
    rows = []
    lat, look = _find(recs, "conditions", kind="latency"), _find(recs, "conditions", kind="lookup")
    if lat is not None:
        for kind in ("cold", "warm"):
            rows.append([f"first chunk, {kind} conditions cache ({lat.info['pairs']} runs)",
                         f"{lat.info[f'{kind}_first_chunk_s']:.3f} s",
                         f"lookups {lat.info[f'{kind}_lookup_s']:.4f} s"])  # fmt: skip
    if look is not None:
        rows.append([f"tau1n_calib job, {look.info['files']} files, {look.info['events']:,} events",
                     f"{look.info['rate_with']:,.0f} events/s (calibration baked in: "
                     f"{look.info['rate_without']:,.0f}; cost {100 * look.info['rate_cost']:.2f} %)",
                     f"job timer {look.info['lookup_s']:.4f} s = {100 * look.info['lookup_fraction']:.2f} % "
                     f"of wall ({look.info['pieces']} pieces, {look.info['payloads']} payloads)"])  # fmt: skip
    return _table(["measure", "value", "conditions cost"], rows)


SUITES = (*SUITES, "conditions")
_SECTIONS["conditions"] = (
    "Conditions lookups (`examples/tau1n_calib.py` over HTTP)",
    _conditions_table,
)
TARGETS = (
    *TARGETS,
    Target(
        "conditions lookups < 2 % of job time",
        "% events/s lost: tau1n_calib job vs the same with the calibration baked in",
        2.0, False, _conditions_cost, unit="",
    ),
)  # fmt: skip
