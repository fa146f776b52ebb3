"""The image's layers, planned: each layer's cache key and the small files baked into it.

Pure: :mod:`vmimage.build` does the building, this module says what goes in.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import uuid
from dataclasses import dataclass
from pathlib import Path

from vmimage.config import BUILDER_VERSION, IMAGE_VENV, BuildConfig


def _digest(*parts: object) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def project_dependencies(pyproject: Path) -> list[str]:
    """The runtime dependency list of the project (what the venv layer installs)."""
    data = tomllib.loads(pyproject.read_text())
    return list(data["project"]["dependencies"])


@dataclass(frozen=True)
class LayerKeys:
    """Cache keys of the three layers; each depends on everything below it."""

    rootfs: str
    venv: str
    image: str


def layer_keys(config: BuildConfig, requirements: list[str], wheel_sha256: str) -> LayerKeys:
    """Key each layer by its inputs so a code change only redoes the top layer."""
    rootfs = _digest(
        "rootfs",
        BUILDER_VERSION,
        config.suite,
        config.mirror,
        config.packages,
        config.initramfs_modules,
        config.prune_modules,
        config.keep_ethernet,
    )
    venv = _digest(
        "venv", rootfs, sorted(requirements), config.agent_requirements, config.strip_dirs
    )
    image = _digest(
        "image",
        venv,
        wheel_sha256,
        config.free_mib,
        config.partition_offset,
        config.keep_bytecode,
        config.compress,
        config.kernel_args,
    )
    return LayerKeys(rootfs=rootfs, venv=venv, image=image)


def root_uuid(image_key: str) -> str:
    """A filesystem UUID derived from the image key: the same inputs give the same disk."""
    return str(uuid.UUID(hashlib.sha256(image_key.encode()).hexdigest()[:32]))


def root_size_bytes(used_bytes: int, config: BuildConfig) -> int:
    """Root filesystem size: content plus 10 % ext4 overhead plus the configured free space."""
    size = int(used_bytes * 1.1) + config.free_mib * (1 << 20)
    mib = 1 << 20
    return (size + mib - 1) // mib * mib


def grub_cfg(kernel: str, initrd: str, fs_uuid: str, config: BuildConfig) -> str:
    """A fixed GRUB menu: no timeout, boots the baked kernel with the serial console."""
    args = " ".join(config.kernel_args)
    return (
        "set timeout=0\n"
        "serial --unit=0 --speed=115200\n"
        "terminal_input serial console\n"
        "terminal_output serial console\n"
        'menuentry "hepstream" {\n'
        "  insmod part_msdos\n"
        "  insmod ext2\n"
        f"  search --no-floppy --fs-uuid --set=root {fs_uuid}\n"
        f"  linux /boot/{kernel} root=UUID={fs_uuid} ro {args}\n"
        f"  initrd /boot/{initrd}\n"
        "}\n"
    )


def kernel_cmdline(fs_uuid: str, config: BuildConfig) -> str:
    """The same command line GRUB passes, for direct ``-kernel`` boots."""
    return f"root=UUID={fs_uuid} ro " + " ".join(config.kernel_args)


def fstab(fs_uuid: str) -> str:
    return f"UUID={fs_uuid} / ext4 defaults,errors=remount-ro 0 1\n"


def agent_unit() -> str:
    """systemd unit that runs the job agent once the network is configured."""
    return (
        "[Unit]\n"
        "Description=hepstream job agent\n"
        "Wants=network-online.target\n"
        "After=network-online.target systemd-networkd.service local-fs.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"ExecStart={IMAGE_VENV}/bin/python -m vmimage.agent\n"
        "StandardOutput=journal+console\n"
        "StandardError=journal+console\n"
        "Environment=PYTHONUNBUFFERED=1 HOME=/root NUMBA_CACHE_DIR=/var/cache/numba\n"
        "TimeoutStartSec=infinity\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


def network_config() -> str:
    """systemd-networkd: DHCP on every Ethernet link (QEMU's user net answers at once)."""
    return "[Match]\nType=ether\n\n[Network]\nDHCP=ipv4\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n"


def prune_script(config: BuildConfig) -> str:
    """Shell run in the chroot: drop unneeded kernel modules, translations and the hwdb."""
    trees = " ".join(f"$m/kernel/{t}" for t in config.prune_modules)
    keep = "|".join(config.keep_ethernet)
    return (
        "for m in /lib/modules/*; do "
        f"rm -rf {trees}; "
        "for d in $m/kernel/drivers/net/ethernet/*; do "
        f'case "${{d##*/}}" in {keep}) ;; *) rm -rf "$d" ;; esac; done; '
        'depmod -a "${m##*/}"; done; '
        "find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +; "
        "rm -f /usr/lib/udev/hwdb.bin /etc/udev/hwdb.bin; "
        "systemctl mask systemd-hwdb-update.service"
    )


def dpkg_nodoc() -> str:
    """dpkg filter that keeps docs, man pages and translations out of the image."""
    return (
        "path-exclude /usr/share/doc/*\n"
        "path-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\n"
        "path-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/locale/*\n"
        "path-include /usr/share/locale/locale.alias\n"
        "path-exclude /usr/share/lintian/*\n"
    )


def initramfs_conf(config: BuildConfig) -> tuple[str, str]:
    """initramfs-tools ``conf.d`` text and ``modules`` list: only what a virtio disk needs."""
    conf = "MODULES=list\nCOMPRESS=zstd\n"
    modules = "".join(f"{m}\n" for m in config.initramfs_modules)
    return conf, modules
