"""Build a bootable qcow2 from cached layers: debootstrap rootfs, venv, hepstream wheel.

Runs as root on Debian with debootstrap, mkfs.ext4, sfdisk, losetup, grub-install and
qemu-img. Each layer is a tarball in the cache keyed by its inputs (see :mod:`vmimage.layers`),
so after a code change only the wheel + agent layer and the disk assembly are redone.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hepstream.errors import ConfigError, OutputError
from hepstream.io.partfiles import atomic_path
from vmimage import layers
from vmimage.config import IMAGE_VENV, ROOT_LABEL, BuildConfig

log = logging.getLogger(__name__)

#: The environment every chroot command gets: nothing of the host's leaks in (pip config,
#: find-links, constraints, proxies); PIP_CONFIG_FILE=/dev/null ignores any pip.conf.
_CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "PIP_CONFIG_FILE": "/dev/null",
    "PIP_NO_CACHE_DIR": "1",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    "PIP_DEFAULT_TIMEOUT": "180",
}
_HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
_CA_IN_CHROOT = "/tmp/hepstream-build-ca.crt"
_TOOLS = ("debootstrap", "mkfs.ext4", "sfdisk", "grub-mkimage", "qemu-img", "tar")


@dataclass
class BuildResult:
    """What a build produced and what it cost."""

    image: Path
    kernel: Path
    initrd: Path
    key: str
    size_bytes: int
    virtual_size_bytes: int
    build_s: float
    steps: dict[str, float] = field(default_factory=dict)  # step name -> seconds
    cached: dict[str, bool] = field(default_factory=dict)  # layer -> reused from cache
    cmdline: str = ""

    def asdict(self) -> dict[str, object]:
        d = asdict(self)
        for k in ("image", "kernel", "initrd"):
            d[k] = str(d[k])
        return d


def _run(
    cmd: list[str], *, input: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    log.debug("run: %s", " ".join(cmd))
    proc = subprocess.run(cmd, text=True, capture_output=True, input=input, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-15:]
        raise OutputError(f"image build step failed: {' '.join(cmd[:4])}...: " + " | ".join(tail))
    return proc


def _chroot(root: Path, script: str, extra_env: dict[str, str] | None = None) -> str:
    """Run a shell script inside the image root with a clean environment (``env -i``)."""
    env = {**_CHROOT_ENV, **(extra_env or {})}
    cmd = ["env", "-i", *(f"{k}={v}" for k, v in env.items())]
    cmd += ["chroot", str(root), "/bin/sh", "-euc", script]
    return _run(cmd).stdout


@contextlib.contextmanager
def _mounted_api(root: Path) -> Iterator[None]:
    """/proc, /sys, /dev and /dev/pts inside the chroot, always unmounted again."""
    done: list[Path] = []
    try:
        for src, dst, args in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--bind"]),
            ("devpts", "dev/pts", ["-t", "devpts"]),
        ):
            target = root / dst
            target.mkdir(parents=True, exist_ok=True)
            _run(["mount", *args, src, str(target)])
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def _atomic_tar(src: Path, dest: Path, members: list[str]) -> None:
    """Tar ``members`` of ``src`` into ``dest`` via a temporary file (never a half layer)."""
    with atomic_path(dest) as tmp:
        _run(["tar", "--numeric-owner", "--xattrs", "-C", str(src), "-cf", str(tmp), *members])


def _untar(tarball: Path, dest: Path) -> None:
    _run(["tar", "--numeric-owner", "--xattrs", "-C", str(dest), "-xf", str(tarball)])


def _layer_path(config: BuildConfig, layer: str, key: str) -> Path:
    """Where the cache keeps ``layer`` (``rootfs`` or ``venv``) built from inputs ``key``."""
    return config.layers_dir / f"{layer}-{key}.tar"


def build_rootfs(config: BuildConfig, key: str, work: Path) -> Path:
    """debootstrap minbase + kernel + initramfs + Python, as a cached tarball."""
    out = _layer_path(config, "rootfs", key)
    if out.exists():
        return out
    root = work / "rootfs"
    root.mkdir()
    log.info("debootstrap %s into %s", config.suite, root)
    _run(
        [
            "env",
            "-i",
            f"PATH={_CHROOT_ENV['PATH']}",
            "debootstrap",
            "--variant=minbase",
            config.suite,
            str(root),
            config.mirror,
        ]
    )
    dpkg_cfg = root / "etc/dpkg/dpkg.cfg.d/01-hepstream-nodoc"
    dpkg_cfg.write_text(layers.dpkg_nodoc())
    conf, modules = layers.initramfs_conf(config)
    (root / "etc/initramfs-tools/conf.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/initramfs-tools/conf.d/hepstream.conf").write_text(conf)
    (root / "etc/initramfs-tools/modules").write_text(modules)
    (root / "etc/kernel-img.conf").write_text("do_symlinks = no\nlink_in_boot = no\n")
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    pkgs = " ".join(config.packages)
    with _mounted_api(root):
        _chroot(
            root,
            "apt-get update -qq && "
            f"apt-get install -y -qq --no-install-recommends {pkgs} && "
            "apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin && "
            "rm -rf /usr/share/doc/* /usr/share/man/* /usr/share/info/* /var/log/*.log && "
            "systemctl enable systemd-networkd.service systemd-networkd-wait-online.service && "
            "systemctl mask getty@tty1.service serial-getty@ttyS0.service "
            "apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service && "
            "passwd -l root",
        )
        _chroot(root, layers.prune_script(config))
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/hostname").write_text("hepstream\n")
    _atomic_tar(root, out, ["."])
    return out


def build_venv(
    config: BuildConfig, key: str, rootfs: Path, requirements: list[str], work: Path
) -> Path:
    """The image's venv with hepstream's dependencies from PyPI, as a cached tarball."""
    out = _layer_path(config, "venv", key)
    if out.exists():
        return out
    root = work / "venv-root"
    root.mkdir()
    _untar(rootfs, root)
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    if _HOST_CA.exists():  # PyPI is reached through an intercepting CA: pass it, then remove it
        shutil.copy(_HOST_CA, root / _CA_IN_CHROOT.lstrip("/"))
    reqs = " ".join(f"'{r}'" for r in [*requirements, *config.agent_requirements])
    strip = " ".join(f"{IMAGE_VENV}/lib/python3*/site-packages/{d}" for d in config.strip_dirs)
    env = {"PIP_CERT": _CA_IN_CHROOT} if _HOST_CA.exists() else {}
    compile_flag = "" if config.keep_bytecode else "--no-compile"
    try:
        with _mounted_api(root):
            _chroot(
                root,
                f"python3 -m venv {IMAGE_VENV} && "
                f"{IMAGE_VENV}/bin/python -m pip install -q {compile_flag} {reqs} && "
                f"rm -rf {strip} && "
                f"find {IMAGE_VENV} -name '*.a' -delete",
                env,
            )
    finally:
        (root / _CA_IN_CHROOT.lstrip("/")).unlink(missing_ok=True)
        (root / "etc/resolv.conf").unlink(missing_ok=True)
    _atomic_tar(root, out, [f".{IMAGE_VENV}"])
    return out


def build_wheel(source: Path, dest: Path) -> Path:
    """A wheel of the working tree (hepstream + vmimage), without its dependencies."""
    dest.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(source)]
    if importlib.util.find_spec("hatchling") is not None:  # the build backend is here already
        cmd.insert(5, "--no-build-isolation")
    _run(cmd, env=env)
    wheels = sorted(dest.glob("hepstream-*.whl"))
    if not wheels:
        raise OutputError(f"no hepstream wheel was built from {source}: check its pyproject.toml")
    return wheels[-1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _du_bytes(root: Path) -> int:
    out = _run(["du", "-s", "--block-size=1", str(root)]).stdout
    return int(out.split()[0])


def _kernel_files(root: Path) -> tuple[str, str]:
    kernels = sorted(p.name for p in (root / "boot").glob("vmlinuz-*"))
    initrds = sorted(p.name for p in (root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise OutputError(f"no kernel/initrd under {root / 'boot'}: delete the rootfs layer cache")
    return kernels[-1], initrds[-1]


_GRUB_DIR = Path("/usr/lib/grub/i386-pc")
#: GRUB modules linked into core.img: enough to read the ext4 partition and boot Linux.
_GRUB_CORE_MODULES = [
    "biosdisk",
    "part_msdos",
    "ext2",
    "search_fs_uuid",
    "normal",
    "linux",
    "serial",
    "terminal",
    "echo",
    "test",
]
_MBR_CODE_BYTES = 440  # boot.img code; the disk signature and partition table follow


def stage_grub(staging: Path) -> None:
    """Copy GRUB's i386-pc modules to /boot/grub so ``insmod`` finds them at boot."""
    dest = staging / "boot/grub/i386-pc"
    dest.mkdir(parents=True, exist_ok=True)
    for f in _GRUB_DIR.iterdir():
        if f.suffix in (".mod", ".lst", ".o"):
            shutil.copy(f, dest / f.name)


