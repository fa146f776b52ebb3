"""Turn pytest-benchmark's JSON into per-suite tables and the issue-4 targets table (Markdown).

Pure functions of the JSON document, so tests drive them with hand-made documents.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Suites every full run reports, in the order they are rendered.
SUITES = (
    "kernels", "streaming", "endtoend", "longjob", "memory", "latency",
    "layouts", "layouts-long", "layouts-read", "layouts-process", "layouts-rdf",
)  # fmt: skip
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
    #: The measured number, or (number, where it was measured) for a worst-of-all target.
    compute: Callable[[list[Record]], float | tuple[float, str] | None]
    unit: str = "x"
    #: For ``at_least=False``: pass needs ``value < threshold`` (else ``<=``).
    strict: bool = True
    #: Measured by ``python -m bench --quick`` too (False: by the full run only).
    quick: bool = True

    @property
    def need(self) -> str:
        op = ">=" if self.at_least else ("<" if self.strict else "<=")
        return f"{op} {self.threshold:g}{self.unit}"

    def evaluate_where(self, recs: list[Record]) -> tuple[float | None, str, str]:
        """The measured number, the verdict, and which layout/link decided it (or "")."""
        value = self.compute(recs)
        where = ""
        if isinstance(value, tuple):
            value, where = value
        if value is None:
            return None, "not run", where
        if self.at_least:
            ok = value >= self.threshold
        else:
            ok = value < self.threshold if self.strict else value <= self.threshold
        return value, "pass" if ok else "miss", where

    def evaluate(self, recs: list[Record]) -> tuple[float | None, str]:
        value, verdict, _ = self.evaluate_where(recs)
        return value, verdict

    def margin(self, value: float | None) -> str:
        """By how much a value passes (+) or misses (-) the threshold, in percent of it."""
        if value is None or self.threshold == 0:
            return "-"
        # at least: how far above; an upper bound: the room left below it (0 is +100 %)
        rel = value / self.threshold - 1.0 if self.at_least else 1.0 - value / self.threshold
        return f"{rel * 100:+.0f} %"


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


# -- layout matrix (issue 10) -----------------------------------------------------------------

#: Layouts in matrix order (bench/layouts.py); kept here so rendering never imports ROOT.
LAYOUT_ORDER = ("uproot-bigbasket", "root-nanoaod", "root-nanoaod-rntuple", "smallbasket", "tau1n")
#: Zero-delay wall time from which the 30 ms target applies (issue 10: jobs of >= 2 s).
LONG_JOB_S = 2.0


def _layouts(recs: list[Record]) -> list[str]:
    """Layout names present in ``recs``, matrix order first."""
    seen = {r.info["layout"] for r in recs if "layout" in r.info}
    return [n for n in LAYOUT_ORDER if n in seen] + sorted(seen - set(LAYOUT_ORDER))


def _job(recs: list[Record], layout: str, link: str) -> Record | None:
    return _find(recs, "layouts", layout=layout, link=link)


def bytes_ratio(rec: Record | None) -> float | None:
    """bytes read / bytes needed of a layout job (None before the report has bytes_needed)."""
    if rec is None or not rec.info.get("bytes_needed"):
        return None
    return rec.info["bytes"] / rec.info["bytes_needed"]


def wan_ratio(recs: list[Record], layout: str) -> float | None:
    """Job events/s at 30 ms over events/s at the zero-delay proxy."""
    return _ratio(_rate(_job(recs, layout, FAR)), _rate(_job(recs, layout, "wan0ms")))


def reader_ratio(recs: list[Record], layout: str, handler: str) -> float | None:
    """Job events/s at 30 ms over the uproot ``handler``'s read of the same branches."""
    reader = _find(recs, "layouts-read", layout=layout, handler=handler, link=FAR)
    return _ratio(_rate(_job(recs, layout, FAR)), _rate(reader))


def _anchor(recs: list[Record], suite: str, layout: str, link: str, scale: str, **match):
    return _find(recs, suite, layout=layout, link=link, scale=scale, **match)


def _process_rate(rec: Record | None) -> float | None:
    """events / process seconds (start-up included), medians of rounds."""
    if rec is None or rec.info["process_s"] <= 0:
        return None
    return rec.info["events"] / rec.info["process_s"]


def marginal_rate(one: Record | None, many: Record | None) -> float | None:
    """Steady-state events/s: (events of N - events of 1) / (seconds of N - seconds of 1)."""
    if one is None or many is None:
        return None
    dt = many.info["process_s"] - one.info["process_s"]
    de = many.info["events"] - one.info["events"]
    return de / dt if dt > 0 and de > 0 else None


def _anchor_links(recs: list[Record]) -> list[str]:
    links = {r.info["link"] for r in recs if r.suite == "layouts-rdf"}
    return [link for link in ("local", "loopback", "wan0ms", FAR) if link in links]


