"""Small real disk images for repository and derive tests (no debootstrap needed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


def make_mbr_ext4_qcow2(path: Path, size_mib: int = 64) -> Path:
    """A qcow2 holding an MBR disk with one ext4 partition at 1 MiB: the builder's layout."""
    raw = path.with_suffix(".raw")
    with raw.open("wb") as f:
        f.truncate(size_mib << 20)
    subprocess.run(
        ["sfdisk", "-q", str(raw)], input="label: dos\nstart=2048, type=83\n", text=True, check=True
    )
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-E", "offset=1048576", str(raw), f"{size_mib - 1}M"], check=True
    )
    subprocess.run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path


@pytest.fixture
def small_base(tmp_path: Path) -> Path:
    return make_mbr_ext4_qcow2(tmp_path / "base.qcow2")
