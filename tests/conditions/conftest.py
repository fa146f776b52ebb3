"""Fixtures of the conditions tests: a multi-run sample, a beam DB, a server process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hepstream.conditions.sample import build_beam_db
from hepstream.conditions.server import ConditionsServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CALIB_PLUGIN = EXAMPLES / "tau1n_calib.py"
#: 12 000 events, 3 000 per run (runs 10000-10003), 1 000 per sub-run, 2 000 per cluster:
#: the cluster [2000, 4000) straddles the run boundary at event 3000.
N_EVENTS, PER_RUN, PER_SUBRUN, PER_BASKET = 12_000, 3_000, 1_000, 2_000
RUNS = (10_000, 10_001, 10_002, 10_003)


@pytest.fixture(scope="session")
def multirun_sample() -> Iterator[Path]:
    from hepstream.generate import GeneratorConfig, generate_sample

    base = Path(tempfile.mkdtemp(prefix="hepstream-cond-sample-"))
    try:
        cfg = GeneratorConfig(events_per_run=PER_RUN, events_per_subrun=PER_SUBRUN)
        yield generate_sample(
            base / "multirun.root", "tau1n-data", N_EVENTS, seed=7,
            events_per_basket=PER_BASKET, config=cfg,
        )  # fmt: skip
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def beam_db(tmp_path: Path) -> Path:
    """A LOCKED ``beam-v1`` with one ``beam`` IOV per run of the sample."""
    db = tmp_path / "db"
    build_beam_db(db, RUNS).close()
    return db


@pytest.fixture
def server(beam_db: Path, tmp_path: Path) -> Iterator[ConditionsServer]:
    with ConditionsServer(beam_db, access_log=tmp_path / "server-access.log") as srv:
        yield srv


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