def rdf_steady_ratio(recs: list[Record], layout: str, link: str) -> float | None:
    """hepstream marginal events/s over RDataFrame (implicit MT) marginal events/s."""
    hs = marginal_rate(*(_anchor(recs, "layouts-process", layout, link, s) for s in SCALES_ANCHOR))
    rdf = marginal_rate(
        *(_anchor(recs, "layouts-rdf", layout, link, s, implicit_mt=True) for s in SCALES_ANCHOR)
    )
    return _ratio(hs, rdf)


def rdf_startup_ratio(recs: list[Record], layout: str, link: str) -> float | None:
    """1-file job events per process second, hepstream over RDataFrame (implicit MT)."""
    hs = _anchor(recs, "layouts-process", layout, link, "1 file")
    rdf = _anchor(recs, "layouts-rdf", layout, link, "1 file", implicit_mt=True)
    return _ratio(_process_rate(hs), _process_rate(rdf))


SCALES_ANCHOR = ("1 file", "N files")


def _worst(
    candidates: list[tuple[float | None, str]], expected: int, lowest: bool = True
) -> tuple[float, str] | None:
    """The worst measured value with where it was measured; coverage when partial."""
    got = [(v, w) for v, w in candidates if v is not None]
    if not got:
        return None
    value, where = min(got) if lowest else max(got)
    if len(got) < expected:
        where += f"; {len(got)} of {expected} measured"
    return value, where


def _t_bytes(recs: list[Record]) -> tuple[float, str] | None:
    cands = [(bytes_ratio(_job(recs, name, link)), f"{name}, {link}")
             for name in _layouts(recs) for link in ("local", "loopback")]  # fmt: skip
    return _worst(cands, len(cands), lowest=False)


def _long(recs: list[Record], layout: str, link: str) -> Record | None:
    return _find(recs, "layouts-long", layout=layout, link=link)


def long_wan_ratio(recs: list[Record], layout: str) -> float | None:
    """The long job's events/s at 30 ms over its events/s at the zero-delay proxy."""
    return _ratio(_rate(_long(recs, layout, FAR)), _rate(_long(recs, layout, "wan0ms")))


def _t_wan(recs: list[Record], long_jobs: bool) -> tuple[float, str] | None:
    """Every job whose zero-delay run takes >= LONG_JOB_S (long_jobs) or less: the 1-file
    jobs and the long jobs (the file listed N times) alike, each judged by its own length."""
    cands = []
    for name in _layouts(recs):
        for zero, ratio, what in (
            (_job(recs, name, "wan0ms"), wan_ratio(recs, name), "1 file"),
            (_long(recs, name, "wan0ms"), long_wan_ratio(recs, name), "long"),
        ):
            if zero is not None and (zero.median >= LONG_JOB_S) == long_jobs:
                cands.append((ratio, f"{name}, {what} ({zero.median:.2f} s at 0 ms)"))
    return _worst(cands, len(cands))


def _t_reader(recs: list[Record], handler: str) -> tuple[float, str] | None:
    names = _layouts(recs)
    return _worst([(reader_ratio(recs, n, handler), n) for n in names], len(names))


def _t_rdf(recs: list[Record], ratio: Callable[..., float | None]) -> tuple[float, str] | None:
    cands = [(ratio(recs, n, link), f"{n}, {link}")
             for n in _layouts(recs) for link in _anchor_links(recs)]  # fmt: skip
    return _worst(cands, len(cands))


def _t_rss(recs: list[Record]) -> tuple[float, str] | None:
    cands = [(r.info["peak_rss_mb"], f"{r.info['layout']}, {r.info['link']}, {r.info['scale']}")
             for r in recs if r.suite == "layouts-process"]  # fmt: skip
    return _worst(cands, len(cands), lowest=False)


LAYOUT_TARGETS: tuple[Target, ...] = (
    Target(
        "layouts: bytes read <= 1.05x bytes needed",
        "report bytes_read / bytes_needed, worst of every layout, local and root:// loopback",
        1.05, False, _t_bytes, strict=False,
    ),
    Target(
        "layouts: 30 ms RTT >= 0.9x zero-delay rate (jobs >= 2 s)",
        "job events/s at wan30ms / at wan0ms, worst layout whose 0 ms job takes >= 2 s",
        0.9, True, lambda r: _t_wan(r, True), quick=False,
    ),
    Target(
        "layouts: 30 ms RTT >= 0.9x zero-delay rate (short jobs, < 2 s)",
        "the same ratio for layouts whose 0 ms job is shorter (reported, fixed latency)",
        0.9, True, lambda r: _t_wan(r, False),
    ),
    Target(
        "layouts: >= 1.2x uproot XRootDSource at 30 ms",
        "job events/s / XRootDSource read events/s (same branches), worst layout",
        1.2, True, lambda r: _t_reader(r, "uproot-xrootd"),
    ),
    Target(
        "layouts: >= 1.2x uproot fsspec-xrootd at 30 ms",
        "job events/s / fsspec read events/s (same branches), worst layout",
        1.2, True, lambda r: _t_reader(r, "uproot-fsspec"),
    ),
    Target(
        "layouts: >= 1.0x RDataFrame (implicit MT) steady state",
        "marginal events/s between the 1-file and N-file process, hepstream / RDF, worst",
        1.0, True, lambda r: _t_rdf(r, rdf_steady_ratio), quick=False,
    ),
    Target(
        "layouts: >= 2x RDataFrame (implicit MT) on a 1-file job, start-up included",
        "events / process seconds of one file (1M events; 3M big baskets; quick: small files)",
        2.0, True, lambda r: _t_rdf(r, rdf_startup_ratio),
    ),
    Target(
        "layouts: peak RSS < 1 GB",
        "peak RSS of every hepstream run process of the layout suite (GNU time), worst",
        1024.0, False, _t_rss, unit=" MB",
    ),
)  # fmt: skip

