"""Dataset fixtures: a small multi-file sample, real Slurm and Dask daemons (bounded)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dshelp import PLUGIN, child_env

from hepstream.cli import main
from hepstream.tools.generate import generate_sample

#: Four files of 6,000 events in 1,000-event baskets: several clusters per file.
FILES, EVENTS = 4, 6_000


@pytest.fixture(scope="session")
def dataset_files() -> Iterator[list[Path]]:
    base = Path(tempfile.mkdtemp(prefix="hepstream-dsdata-"))
    try:
        yield [
            generate_sample(
                base / f"tau1n_{i}.root", "tau1n-mc", EVENTS, seed=20 + i, events_per_basket=1_000
            )
            for i in range(FILES)
        ]
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def reference(dataset_files, tmp_path_factory) -> Path:
    """One ``hepstream run`` over every input: what a merged dataset must equal."""
    out = tmp_path_factory.mktemp("reference") / "all.parquet"
    argv = [
        sys.executable,
        "-m",
        "hepstream",
        "run",
        str(PLUGIN),
        *map(str, dataset_files),
        "-o",
        str(out),
        "--no-progress",
    ]
    subprocess.run(argv, check=True, env=child_env(), capture_output=True, timeout=300)
    return out


@pytest.fixture
def split_dataset(dataset_files, tmp_path):
    """``hepstream dataset split`` of the sample, one file per job, into a fresh dir."""

    def make(name: str = "ds", *extra: str) -> Path:
        directory = tmp_path / name
        rc = main(
            [
                "dataset",
                "split",
                str(PLUGIN),
                *map(str, dataset_files),
                "--dir",
                str(directory),
                "--files-per-job",
                "1",
                *extra,
            ]
        )
        assert rc == 0
        return directory

    return make


@pytest.fixture
def dask_cluster():
    from tests.support.daskcluster import DaskCluster

    with DaskCluster(workers=2, lifetime_s=300, env=child_env()) as cluster:
        yield cluster