def install_grub_mbr(raw: Path, work: Path, partition_offset: int) -> None:
    """Put GRUB's boot.img in the MBR and core.img in the gap before the partition.

    Same layout ``grub-install --target=i386-pc`` writes, without its device probing
    (grub-probe cannot map loop partitions to a BIOS drive here): boot.img loads sector 1
    and diskboot (core.img's first sector) loads the rest from sector 2 on, the defaults
    both images carry; core.img's prefix names the first MBR partition.
    """
    core = work / "core.img"
    _run(
        [
            "grub-mkimage",
            "-O",
            "i386-pc",
            "-o",
            str(core),
            "-p",
            "(hd0,msdos1)/boot/grub",
            *_GRUB_CORE_MODULES,
        ]
    )
    core_bytes = core.read_bytes()
    if 512 + len(core_bytes) > partition_offset:
        raise OutputError(f"GRUB core.img ({len(core_bytes)} B) does not fit before the partition")
    boot = (_GRUB_DIR / "boot.img").read_bytes()
    with raw.open("r+b") as f:
        f.write(boot[:_MBR_CODE_BYTES])
        f.seek(512)
        f.write(core_bytes)


def assemble_disk(config: BuildConfig, staging: Path, raw: Path, fs_uuid: str) -> None:
    """MBR disk: one ext4 partition made by ``mkfs.ext4 -d``, GRUB in the MBR and its gap."""
    stage_grub(staging)
    fs_bytes = layers.root_size_bytes(_du_bytes(staging), config)
    off = config.partition_offset
    raw.unlink(missing_ok=True)
    with raw.open("wb") as f:
        f.truncate(off + fs_bytes)
    _run(["sfdisk", "-q", str(raw)], input=f"label: dos\nstart={off // 512}, type=83, bootable\n")
    _run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            ROOT_LABEL,
            "-U",
            fs_uuid,
            "-d",
            str(staging),
            "-E",
            f"offset={off},lazy_itable_init=1,lazy_journal_init=1",
            str(raw),
            f"{fs_bytes // 1024}k",
        ]
    )
    install_grub_mbr(raw, raw.parent, off)


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise ConfigError("building an image needs root (chroot, loop devices): run it as root")
    missing = [t for t in _TOOLS if shutil.which(t) is None]
    if missing:
        raise ConfigError(
            f"missing tools {', '.join(missing)}: apt-get install debootstrap e2fsprogs fdisk "
            "grub-pc-bin qemu-utils"
        )