TARGETS = TARGETS + LAYOUT_TARGETS


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


def _cell(value: float | None, target: Target | None = None, digits: int = 2) -> str:
    """A ratio for the matrix, with its target's verdict when there is one."""
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    if target is None:
        return text
    ok = value >= target.threshold if target.at_least else value <= target.threshold
    return f"{text} {'pass' if ok else 'miss'}"


def _layout_target(prefix: str) -> Target:
    return next(t for t in LAYOUT_TARGETS if t.name.startswith(prefix))


def layout_matrix(recs: list[Record]) -> list[str]:
    """One row per layout: every issue-10 ratio of that layout, with its verdict."""
    t_bytes = _layout_target("layouts: bytes read")
    t_wan = _layout_target("layouts: 30 ms RTT >= 0.9x zero-delay rate (jobs")
    t_reader = _layout_target("layouts: >= 1.2x uproot XRootDSource")
    t_steady = _layout_target("layouts: >= 1.0x RDataFrame")
    t_start = _layout_target("layouts: >= 2x RDataFrame")
    links = _anchor_links(recs)
    rows = []
    for name in _layouts(recs):
        local, zero = _job(recs, name, "local"), _job(recs, name, "wan0ms")
        long0 = _long(recs, name, "wan0ms")
        info = (local or zero or next(r for r in recs if r.info.get("layout") == name)).info
        rss = [r.info["peak_rss_mb"] for r in recs
               if r.suite == "layouts-process" and r.info["layout"] == name]  # fmt: skip
        row = [
            name, f"{info['events']:,}",
            _cell(bytes_ratio(local), t_bytes), _cell(bytes_ratio(_job(recs, name, "loopback")), t_bytes),
            _cell(wan_ratio(recs, name), t_wan)
            + (f" ({zero.median:.2f} s)" if zero is not None else ""),
            _cell(long_wan_ratio(recs, name), t_wan)
            + (f" ({long0.median:.2f} s)" if long0 is not None else ""),
            _cell(reader_ratio(recs, name, "uproot-xrootd"), t_reader),
            _cell(reader_ratio(recs, name, "uproot-fsspec"), t_reader),
        ]  # fmt: skip
        for link in links:
            row += [_cell(rdf_steady_ratio(recs, name, link), t_steady),
                    _cell(rdf_startup_ratio(recs, name, link), t_start)]  # fmt: skip
        row.append(_num(max(rss), 0) if rss else "-")
        rows.append(row)
    headers = ["layout", "events/file", "read/needed local", "read/needed root://",
               "30 ms / 0 ms (0 ms job s)", "30 ms / 0 ms, long job (0 ms s)",
               "x XRootDSource 30 ms", "x fsspec 30 ms"]  # fmt: skip
    for link in links:
        headers += [f"x RDF MT steady ({link})", f"x RDF MT 1 file ({link})"]
    headers.append("peak RSS MB")
    return [
        *_table(headers, rows),
        "",
        "Ratios are hepstream over the other side (bytes: read over needed); `-` where a "
        "side did not run or the report has no `bytes_needed` yet. The 30 ms target applies "
        f"to jobs of >= {LONG_JOB_S:g} s at zero delay; shorter ones are reported.",
        "RDataFrame with implicit MT cannot open `root://` TTrees in ROOT 6.40.00 from PyPI "
        "(`TFile::Open` with `READ_WITHOUT_GLOBALREGISTRATION` falls back to a local `TFile`): "
        "over the WAN proxy only the RNTuple has an implicit-MT anchor; single-threaded "
        "RDataFrame reads every layout there (`bench/rdf.py`).",
    ]


