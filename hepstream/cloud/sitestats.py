"""Per-site numbers from job reports and boot outcomes: what ``plan`` ranks clouds by."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hepstream.cloud.model import SiteStats
from hepstream.cloud.policy import Policy


@dataclass(frozen=True)
class BootOutcome:
    """One boot that reached an end: registered (ok) or error/timeout/API failure."""

    image: str
    cloud: str
    at: float
    ok: bool


def site_stats(
    reports: Iterable[tuple[str, Mapping[str, Any]]],
    outcomes: Iterable[BootOutcome],
    now: float,
    policy: Policy,
) -> list[SiteStats]:
    """Average the newest ``policy.report_window`` ok reports per (image, site) and count
    boot outcomes within ``policy.backoff_window_s``.

    ``reports`` are (image, report dict) pairs, newest first; a report's ``site`` is the
    cloud it ran on.
    """
    rates: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for image, report in reports:
        if report.get("status") != "ok":
            continue
        key = (image, str(report.get("site", "")))
        if len(rates[key]) < policy.report_window:
            rates[key].append(
                (float(report.get("events_per_s", 0.0)), float(report.get("kb_per_s", 0.0)))
            )
    boots: dict[tuple[str, str], list[BootOutcome]] = defaultdict(list)
    for out in outcomes:
        if now - out.at <= policy.backoff_window_s:
            boots[(out.image, out.cloud)].append(out)
    result = []
    for key in sorted(set(rates) | set(boots)):
        r = rates.get(key, [])
        b = boots.get(key, [])
        failures = [o.at for o in b if not o.ok]
        result.append(
            SiteStats(
                image=key[0],
                cloud=key[1],
                reports=len(r),
                events_per_s=sum(x for x, _ in r) / len(r) if r else 0.0,
                kb_per_s=sum(y for _, y in r) / len(r) if r else 0.0,
                boots=len(b),
                boot_failures=len(failures),
                last_failure_at=max(failures) if failures else None,
            )
        )
    return result


def per_site(reports: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Jobs, mean and total events/s and KB/s per site over ok reports (for ``status``)."""
    acc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for report in reports:
        if report.get("status") == "ok":
            acc[str(report.get("site", ""))].append(
                (float(report.get("events_per_s", 0.0)), float(report.get("kb_per_s", 0.0)))
            )
    out = {}
    for site, vals in sorted(acc.items()):
        n = len(vals)
        out[site] = {
            "jobs": n,
            "events_per_s_mean": round(sum(v[0] for v in vals) / n, 2),
            "kb_per_s_mean": round(sum(v[1] for v in vals) / n, 2),
            "events_per_s_sum": round(sum(v[0] for v in vals), 2),
            "kb_per_s_sum": round(sum(v[1] for v in vals), 2),
        }
    return out