class _Steps:
    """A build's steps as they go: each announced as it starts and timed; which layers
    came from the cache."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.say = progress or (lambda _s: None)
        self.seconds: dict[str, float] = {}  # step name -> seconds
        self.cached: dict[str, bool] = {}  # layer -> reused from cache

    @contextlib.contextmanager
    def step(self, name: str, cached: bool | None = None) -> Iterator[None]:
        """Time the step ``name``; ``cached``: whether its layer comes from the cache."""
        t = time.monotonic()
        if cached is not None:
            self.cached[name] = cached
        self.say(name + (" (cached)" if cached else ""))
        yield
        self.seconds[name] = time.monotonic() - t


def build_image(
    source: Path,
    config: BuildConfig | None = None,
    output: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build (or reuse) the image of the working tree ``source``.

    Parameters
    ----------
    source
        The hepstream project directory (its ``pyproject.toml`` gives the dependency list).
    config
        Build policy; defaults to :class:`BuildConfig`.
    output
        Where to copy the final qcow2; the cached copy is returned when omitted.
    progress
        Called with a short step name as each step starts.
    """
    config = config or BuildConfig()
    _check_tools()
    t0 = time.monotonic()
    steps = _Steps(progress)
    config.layers_dir.mkdir(parents=True, exist_ok=True)
    config.images_dir.mkdir(parents=True, exist_ok=True)
    pyproject = source / "pyproject.toml"
    if not pyproject.exists():
        raise ConfigError(f"{source} has no pyproject.toml: pass the hepstream project directory")
    requirements = layers.project_dependencies(pyproject)

    with tempfile.TemporaryDirectory(prefix="build-", dir=config.cache_dir / "vmimage") as tmp:
        work = Path(tmp)
        with steps.step("wheel"):
            wheel = build_wheel(source, work / "wheel")
        keys = layers.layer_keys(config, requirements, _sha256(wheel))
        final = config.images_dir / f"hepstream-{keys.image}.qcow2"
        reused = _reuse(final, steps.seconds, t0)
        if reused is not None:
            return _deliver(reused, output)

        base = _base_layers(config, keys, requirements, work, steps)
        fs_uuid = layers.root_uuid(keys.image)
        staging = work / "staging"
        with steps.step("hepstream layer"):
            kernel, initrd = stage_root(config, base, wheel, fs_uuid, staging)
        steps.cached["image"] = False
        raw = work / "disk.raw"
        with steps.step("disk"):
            assemble_disk(config, staging, raw, fs_uuid)
            kernel_out, initrd_out = final.with_suffix(".vmlinuz"), final.with_suffix(".initrd")
            shutil.copy(staging / "boot" / kernel, kernel_out)
            shutil.copy(staging / "boot" / initrd, initrd_out)
            shutil.rmtree(staging)
        with steps.step("qcow2"):
            cmd = ["qemu-img", "convert", "-O", "qcow2", *(["-c"] if config.compress else [])]
            with atomic_path(final) as tmp_final:
                _run([*cmd, str(raw), str(tmp_final)])

    result = BuildResult(
        image=final,
        kernel=kernel_out,
        initrd=initrd_out,
        key=keys.image,
        size_bytes=final.stat().st_size,
        virtual_size_bytes=_virtual_size(final),
        build_s=time.monotonic() - t0,
        steps=steps.seconds,
        cached=steps.cached,
        cmdline=layers.kernel_cmdline(fs_uuid, config),
    )
    with atomic_path(final.with_suffix(".json")) as tmp_meta:
        tmp_meta.write_text(json.dumps(result.asdict(), indent=2))
    prune_cache(config)
    return _deliver(result, output)