def _layout_jobs(recs: list[Record]) -> list[str]:
    order = {n: i for i, n in enumerate(LAYOUT_ORDER)}
    rows = []
    for rec in sorted(recs, key=lambda r: (order.get(r.info["layout"], 99), _order(r.info))):
        info = rec.info
        needed = info.get("bytes_needed")
        rows.append([
            info["layout"], _link(info), f"{info['events']:,}", f"{info['selected']:,}",
            _num(rec.median, 3), _num(rec.events_per_s), _num(info["bytes"] / MB, 1),
            _num(needed / MB, 1) if needed else "-", _num(bytes_ratio(rec), 3),
            f"{info['cache_hits']}/{info['cache_misses']}", info.get("answer", "-"),
            str(rec.rounds),
        ])  # fmt: skip
    return [
        *_table(["layout", "input", "events", "selected", "median s", "events/s", "MB read",
                 "MB needed", "read/needed", "cache hits/misses", "awkward answer", "rounds"],
                rows),
    ]  # fmt: skip


def _layout_readers(recs: list[Record]) -> list[str]:
    rows = [
        [r.info["layout"], r.info["handler"], _link(r.info), f"{r.info['events']:,}",
         _num(r.median, 3), _num(r.events_per_s), str(r.rounds)]
        for r in sorted(recs, key=lambda r: (r.info["layout"], r.info["handler"]))
    ]  # fmt: skip
    return _table(["layout", "handler", "link", "events", "median s", "events/s", "rounds"], rows)


def _layout_anchor(recs: list[Record]) -> list[str]:
    rows = []
    key = lambda r: (r.info["layout"], not r.info.get("implicit_mt", True), _order(r.info),  # noqa: E731
                     r.info["files"])  # fmt: skip
    for rec in sorted(recs, key=key):
        info = rec.info
        who = "hepstream run" if rec.suite == "layouts-process" else (
            f"RDataFrame, {'implicit MT, ' if info['implicit_mt'] else ''}{info['threads']} thread(s)")  # fmt: skip
        rows.append([
            info["layout"], who, _link(info), str(info["files"]), f"{info['events']:,}",
            f"{info['selected']:,}", _num(info["process_s"], 2), _num(_process_rate(rec)),
            _num(info.get("peak_rss_mb"), 0) if "peak_rss_mb" in info else "-", str(rec.rounds),
        ])  # fmt: skip
    return _table(["layout", "who", "input", "files", "events", "selected", "process s",
                   "events/process s", "peak RSS MB", "rounds"], rows)  # fmt: skip


_SECTIONS: dict[str, tuple[str, Callable[[list[Record]], list[str]]]] = {
    "kernels": ("Selection kernels (events in memory)", _kernels),
    "streaming": ("Streaming reads of one file (plugin branches, job chunking)", _streaming),
    "endtoend": ("End-to-end jobs (`run_job`, tau1n plugin)", _endtoend),
    "longjob": ("Long jobs (the 10 files read 10 times: 100 files, WAN proxy)", _endtoend),
    "memory": ("Peak memory (`hepstream run` subprocess over root:// loopback)", _memory),
    "latency": ("First-chunk latency (`hepstream run` subprocesses)", _latency_table),
    "layouts": (
        "Layout matrix (issue 10): `run_job` per layout, checked against awkward",
        _layout_jobs,
    ),
    "layouts-long": (
        "Layout matrix: long jobs over the WAN proxy (the file listed N times)",
        _layout_jobs,
    ),
    "layouts-read": (
        "Layout matrix: uproot readers at 30 ms (plugin branches, job chunking)",
        _layout_readers,
    ),
    "layouts-process": (
        "Layout matrix: `hepstream run` processes (start-up included)",
        _layout_anchor,
    ),
    "layouts-rdf": (
        "Layout matrix: ROOT RDataFrame anchor (C++ strings, fresh process each)",
        _layout_anchor,
    ),
}


def targets_table(recs: list[Record]) -> list[str]:
    rows = []
    for target in TARGETS:
        value, verdict, where = target.evaluate_where(recs)
        measured = "-" if value is None else f"{value:,.2f}{target.unit}"
        if verdict == "not run" and not target.quick:
            where = where or "full run only"
        rows.append([target.name, target.measure, measured, target.need, verdict,
                     target.margin(value), where or "-"])  # fmt: skip
    return _table(["target", "measured as", "measured", "need", "result", "by", "where"], rows)


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
    if any(r.suite.startswith("layouts") for r in recs):
        lines += ["", "## Layout matrix (issue 10), one row per layout", "", *layout_matrix(recs)]
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


# -- batch engines suite (bench/test_engines.py): kept in one block ------------------------


def _engines_table(recs: list[Record]) -> list[str]:
    rows = []
    for rec in recs:
        if rec.suite != "engines":
            continue
        if "engine" in rec.info:
            runs = ", ".join(f"{s:.2f}" for s in rec.info.get("submit_to_first_event_all_s", []))
            rows.append([f"{rec.info['engine']}: submit to first event",
                         f"{rec.info['submit_to_first_event_s']:.2f} s (median of {runs})"])  # fmt: skip
        else:
            rows.append([f"{rec.info['concurrent_jobs']} local job(s) at once on "
                         f"{rec.info['cpus']} cores",
                         f"{rec.info['aggregate_events_per_s']:,.0f} events/s aggregate"])  # fmt: skip
    return _table(["measure", "value"], rows)


