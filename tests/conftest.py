"""Shared session fixtures: synthetic samples on disk and one xrootd daemon serving them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hepstream.tools.serve import XRootDServer

# Small enough to generate in a couple of seconds, large enough for several baskets per file.
SAMPLE_FILES = {
    "tau1n_mc_000.root": ("tau1n-mc", 20_000, "zlib"),
    "tau1n_data_000.root": ("tau1n-data", 20_000, "zlib"),
    "tau11_mc_000.root": ("tau11-mc", 5_000, "lz4"),
}


@pytest.fixture(scope="session", autouse=True)
def sss_credential() -> Iterator[Path]:
    """This session's own ``sss`` key, in ``$XrdSecsssKT`` before any XRootD client loads.

    The client reads that variable once per process, so every server the tests start trusts
    this one key (their default) and every job, in process or spawned, presents it.
    """
    import os

    from hepstream.io.auth import KEYTAB_ENV, create_keytab

    base = Path(tempfile.mkdtemp(prefix="hepstream-sss-"))
    keytab = create_keytab(base / "test.keytab", ["hepstream-test"])
    before = os.environ.get(KEYTAB_ENV)
    os.environ[KEYTAB_ENV] = str(keytab)
    try:
        yield keytab
    finally:
        if before is None:
            os.environ.pop(KEYTAB_ENV, None)
        else:
            os.environ[KEYTAB_ENV] = before
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_dir() -> Iterator[Path]:
    """World-traversable directory with the three synthetic samples (the daemon's user reads it)."""
    from hepstream.tools.generate import generate_sample

    base = Path(tempfile.mkdtemp(prefix="hepstream-samples-"))
    base.chmod(0o755)
    try:
        for i, (name, (kind, n_events, codec)) in enumerate(SAMPLE_FILES.items()):
            path = generate_sample(
                base / name,
                kind,
                n_events,
                seed=100 + i,
                compression=codec,
                events_per_basket=5_000 if n_events > 5_000 else 1_000,
            )
            path.chmod(0o644)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def xrootd_server(sample_dir: Path) -> Iterator[XRootDServer]:
    """One ``XRootDServer(sample_dir)`` on 127.0.0.1 for the whole session."""
    from hepstream.tools.serve import XRootDServer

    with XRootDServer(sample_dir) as server:
        yield server


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """A fresh output directory on local disk."""
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real one-node Slurm (munged, slurmctld, slurmd) for the session; stopped after."""
    from tests.support.slurm import SlurmCluster, slurm_missing

    if slurm_missing():
        pytest.fail(
            f"{slurm_missing()} missing: apt-get install slurm-wlm munge (Makefile DEB_TEST)"
        )
    with SlurmCluster(cpus=2, lifetime_s=900) as cluster:
        yield cluster


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the xrootd daemon's user can traverse, with a world-writable ``out/``:
    the data and output directories of a server a fault test kills, stalls or restarts."""
    path = Path(tempfile.mkdtemp(prefix="hepstream-faults-"))
    path.chmod(0o755)
    (path / "out").mkdir(mode=0o777)
    (path / "out").chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
