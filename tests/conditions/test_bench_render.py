"""The conditions rows of the bench report: target and table from a hand-made document."""

from __future__ import annotations

import pytest

from bench.render import evaluate, records, render


def test_conditions_target_and_table() -> None:
    doc = {
        "benchmarks": [
            {
                "name": "lat",
                "stats": {"median": 5.0, "rounds": 1},
                "extra_info": {
                    "suite": "conditions",
                    "kind": "latency",
                    "pairs": 3,
                    "cold_first_chunk_s": 1.2,
                    "warm_first_chunk_s": 1.1,
                    "cold_lookup_s": 0.02,
                    "warm_lookup_s": 0.004,
                },
            },
            {
                "name": "look",
                "stats": {"median": 2.0, "rounds": 5},
                "extra_info": {
                    "suite": "conditions",
                    "kind": "lookup",
                    "events": 200_000,
                    "files": 2,
                    "pieces": 12,
                    "payloads": 4,
                    "lookup_s": 0.01,
                    "lookup_fraction": 0.005,
                    "rate_with": 99_000.0,
                    "rate_without": 100_000.0,
                    "rate_cost": 0.01,
                },
            },
        ],
        "machine_info": {},
    }
    verdicts = {t.name: (v, verdict) for t, v, verdict in evaluate(records(doc))}
    assert verdicts["conditions lookups < 2 % of job time"] == (pytest.approx(1.0), "pass")
    text = render(doc)
    assert "## Conditions lookups" in text
    assert "99,000 events/s (calibration baked in: 100,000; cost 1.00 %)" in text
    assert "first chunk, cold conditions cache (3 runs) | 1.200 s" in text