SUITES = (*SUITES, "engines")
_SECTIONS["engines"] = ("Batch engines (`bench/test_engines.py`)", _engines_table)
# -- storage suite (bench/test_storage.py): kept in one block --------------------------------


def _storage_worst(recs: list[Record]) -> tuple[float, str] | None:
    """The lowest bench / xrdcp aggregate ratio over the levels, and at which N."""
    rec = _find(recs, "storage")
    if rec is None:
        return None
    ratios = [(lv["mb_s"] / lv["xrdcp_mb_s"], f"{lv['jobs']} readers")
              for lv in rec.info["levels"] if lv["xrdcp_mb_s"] > 0]  # fmt: skip
    return min(ratios) if ratios else None


def _storage_table(recs: list[Record]) -> list[str]:
    rows = [[str(lv["jobs"]), str(lv["processes"]), _num(lv["mb_s"], 1), _num(lv["xrdcp_mb_s"], 1),
             _num(lv["mb_s"] / lv["xrdcp_mb_s"] if lv["xrdcp_mb_s"] else None, 2),
             _num(lv["p99_ms"], 1), f"{lv['failed']} / {lv['xrdcp_failed']}"]
            for rec in recs for lv in rec.info["levels"]]  # fmt: skip
    return _table(["readers", "processes", "bench MB/s", "xrdcp MB/s", "bench / xrdcp",
                   "p99 ms", "failed (bench / xrdcp)"], rows)  # fmt: skip


SUITES = (*SUITES, "storage")
_SECTIONS["storage"] = (
    "Storage bench (`hepstream bench storage` readers vs as many `xrdcp`, root:// loopback)",
    _storage_table,
)
TARGETS = (
    *TARGETS,
    Target(
        "storage bench >= 0.8x xrdcp aggregate at every N (up to 512 readers)",
        "aggregate MB/s of the bench's readers / of as many concurrent xrdcp, worst level",
        0.8, True, _storage_worst,
    ),
)  # fmt: skip


# -- cloud-sim suite (bench/test_cloud_sim.py): kept in one block -------------------------


def _cloud_sim_seconds(recs: list[Record]) -> float | None:
    """Wall seconds of the 5,000-job run; None (not met) if a quota broke or a VM was left."""
    rec = _find(recs, "cloud-sim")
    if rec is None or rec.info["jobs"] < 5000 or rec.info["clouds"] < 20:
        return None  # the quick run simulates fewer jobs: the target is the full run's
    ok = rec.info["quota_exceeded"] == 0 and rec.info["vms_left_running"] == 0
    return rec.median if ok else float("inf")


def _cloud_sim_table(recs: list[Record]) -> list[str]:
    rows = [[f"{r.info['jobs']:,} jobs over {r.info['clouds']} clouds ({r.info['config']})",
             f"{r.median:.1f} s", f"{r.info['plan_calls']:,} rounds, "
             f"{r.info['simulated_hours']:,.1f} h simulated",
             f"{r.info['jobs_done']:,} done, {r.info['jobs_failed']} failed, "
             f"{r.info['jobs_unfinished']} unfinished",
             f"{r.info['vms_booted']:,} booted, {r.info['vms_replaced']:,} replaced, "
             f"{r.info['vms_left_running']} left; quota exceeded on {r.info['quota_exceeded']}"]
            for r in recs]  # fmt: skip
    return _table(["run", "wall", "shim", "jobs", "VMs"], rows)


SUITES = (*SUITES, "cloud-sim")
_SECTIONS["cloud-sim"] = ("Cloud simulation: the real shim at scale", _cloud_sim_table)
TARGETS = (
    *TARGETS,
    Target(
        "cloud simulation: 5,000 jobs over 20 clouds < 60 s",
        "wall s of `hepstream cloud simulate -c examples/cloud-sim-20.toml`; quotas held, 0 VMs left",
        60.0, False, _cloud_sim_seconds, unit=" s", quick=False,
    ),
)  # fmt: skip


# -- fuzz suite (bench/test_fuzz.py): kept in one block -----------------------------------


