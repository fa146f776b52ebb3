"""Helpers of the dataset tests (a module of its own: conftest is not importable)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "tau1n.py"


def child_env() -> dict[str, str]:
    """Environment for job processes and daemons: this checkout first on the path."""
    paths = [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def same_events(a: Path, b: Path) -> bool:
    import awkward as ak

    left, right = ak.from_parquet(a), ak.from_parquet(b)
    return len(left) == len(right) and ak.to_list(left) == ak.to_list(right)
