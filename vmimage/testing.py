"""Helpers other test suites use to get a bootable image without knowing how it is built."""

from __future__ import annotations

from pathlib import Path

from vmimage.build import build_image
from vmimage.config import BuildConfig

#: The project directory the image's hepstream wheel is built from.
PROJECT_DIR = Path(__file__).resolve().parents[1]


def build_test_image(cache_dir: Path) -> Path:
    """The qcow2 of the current working tree, built once and then reused from ``cache_dir``.

    Idempotent: every layer is keyed by its content, so a second call with an unchanged tree
    returns the cached image in about a second, and after a code change only the hepstream
    layer and the disk are redone. The caller must boot it with ``snapshot=True`` (the
    default of :func:`vmimage.qemu.start_vm`) so the cached image stays pristine.
    """
    return build_image(PROJECT_DIR, BuildConfig(cache_dir=Path(cache_dir))).image