def _fuzz_table(recs: list[Record]) -> list[str]:
    """Classes per input family, the failure signatures and the first failing cases (each
    with its reproduction command), from the row's ``extra_info`` (``bench.fuzz.summary``)."""
    lines: list[str] = []
    esc = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for rec in recs:
        info = rec.info
        classes = list(info["classes"])
        rows = [[name, str(sum(c.values())), *(str(c[k]) for k in classes)]
                for name, c in info["families"].items()]  # fmt: skip
        rows.append(["all", f"{info['cases']:,}", *(str(info["classes"][k]) for k in classes)])
        lines += [f"{info['cases']:,} damaged files (seed {info['seed']}) in {rec.median:.0f} s, "
                  f"{info['cases_per_s']:.1f} cases/s: **{info['failing']} failing** (signal, "
                  f"hang, traceback, temp file left, invalid array)", "",
                  *_table(["family", "cases", *classes], rows)]  # fmt: skip
        if info["signatures"]:
            sigs = [[str(n), esc(s)] for s, n in info["signatures"].items()]
            lines += ["", *_table(["cases", "failure signature"], sigs)]
        if info["failures"]:
            shown = [[f["class"], esc(f["mutation"]), f"`{f['reproduce']}`"]
                     for f in info["failures"][:20]]  # fmt: skip
            lines += ["", *_table(["class", "case", "reproduce"], shown)]
    return lines


SUITES = (*SUITES, "fuzz")
_SECTIONS["fuzz"] = (
    "Damaged input files (`bench/test_fuzz.py`, issue 23): classes per input family",
    _fuzz_table,
)


# -- site caches suite (bench/test_sitecache.py, issue 25): kept in one block ---------------


def _site(recs: list[Record], kind: str) -> Record | None:
    return _find(recs, "sitecache", kind=kind)


def _site_rate(side: dict) -> float | None:
    """Events over the jobs' own wall seconds (the report's: interpreter start-up excluded,
    plugin load, opens, reads and the selection included), summed over the side's jobs."""
    return side["events"] / side["wall_s"] if side["wall_s"] > 0 else None


def _site_where(rec: Record) -> str:
    info = rec.info
    return f"{info['rounds']} rounds x {info['jobs']} jobs ({info['files']} files)"


def _site_second_pass(recs: list[Record]) -> tuple[float, str] | None:
    """Origin bytes of the warm passes in % of the cold passes', by the origin's own trace."""
    rec = _site(recs, "passes")
    if rec is None or not rec.info["sides"]["cold"]["origin_bytes"]:
        return None
    sides = rec.info["sides"]
    return 100 * sides["warm"]["origin_bytes"] / sides["cold"]["origin_bytes"], _site_where(rec)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _site_speed(recs: list[Record], top: str, bottom: str) -> tuple[float, str] | None:
    """The median over jobs and rounds of each job's events/s on side ``top`` over its own
    events/s on side ``bottom`` (run next to it); the pooled ratio beside it."""
    rec = _site(recs, "passes")
    if rec is None or not rec.info["pairs"].get(f"{top}/{bottom}"):
        return None
    pairs = rec.info["pairs"][f"{top}/{bottom}"]
    sides = rec.info["sides"]
    pooled = _ratio(_site_rate(sides[top]), _site_rate(sides[bottom]))
    where = (f"median of {len(pairs)} job pairs ({_site_where(rec)}); "
             f"range {min(pairs):.2f}-{max(pairs):.2f}; pooled {_num(pooled, 2)}")  # fmt: skip
    return _median(pairs), where


def _site_concurrent(recs: list[Record]) -> tuple[float, str] | None:
    """Jobs that finished through the cache with output identical to the direct read, over
    the 64 the target asks for (fewer jobs run cannot reach 1)."""
    rec = _site(recs, "concurrent")
    if rec is None or rec.info["jobs"] < 64:  # the quick run's 16 show the suite works only
        return None
    info = rec.info
    bad = info["failed"] + info["fell_back"] + info["mismatched"]
    where = (f"{info['jobs']} jobs: {info['failed']} failed, {info['fell_back']} fell back, "
             f"{info['mismatched']} differ; {info['peak_connected']} connected to the cache "
             f"at once")  # fmt: skip
    return (info["jobs"] - bad) / max(64, info["jobs"]), where


def _site_images(recs: list[Record]) -> tuple[float, str] | None:
    rec = _site(recs, "images")
    if rec is None or not rec.info["blob_bytes"]:
        return None
    info = rec.info
    where = f"{info['vms']} hosts at once, blob {info['blob_bytes'] / MB:.1f} MB"
    return info["wan_bytes"] / info["blob_bytes"], where


_SITE_SIDES = (
    ("origin", "origin, 0 ms (no link, no cache)"),
    ("direct", "origin across the site's link, no cache"),
    ("cold", "through the site's cache, first pass"),
    ("warm", "through the site's cache, second pass"),
)


