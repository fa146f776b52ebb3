"""Offline snapshot of one global tag: ``conditions.sqlite`` + ``payloads/`` in a directory.

The layout is a conditions directory with one global tag, so a job (or a VM image layer
carrying it) reads it as it reads any local source: ``--conditions DIR``. The snapshot is
built under a temp name beside the target and renamed when complete.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from hepstream.conditions import payload as payload_files
from hepstream.conditions.client import Source
from hepstream.conditions.model import GlobalTag
from hepstream.conditions.store import Store
from hepstream.errors import ConfigError, OutputError


def write_snapshot(
    source: Source,
    name: str,
    target: str | Path,
    allow_open: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> GlobalTag:
    """Copy global tag ``name`` and every payload it uses from ``source`` to ``target``."""
    target = Path(target)
    if target.exists():
        raise OutputError(f"snapshot target {target} exists; remove it or choose another path")
    gt = source.global_tag(name)
    if not gt.locked and not allow_open:
        raise ConfigError(
            f"global tag {name} is OPEN; lock it before taking a snapshot "
            f"(or pass --allow-open-tag)"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    try:
        with Store(tmp, create=True) as store:
            store.put_global_tag(gt)
        for done, payload in enumerate(gt.payloads.values(), 1):
            path = source.fetch(payload)
            with open(path, "rb") as handle:  # checked again while copied
                payload_files.write_stream(
                    tmp / "payloads",
                    payload.sha256,
                    iter(functools.partial(handle.read, payload_files.BLOCK), b""),
                    origin=str(path),
                    fix=f"the file is damaged: {source.repair}",
                )
            if progress is not None:
                progress(done, len(gt.payloads))
        tmp.chmod(0o755)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return gt
