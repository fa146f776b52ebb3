"""Policy numbers and names of the image build, each in one place with its reason."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Bump when a change to the builder alters a layer's content, so old cache entries die.
BUILDER_VERSION = "3"

#: Where the venv lives inside the image; the agent unit and job plugins refer to it.
IMAGE_VENV = "/opt/hepstream/venv"
#: Where ``image derive`` puts user plugins inside the image.
IMAGE_USER_DIR = "/opt/hepstream/user"
#: Where ``image derive --conditions`` puts offline conditions snapshots.
IMAGE_CONDITIONS_DIR = "/opt/hepstream/conditions"
#: Filesystem label of the image's root partition.
ROOT_LABEL = "hsroot"
#: Label cloud-init's NoCloud seed disk carries (``cloud-localds`` sets it).
SEED_LABEL = "cidata"
#: Prefix of every line the agent writes to the serial console.
AGENT_PREFIX = "hepstream-agent:"


def cache_root() -> Path:
    """The cache directory: ``$HEPSTREAM_CACHE`` or ``~/.cache/hepstream``."""
    env = os.environ.get("HEPSTREAM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hepstream"


@dataclass(frozen=True)
class BuildConfig:
    """What goes into an image and how the disk is laid out."""

    suite: str = "bookworm"  # Debian 12 ships Python 3.11, the project's floor
    mirror: str = "http://deb.debian.org/debian"  # the Debian mirror reachable from here
    # systemd+udev so device units and the agent unit work; python3-venv for the image venv;
    # kmod to load isofs for the seed disk; zstd for a fast initramfs.
    packages: tuple[str, ...] = (
        "linux-image-amd64",
        "initramfs-tools",
        "systemd-sysv",
        "udev",
        "kmod",
        "zstd",
        "python3",
        "python3-venv",
    )
    # Modules the initramfs must hold to find the root disk under QEMU/KVM clouds (virtio).
    initramfs_modules: tuple[str, ...] = (
        "virtio_pci",
        "virtio_blk",
        "virtio_scsi",
        "sd_mod",
        "ext4",
    )
    # Extra PyPI packages of the agent: PyYAML lets users hand-write YAML user-data.
    agent_requirements: tuple[str, ...] = ("pyyaml>=6",)
    # Free space left in the root filesystem for numba's cache, job outputs and logs.
    free_mib: int = 1024
    # The partition starts at 1 MiB: leaves the MBR gap GRUB's core.img is embedded in.
    partition_offset: int = 1 << 20
    # Keep .pyc files: under TCG, compiling numpy/numba sources at every boot costs minutes.
    keep_bytecode: bool = True
    # qcow2 compression roughly halves the file but makes the build slower; off by default.
    compress: bool = False
    # Kernel command line: serial console for the agent's lines, no waiting on absent devices.
    kernel_args: tuple[str, ...] = (
        "console=ttyS0,115200",
        "net.ifnames=0",
        "systemd.show_status=false",
        "rd.udev.log_level=3",
    )
    # Kernel module trees no VM on a cloud needs (graphics, sound, Wi-Fi, USB, ...): ~250 MB.
    # Ethernet drivers beyond virtio/Intel/ENA/gVNIC go too; depmod runs afterwards.
    prune_modules: tuple[str, ...] = (
        "drivers/gpu",
        "drivers/media",
        "drivers/net/wireless",
        "drivers/infiniband",
        "drivers/usb",
        "drivers/iio",
        "drivers/staging",
        "drivers/bluetooth",
        "drivers/isdn",
        "drivers/mtd",
        "drivers/hwmon",
        "drivers/video",
        "drivers/target",
        "sound",
        "net/wireless",
        "net/mac80211",
        "net/bluetooth",
        "lib/test_bpf.ko",
    )
    # Ethernet vendors kept under drivers/net/ethernet: Intel (e1000), Amazon (ENA), Google.
    keep_ethernet: tuple[str, ...] = ("intel", "amazon", "google")
    # Directory names removed from site-packages (tests of big libraries; headers).
    strip_dirs: tuple[str, ...] = ("pyarrow/include", "pyarrow/tests", "numpy/_core/tests")
    # Cached images (~900 MiB each) and layer tarballs kept; older ones are deleted.
    keep_images: int = 2
    keep_layers: int = 2
    cache_dir: Path = field(default_factory=cache_root)

    @property
    def layers_dir(self) -> Path:
        return self.cache_dir / "vmimage" / "layers"

    @property
    def images_dir(self) -> Path:
        return self.cache_dir / "vmimage" / "images"