def _sitecache_table(recs: list[Record]) -> list[str]:
    lines: list[str] = []
    passes = _site(recs, "passes")
    if passes is not None:
        info = passes.info
        rows = []
        for side, label in _SITE_SIDES:
            s = info["sides"][side]
            rows.append([label, str(s["jobs"]), f"{s['events']:,.0f}", _num(s["wall_s"], 2),
                         _num(_site_rate(s)), _num(s["process_s"], 1),
                         _num(s["origin_bytes"] / MB, 1), _num(s["wan_bytes"] / MB, 1)])  # fmt: skip
        lines += [f"A dataset of {info['files']} files in {info['jobs']} `hepstream run` jobs, "
                  f"{info['rounds']} rounds, each at a site whose cache had not seen it "
                  f"(link {info['rtt_ms']:g} ms, {info['bandwidth_mbps'] / 1000:g} Gbit/s); "
                  f"sides interleaved job by job, first side alternating.", "",
                  *_table(["side", "jobs", "events", "job wall s", "events/s", "process s",
                           "origin MB (its trace)", "site link MB"], rows)]  # fmt: skip
        deaths = info.get("cache_deaths", [])
        if deaths:
            first = deaths[0].replace("|", "\\|").replace("\n", " ")[:900]
            lines += ["", f"**The cache daemon died in {len(deaths)} round(s)**, each dropped and "
                          f"run again at a fresh site. First: {first}"]  # fmt: skip
    conc = _site(recs, "concurrent")
    if conc is not None:
        c = conc.info
        lines += ["", *_table(
            ["concurrent jobs", "failed", "fell back", "outputs differ", "short reads",
             "connected at once", "first chunk before any ended", "wall s", "origin MB",
             "inputs MB", "lowest MemAvailable MB"],
            [[f"{c['jobs']} ({c['distinct_jobs']} distinct, cold cache)", str(c["failed"]),
              str(c["fell_back"]), str(c["mismatched"]), str(c["short_reads"]),
              str(c["peak_connected"]), str(c["read_before_first_end"]), _num(c["wall_s"], 1),
              _num(c["origin_bytes"] / MB, 1), _num(c["input_bytes"] / MB, 1),
              _num(c["lowest_available_mb"])]])]  # fmt: skip
        if c.get("why"):
            lines += ["", "Failures and fallbacks: " + "; ".join(
                f"{n} x {w}".replace("|", "\\|") for w, n in c["why"].items())]  # fmt: skip
        if not c.get("cache_alive_after", True):
            state = str(c.get("cache_state") or "").replace("|", "\\|")[:600]
            lines += ["", f"**The cache daemon died during the concurrent jobs.** {state}"]
    images = _site(recs, "images")
    if images is not None:
        i = images.info
        lines += ["", *_table(
            ["VMs (hosts) at once", "blob MB", "WAN MB", "origin MB", "pull s (each host)"],
            [[str(i["vms"]), _num(i["blob_bytes"] / MB, 1), _num(i["wan_bytes"] / MB, 1),
              _num(i["origin_bytes"] / MB, 1), ", ".join(f"{s:.1f}" for s in i["pull_s"])]])]  # fmt: skip
        if not i.get("cache_alive_after", True):
            state = str(i.get("cache_state") or "").replace("|", "\\|")[-600:]
            lines += ["", f"**The cache daemon died after serving the pulls.** {state}"]
    return lines


SUITES = (*SUITES, "sitecache")
_SECTIONS["sitecache"] = (
    "Site caches (issue 25): real origin and XCache processes (`bench/test_sitecache.py`)",
    _sitecache_table,
)
TARGETS = (
    *TARGETS,
    Target(
        "site cache: second pass takes <= 1 % of the first's origin bytes",
        "origin bytes (the origin's own trace) of the warm passes, in % of the cold passes'",
        1.0, False, _site_second_pass, unit="", strict=False,
    ),
    Target(
        "site cache: warm pass at 30 ms >= 0.95x the origin at 0 ms",
        "job by job: events/s (job wall) through the warm cache / the same job at the origin, "
        "no link; median",
        0.95, True, lambda r: _site_speed(r, "warm", "origin"),
    ),
    Target(
        "site cache: cold pass >= 0.9x the origin across the same 30 ms link",
        "job by job: events/s (job wall) through the cold cache / the same job reading the "
        "origin across the link; median",
        0.9, True, lambda r: _site_speed(r, "cold", "direct"),
    ),
    Target(
        "site cache: 64 concurrent jobs, 0 failures, outputs identical to direct reads",
        "jobs ok through the cache with arrays byte-identical to the direct job's / 64",
        1.0, True, _site_concurrent, quick=False,
    ),
    Target(
        "site cache: 8 VMs of one image move 1 image over the WAN",
        "bytes over the site's link (both ways) / the image blob's size, 8 hosts at once",
        1.05, False, _site_images, strict=False,
    ),
)  # fmt: skip


# -- fill suite (bench/test_fill_cost.py, issue 26): kept in one block ---------------------

#: The ways of filling, as ``bench/test_fill_cost.py`` names them, and their column headers.
_FILL_WAYS = (
    ("selected", "selected: `fill`"),
    ("selected-weighted", "selected: `fill`, weights"),
    ("numba-selected", "selected: numba `bins()`"),
    ("all", "all: `fill_all`"),
    ("all-weighted", "all: `fill_all`, weights"),
    ("numba-all", "all: numba `bins()`"),
)
#: The jobs that compute what a way fills and fill nothing.
_FILL_COMPUTED = (
    ("selected-computed", "selected: values computed, not filled"),
    ("all-computed", "all: values computed, not filled (no preselection)"),
)
#: The issue's targets: cost in % of the plain job's wall, per way of filling.
FILL_SELECTED_MAX, FILL_ALL_MAX = 5.0, 15.0


