"""Constants and small helpers shared by the conditions tests."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CALIB_PLUGIN = EXAMPLES / "tau1n_calib.py"
#: 12 000 events, 3 000 per run (runs 10000-10003), 1 000 per sub-run, 2 000 per cluster:
#: the cluster [2000, 4000) straddles the run boundary at event 3000.
N_EVENTS, PER_RUN, PER_SUBRUN, PER_BASKET = 12_000, 3_000, 1_000, 2_000
RUNS = (10_000, 10_001, 10_002, 10_003)


def server_gets(log: Path) -> list[str]:
    """Paths of the GETs the central server answered with 200."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        method, path, status = line.split()
        if method == "GET" and status == "200" and path != "/":
            out.append(path)
    return out
