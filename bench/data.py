"""Generated Tau1N-data samples: made once, cached in ``bench/.data``, staged for the server."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from bench.settings import BenchSettings

#: The sample the reference plugin selects on: 8 % tau pairs in a data-like background mix.
KIND = "tau1n-data"


def sample_name(settings: BenchSettings, index: int) -> str:
    """Cache file name; it encodes everything that changes the file's contents."""
    return (
        f"tau1n_data_{settings.events_per_file}ev_{settings.events_per_basket}epb_"
        f"s{settings.seed + index}_{index:03d}.root"
    )


def ensure_samples(settings: BenchSettings, cache: Path, count: int) -> list[Path]:
    """The first ``count`` sample files, generating only the ones not cached yet."""
    from hepstream.tools.generate import generate_sample

    cache.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = cache / sample_name(settings, index)
        if not path.exists():
            generate_sample(
                path,
                KIND,
                settings.events_per_file,
                seed=settings.seed + index,
                events_per_basket=settings.events_per_basket,
                first_event=index * settings.events_per_file,
            )
        path.chmod(0o644)  # the xrootd daemon's user reads the staged link
        paths.append(path)
    return paths


def stage(paths: list[Path], served: Path) -> list[Path]:
    """Hard-link (or copy) cached files into the world-traversable directory ``served``."""
    out = []
    for path in paths:
        target = served / path.name
        if not target.exists():
            try:
                os.link(path, target)
            except OSError:  # another file system: a copy costs seconds, once per session
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                shutil.copyfile(path, target)
            target.chmod(0o644)
        out.append(target)
    return out
