"""Fixtures of the conditions tests: a multi-run sample, a beam DB, a server process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from condhelpers import N_EVENTS, PER_BASKET, PER_RUN, PER_SUBRUN, RUNS

from hepstream.conditions.sample import build_beam_db
from hepstream.conditions.server import ConditionsServer
from hepstream.tools.generate import GeneratorConfig, generate_sample


@pytest.fixture(scope="session")
def multirun_sample() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="hepstream-cond-sample-"))
    try:
        cfg = GeneratorConfig(events_per_run=PER_RUN, events_per_subrun=PER_SUBRUN)
        yield generate_sample(
            base / "multirun.root",
            "tau1n-data",
            N_EVENTS,
            seed=7,
            events_per_basket=PER_BASKET,
            config=cfg,
        )
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
