"""User layer: a small qcow2 overlay holding the plugin, backed by the base."""

from __future__ import annotations

import subprocess
from pathlib import Path

from vmimage.derive import backing_file, derive_image

ROOT = Path(__file__).resolve().parents[2]


def _read_from_image(image: Path, inside: str, tmp: Path) -> str:
    raw = tmp / "check.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    out = subprocess.run(
        ["debugfs", "-R", f"cat {inside}", f"{raw}?offset=1048576"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    raw.unlink()
    return out


def test_derive_writes_plugin_into_a_small_overlay(small_base, tmp_path):
    plugin = ROOT / "examples" / "tau1n.py"
    res = derive_image(small_base, [plugin], tmp_path / "user.qcow2", scratch_dir=tmp_path)
    assert backing_file(res.image) == str(small_base.resolve())
    assert res.plugins == ["/opt/hepstream/user/tau1n.py"]
    assert res.size_bytes < 4 << 20  # only the touched ext4 blocks
    assert (
        _read_from_image(res.image, "/opt/hepstream/user/tau1n.py", tmp_path) == plugin.read_text()
    )
    assert (
        _read_from_image(small_base, "/opt/hepstream/user/tau1n.py", tmp_path) == ""
    )  # base untouched


def test_derive_carries_a_conditions_snapshot(small_base, tmp_path):
    from hepstream.conditions.client import LocalSource
    from hepstream.conditions.payload import path_in
    from hepstream.conditions.sample import build_beam_db
    from hepstream.conditions.snapshot import write_snapshot

    store = build_beam_db(tmp_path / "db", [10_000, 10_001])
    gt = write_snapshot(LocalSource(store), "beam-v1", tmp_path / "beam-v1")
    store.close()
    plugin = ROOT / "examples" / "tau1n_calib.py"
    res = derive_image(
        small_base,
        [plugin],
        tmp_path / "user.qcow2",
        scratch_dir=tmp_path,
        conditions=[tmp_path / "beam-v1"],
    )
    sha = next(iter(gt.payloads))
    inside = "/opt/hepstream/conditions/beam-v1/" + str(path_in("payloads", sha))
    raw = tmp_path / "check.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(res.image), str(raw)], check=True)
    dump = tmp_path / "payload.bin"
    subprocess.run(
        ["debugfs", "-R", f"dump {inside} {dump}", f"{raw}?offset=1048576"],
        capture_output=True,
        check=True,
    )
    assert dump.read_bytes() == path_in(tmp_path / "beam-v1" / "payloads", sha).read_bytes()
    index = _read_from_image(res.image, "/opt/hepstream/user/derived.json", tmp_path)
    assert '"/opt/hepstream/conditions/beam-v1"' in index
