"""User layer: a qcow2 overlay on a base image holding the user's plugins.

How, without nbd or libguestfs: the base is expanded to a sparse raw scratch file, its root
partition is loop-mounted at its offset and the plugins are copied in; then an empty qcow2
overlay of that scratch disk is rebased onto the base with ``qemu-img rebase`` (safe mode),
which copies into the overlay only the clusters that differ from the base. The overlay holds
just the touched ext4 blocks (plugin data, inode table, directory, bitmap and journal
blocks): a few MB.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from hepstream.errors import ConfigError, OutputError
from hepstream.io.partfiles import atomic_path
from vmimage.config import IMAGE_CONDITIONS_DIR, IMAGE_USER_DIR, cache_root


@dataclass
class DeriveResult:
    """The overlay, what it holds and what it cost."""

    image: Path
    base: Path
    plugins: list[str]  # paths inside the image
    size_bytes: int
    base_size_bytes: int
    derive_s: float

    def asdict(self) -> dict[str, object]:
        d = asdict(self)
        d["image"], d["base"] = str(self.image), str(self.base)
        return d


def _run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OutputError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc.stdout


def image_plugin_path(plugin: Path) -> str:
    """Where ``image derive`` puts a plugin inside the image."""
    return f"{IMAGE_USER_DIR}/{plugin.name}"


def partition_offset(raw: Path) -> int:
    """Byte offset of the first partition of an MBR disk (read with sfdisk)."""
    table = json.loads(_run(["sfdisk", "--json", str(raw)]))["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return int(table["partitions"][0]["start"]) * sector


def image_conditions_path(snapshot: Path) -> str:
    """Where ``image derive --conditions`` puts a conditions snapshot inside the image."""
    return f"{IMAGE_CONDITIONS_DIR}/{snapshot.name}"


def derive_image(
    base: Path,
    plugins: list[Path],
    output: Path,
    scratch_dir: Path | None = None,
    conditions: list[Path] | None = None,
) -> DeriveResult:
    """Write ``plugins`` into a new overlay of ``base``.

    Parameters
    ----------
    base
        The base qcow2; the overlay refers to it by absolute path.
    plugins
        Plugin source files, copied to ``/opt/hepstream/user/<name>`` in the image.
    output
        The overlay to create (written to a temporary name, then renamed).
    scratch_dir
        Where the sparse raw scratch copy goes; default: the hepstream cache.
    conditions
        Offline conditions snapshots (``hepstream conditions snapshot``), copied to
        ``/opt/hepstream/conditions/<name>``; jobs use them as ``--conditions`` there.
    """
    t0 = time.monotonic()
    conditions = list(conditions or [])
    _check_inputs(base, plugins, conditions)
    base = base.resolve()
    scratch_parent = scratch_dir or cache_root() / "vmimage"
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="derive-", dir=scratch_parent) as tmp:
        work = Path(tmp)
        raw = work / "disk.raw"
        _run(["qemu-img", "convert", "-O", "raw", str(base), str(raw)])
        with _mounted_root(raw, work / "mnt") as root:
            _add_user_files(root, plugins, conditions, base)
        _overlay(raw, base, output)

    return DeriveResult(
        image=output,
        base=base,
        plugins=[image_plugin_path(p) for p in plugins],
        size_bytes=output.stat().st_size,
        base_size_bytes=base.stat().st_size,
        derive_s=time.monotonic() - t0,
    )


def _check_inputs(base: Path, plugins: list[Path], conditions: list[Path]) -> None:
    """Root, an existing base, plugin files and real conditions snapshots, or a clear line."""
    if os.geteuid() != 0:
        raise ConfigError("deriving an image needs root (loop mount): run it as root")
    if not base.exists():
        raise ConfigError(f"base image {base} does not exist: build or pull it first")
    for p in plugins:
        if not p.is_file():
            raise ConfigError(f"plugin {p} is not a file: pass the selection's .py file")
    for snap in conditions:
        if not (snap / "conditions.sqlite").is_file():
            raise ConfigError(
                f"{snap} is not a conditions snapshot; write one with hepstream conditions snapshot"
            )


@contextlib.contextmanager
def _mounted_root(raw: Path, mnt: Path) -> Iterator[Path]:
    """The first partition of the disk ``raw``, loop-mounted at ``mnt`` (created) while in use."""
    offset = partition_offset(raw)
    mnt.mkdir()
    dev = _run(["losetup", "--find", "--show", "--offset", str(offset), str(raw)]).strip()
    try:
        _run(["mount", dev, str(mnt)])
        try:
            yield mnt
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)


def _add_user_files(root: Path, plugins: list[Path], conditions: list[Path], base: Path) -> None:
    """Copy the plugins and conditions snapshots into the mounted image ``root``, with an
    index of them (``derived.json``) beside the plugins."""
    dest = root / IMAGE_USER_DIR.lstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    for p in plugins:
        shutil.copyfile(p, dest / p.name)
        (dest / p.name).chmod(0o644)
    for snap in conditions:
        inside = root / image_conditions_path(snap).lstrip("/")
        shutil.rmtree(inside, ignore_errors=True)
        shutil.copytree(snap, inside)
        for path in [inside, *inside.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    index = {"plugins": [image_plugin_path(p) for p in plugins], "base": str(base)}
    if conditions:
        index["conditions"] = [image_conditions_path(c) for c in conditions]
    (dest / "derived.json").write_text(json.dumps(index, indent=2) + "\n")


def _overlay(raw: Path, base: Path, output: Path) -> None:
    """``output``: a qcow2 of ``raw`` that holds only the clusters where it differs from
    ``base``, and names ``base`` as its backing file."""
    with atomic_path(output) as partial:
        # An empty overlay of the modified scratch disk, rebased (safe mode) onto the base:
        # qemu-img compares old and new backing cluster by cluster and copies only the
        # clusters that differ into the overlay.
        create = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(raw), "-F", "raw"]
        rebase = ["qemu-img", "rebase", "-q", "-f", "qcow2", "-b", str(base), "-F", "qcow2"]
        _run([*create, str(partial)])
        _run([*rebase, str(partial)])


def backing_file(image: Path) -> str | None:
    """The backing file an overlay names, or ``None`` for a standalone image."""
    info: dict[str, str] = json.loads(_run(["qemu-img", "info", "--output=json", str(image)]))
    return info.get("backing-filename")