def _reuse(final: Path, steps: dict[str, float], t0: float) -> BuildResult | None:
    """The image built before from the same inputs, when it and its metadata are there."""
    meta = final.with_suffix(".json")
    if not (final.exists() and meta.exists()):
        return None
    cached = {"rootfs": True, "venv": True, "image": True}
    result = BuildResult(**{**json.loads(meta.read_text()), "cached": cached})
    result.image, result.kernel, result.initrd = (
        Path(result.image),
        Path(result.kernel),
        Path(result.initrd),
    )
    result.build_s = time.monotonic() - t0
    result.steps = steps
    return result


def _base_layers(
    config: BuildConfig,
    keys: layers.LayerKeys,
    requirements: list[str],
    work: Path,
    steps: _Steps,
) -> tuple[Path, Path]:
    """The rootfs and venv layers, each reused from the cache or built (a step each)."""
    with steps.step("rootfs", cached=_layer_path(config, "rootfs", keys.rootfs).exists()):
        rootfs = build_rootfs(config, keys.rootfs, work)
        shutil.rmtree(work / "rootfs", ignore_errors=True)
    with steps.step("venv", cached=_layer_path(config, "venv", keys.venv).exists()):
        venv = build_venv(config, keys.venv, rootfs, requirements, work)
        shutil.rmtree(work / "venv-root", ignore_errors=True)
    return rootfs, venv


