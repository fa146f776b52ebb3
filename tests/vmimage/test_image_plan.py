"""Layer keys and the small files the builder bakes in."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vmimage import layers
from vmimage.config import BuildConfig

ROOT = Path(__file__).resolve().parents[2]


def test_code_change_only_rekeys_the_top_layer():
    cfg = BuildConfig()
    a = layers.layer_keys(cfg, ["numpy>=1.26"], "wheel-a")
    b = layers.layer_keys(cfg, ["numpy>=1.26"], "wheel-b")
    assert (a.rootfs, a.venv) == (b.rootfs, b.venv)
    assert a.image != b.image


def test_dependency_change_rekeys_venv_but_not_rootfs():
    cfg = BuildConfig()
    a = layers.layer_keys(cfg, ["numpy>=1.26"], "w")
    b = layers.layer_keys(cfg, ["numpy>=2"], "w")
    assert a.rootfs == b.rootfs
    assert a.venv != b.venv
    assert a.image != b.image


def test_package_change_rekeys_everything():
    cfg = BuildConfig()
    other = dataclasses.replace(cfg, packages=(*cfg.packages, "less"))
    a = layers.layer_keys(cfg, [], "w")
    b = layers.layer_keys(other, [], "w")
    assert a.rootfs != b.rootfs
    assert a.venv != b.venv


def test_dependency_order_does_not_matter():
    cfg = BuildConfig()
    assert layers.layer_keys(cfg, ["a", "b"], "w") == layers.layer_keys(cfg, ["b", "a"], "w")


def test_project_dependencies_read_from_pyproject():
    deps = layers.project_dependencies(ROOT / "pyproject.toml")
    assert any(d.startswith("numba") for d in deps)
    assert any(d.startswith("xrootd") for d in deps)


def test_grub_cfg_boots_the_kernel_on_the_serial_console():
    cfg = BuildConfig()
    uuid = layers.root_uuid("k")
    text = layers.grub_cfg("vmlinuz-6.1", "initrd.img-6.1", uuid, cfg)
    assert f"root=UUID={uuid}" in text
    assert "console=ttyS0" in text
    assert "set timeout=0" in text
    assert "initrd /boot/initrd.img-6.1" in text
    assert layers.kernel_cmdline(uuid, cfg) in text


def test_root_uuid_is_stable_per_key():
    assert layers.root_uuid("abc") == layers.root_uuid("abc")
    assert layers.root_uuid("abc") != layers.root_uuid("abd")


def test_root_size_leaves_free_space_and_is_mib_aligned():
    cfg = BuildConfig(free_mib=100)
    size = layers.root_size_bytes(500 << 20, cfg)
    assert size % (1 << 20) == 0
    assert size >= (500 << 20) + (100 << 20)


def test_prune_script_keeps_virtio_and_listed_ethernet():
    cfg = BuildConfig()
    script = layers.prune_script(cfg)
    assert "drivers/gpu" in script
    assert "virtio" not in script  # virtio drivers are never pruned
    for vendor in cfg.keep_ethernet:
        assert vendor in script
    assert "depmod" in script


def test_agent_unit_runs_the_agent_module():
    unit = layers.agent_unit()
    assert "-m vmimage.agent" in unit
    assert "WantedBy=multi-user.target" in unit


def test_initramfs_lists_virtio_modules():
    conf, modules = layers.initramfs_conf(BuildConfig())
    assert "MODULES=list" in conf
    assert "virtio_blk" in modules.split()