def _fill_limit(way: str) -> float | None:
    if way.endswith("computed"):
        return None
    return FILL_ALL_MAX if way.startswith("all") or way == "numba-all" else FILL_SELECTED_MAX


def _fill_worst(recs: list[Record], way: str) -> tuple[float, str] | None:
    """The largest cost (% of job wall) of one way of filling over the layouts; None in
    quick mode (20k-event files: the fixed costs of a job are most of it)."""
    mine = [r for r in recs if r.suite == "fill" and r.info.get("mode") != "quick"]
    if not mine:
        return None
    worst = max(mine, key=lambda r: r.info["cost"][way])
    info = worst.info
    return 100 * info["cost"][way], (
        f"{info['layout']}: median of {info['rounds']} rounds, range "
        f"{100 * info['cost_range'][way][0]:+.1f}..{100 * info['cost_range'][way][1]:+.1f} %"
    )


def _fill_cells(info: dict, key: str, ways=(*_FILL_WAYS, *_FILL_COMPUTED)) -> list[str]:
    cells = []
    for way, _ in ways:
        value = 100 * info[key][way]
        limit = _fill_limit(way)
        mark = "" if limit is None else (" ✓" if value <= limit else " ✗")
        cells.append(f"{value:+.1f} %{mark}")
    return cells


def _fill_table(recs: list[Record]) -> list[str]:
    heads = ["layout", "events (selected)", "plain job s",
             *(h for _, h in (*_FILL_WAYS, *_FILL_COMPUTED))]  # fmt: skip
    wall, cpu, fills = [], [], []
    for rec in sorted(recs, key=lambda r: LAYOUT_ORDER.index(r.info["layout"])
                      if r.info["layout"] in LAYOUT_ORDER else 99):  # fmt: skip
        info = rec.info
        label = f"`{info['layout']}` ({info['kind']}, {info['writer']})"
        counts = f"{info['events']:,} ({info['selected']:,})"
        wall.append([label, counts, _num(info["plain_wall_s"], 3), *_fill_cells(info, "cost")])
        cpu.append([label, counts, _num(info["plain_cpu_s"], 3), *_fill_cells(info, "cpu_cost")])
        fills.append([label, counts, _num(info["plain_wall_s"], 3),
                      *_fill_cells(info, "fills_cost", _FILL_WAYS)])  # fmt: skip
    first = recs[0].info if recs else {}
    loads = ", ".join(f"{r.info['layout']} {r.info['load_avg'][0]:.1f}-{r.info['load_avg'][1]:.1f}"
                      for r in recs)  # fmt: skip
    return [
        f"Cost of filling in % of the plain `zmumu.py` job (✓ within the target: "
        f"{FILL_SELECTED_MAX:g} % on the selected events, {FILL_ALL_MAX:g} % on all): the "
        f"median over {first.get('rounds', '?')} rounds of each variant's `run_job` over a "
        f"plain `run_job` right before or after it; variants in an order rotated round by "
        f"round.", "",
        "Job wall:", "", *_table(heads, wall), "",
        "The fills alone: job wall of each way minus that of the job computing the same values "
        "without filling (numba: minus the plain job), in % of the plain job's wall:", "",
        *_table(heads[: 3 + len(_FILL_WAYS)], fills), "",
        "Job CPU (process time, all threads; less sensitive to other load on the machine):",
        "", *_table([*heads[:2], "plain job CPU s", *heads[3:]], cpu), "",
        f"1-minute load average before-after each layout: {loads}.",
    ]  # fmt: skip


SUITES = (*SUITES, "fill")
_SECTIONS["fill"] = (
    "Filling histograms (issue 26): three histograms on the layout matrix's ROOT files "
    "(`bench/test_fill_cost.py`)",
    _fill_table,
)
TARGETS = (
    *TARGETS,
    Target(
        "fill: 3 histograms on every selected event <= 5 % of job wall",
        "% job wall added by `Histogram.fill` of a 1D, a 2D and a variable-binned histogram "
        "in fill(), vs the plain plugin; worst ROOT-written layout",
        FILL_SELECTED_MAX, False, lambda r: _fill_worst(r, "selected"), unit=" %",
        strict=False, quick=False,
    ),
    Target(
        "fill: 3 histograms on all events <= 15 % of job wall",
        "% job wall added by the same fills in fill_all() on every event read, vs the plain "
        "plugin; worst ROOT-written layout",
        FILL_ALL_MAX, False, lambda r: _fill_worst(r, "all"), unit=" %",
        strict=False, quick=False,
    ),
)  # fmt: skip