def stage_root(
    config: BuildConfig, base: tuple[Path, Path], wheel: Path, fs_uuid: str, staging: Path
) -> tuple[str, str]:
    """The image's root tree in ``staging``: the rootfs and venv layers unpacked, the wheel
    installed into the venv, the per-build files written; the kernel's and initrd's names."""
    staging.mkdir()
    for layer in base:
        _untar(layer, staging)
    wheel_in = staging / "tmp" / wheel.name
    shutil.copy(wheel, wheel_in)
    compile_flag = "" if config.keep_bytecode else "--no-compile"
    _chroot(
        staging,
        f"{IMAGE_VENV}/bin/python -m pip install -q --no-deps --no-index {compile_flag} "
        f"/tmp/{wheel.name}",
    )
    wheel_in.unlink()
    _write_image_files(staging, config, fs_uuid)
    return _kernel_files(staging)


def prune_cache(config: BuildConfig) -> list[Path]:
    """Delete all but the newest cached images and layers; returns what was removed."""
    removed: list[Path] = []
    groups = [
        (config.images_dir, "hepstream-*.qcow2", config.keep_images),
        (config.layers_dir, "rootfs-*.tar", config.keep_layers),
        (config.layers_dir, "venv-*.tar", config.keep_layers),
    ]
    for folder, pattern, keep in groups:
        files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[keep:]:
            for f in [old, *(old.with_suffix(s) for s in (".json", ".vmlinuz", ".initrd"))]:
                if f.exists():
                    f.unlink()
                    removed.append(f)
    return removed


def _write_image_files(staging: Path, config: BuildConfig, fs_uuid: str) -> None:
    """fstab, GRUB menu, network and the agent unit: the small, per-build files."""
    kernel, initrd = _kernel_files(staging)
    (staging / "etc/fstab").write_text(layers.fstab(fs_uuid))
    grub_dir = staging / "boot/grub"
    grub_dir.mkdir(parents=True, exist_ok=True)
    (grub_dir / "grub.cfg").write_text(layers.grub_cfg(kernel, initrd, fs_uuid, config))
    net = staging / "etc/systemd/network/10-hepstream.network"
    net.parent.mkdir(parents=True, exist_ok=True)
    net.write_text(layers.network_config())
    unit = staging / "etc/systemd/system/hepstream-agent.service"
    unit.write_text(layers.agent_unit())
    wants = staging / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "hepstream-agent.service"
    link.unlink(missing_ok=True)
    link.symlink_to("/etc/systemd/system/hepstream-agent.service")
    (staging / "var/cache/numba").mkdir(parents=True, exist_ok=True)


def _virtual_size(image: Path) -> int:
    info = json.loads(_run(["qemu-img", "info", "--output=json", str(image)]).stdout)
    return int(info["virtual-size"])


def _deliver(result: BuildResult, output: Path | None) -> BuildResult:
    """Copy the cached image to ``output`` (atomically) if one was asked for."""
    if output is None:
        return result
    with atomic_path(output) as tmp:
        shutil.copy(result.image, tmp)
    result.image = output
    return result
