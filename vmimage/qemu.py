"""Boot an image under QEMU with a NoCloud job seed; read what its agent says on serial.

QEMU runs with TCG (``-accel tcg -cpu max``: KVM is not usable here, and without
``-cpu max`` numpy's baseline SIMD dies with SIGILL) and user networking restricted to
forwards from ``10.0.2.100:<guest port>`` to ``127.0.0.1:<host port>``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hepstream.errors import ConfigError, OutputError
from vmimage.config import AGENT_PREFIX

#: Address the guest dials for every forward (QEMU slirp's guestfwd).
GUEST_FWD_ADDR = "10.0.2.100"


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (``-kernel/-initrd/-append``): skips BIOS + GRUB."""

    kernel: Path
    initrd: Path
    cmdline: str

    @classmethod
    def for_image(cls, image: Path) -> KernelBoot:
        """The kernel, initrd and command line the builder saved next to ``image``."""
        meta = image.with_suffix(".json")
        if not meta.exists():
            raise ConfigError(f"{meta} is missing: direct kernel boot needs a built image")
        info = json.loads(meta.read_text())
        return cls(Path(info["kernel"]), Path(info["initrd"]), info["cmdline"])


def user_data(job: dict[str, Any]) -> str:
    """NoCloud user-data for ``job``: JSON under ``hepstream:``, which is also valid YAML."""
    return "#cloud-config\n" + json.dumps({"hepstream": job}, indent=2) + "\n"


def make_seed(job: dict[str, Any], workdir: Path) -> Path:
    """A NoCloud seed disk (label ``cidata``) made by ``cloud-localds``."""
    if shutil.which("cloud-localds") is None:
        raise ConfigError("cloud-localds is missing: apt-get install cloud-image-utils")
    ud = workdir / "user-data"
    ud.unlink(missing_ok=True)  # may carry the user's sss key: private from the first byte
    with os.fdopen(os.open(ud, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(user_data(job))
    md = workdir / "meta-data"
    md.write_text(f"instance-id: hepstream-{int(time.time())}\nlocal-hostname: hepstream\n")
    seed = workdir / "seed.img"
    proc = subprocess.run(
        ["cloud-localds", str(seed), str(ud), str(md)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise OutputError(f"cloud-localds failed: {proc.stderr.strip()}")
    seed.chmod(0o600)  # holds the user-data, so possibly the user's sss key
    return seed


def netdev_arg(forwards: dict[int, int]) -> str:
    """``-netdev user`` with a relay command per guest connection for each forward.

    The ``cmd:`` form spawns the relay for every connection the guest opens, so clients
    that reconnect (XRootD, pool HTTP requests) keep working; QEMU's plain ``tcp:`` chardev
    form is one connection made at start-up.
    """
    parts = ["user", "id=n0", "restrict=on"]
    relay = Path(__file__).with_name("_relay.py")
    for guest, host in sorted(forwards.items()):
        parts.append(
            f"guestfwd=tcp:{GUEST_FWD_ADDR}:{guest}-cmd:{sys.executable} {relay} 127.0.0.1 {host}"
        )
    return ",".join(parts)


def qemu_command(
    disk: Path,
    *,
    seed: Path | None,
    serial_log: Path,
    memory_mb: int,
    cpus: int,
    forwards: dict[int, int],
    snapshot: bool,
    kernel: KernelBoot | None = None,
) -> list[str]:
    """The full ``qemu-system-x86_64`` command line (pure: tests check it directly)."""
    snap = ",snapshot=on" if snapshot else ""
    cmd = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "max",
        "-m",
        str(memory_mb),
        "-smp",
        str(cpus),
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-serial",
        f"file:{serial_log}",
        "-drive",
        f"file={disk},format=qcow2,if=virtio,cache=unsafe{snap}",
        "-netdev",
        netdev_arg(forwards),
        "-device",
        "virtio-net-pci,netdev=n0",
    ]
    if seed is not None:
        cmd += ["-drive", f"file={seed},format=raw,if=virtio,readonly=on"]
    if kernel is not None:
        cmd += ["-kernel", str(kernel.kernel), "-initrd", str(kernel.initrd)]
        cmd += ["-append", kernel.cmdline]
    return cmd


class VMProcess:
    """A running VM: the QEMU process plus its serial log."""

    def __init__(self, proc: subprocess.Popen[bytes], serial_log: Path, qemu_log: Path) -> None:
        self._proc = proc
        self.serial_log = serial_log
        self.qemu_log = qemu_log
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def poll(self) -> int | None:
        return self._proc.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for QEMU to exit (the agent powers off); raises TimeoutExpired on timeout."""
        return self._proc.wait(timeout)

    def terminate(self) -> None:
        """Stop QEMU (SIGTERM, then SIGKILL after 10 s)."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def agent_lines(self) -> list[str]:
        """Lines the agent wrote to the serial console, without the prefix."""
        if not self.serial_log.exists():
            return []
        text = self.serial_log.read_text(errors="replace")
        out = []
        for line in text.splitlines():
            pos = line.find(AGENT_PREFIX)
            if pos >= 0:
                out.append(line[pos + len(AGENT_PREFIX) :].strip())
        return out

    def agent_status(self) -> str | None:
        """``ok``/``failed`` once the agent's ``done`` line is out; ``None`` before."""
        for line in reversed(self.agent_lines()):
            if line.startswith("done status="):
                return line.split("=", 1)[1].strip()
        return None

    def agent_results(self) -> list[dict[str, Any]]:
        """The per-job summaries (``result {...}`` lines) the agent printed."""
        out = []
        for line in self.agent_lines():
            if line.startswith("result "):
                try:
                    out.append(json.loads(line[len("result ") :]))
                except json.JSONDecodeError:
                    continue  # a console line cut by the kernel's own output
        return out

    def __enter__(self) -> VMProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()


def start_vm(
    disk: Path,
    *,
    job: dict[str, Any] | None,
    workdir: Path,
    memory_mb: int = 2048,
    cpus: int = 1,
    forwards: dict[int, int] | None = None,
    snapshot: bool = True,
    kernel: KernelBoot | None = None,
) -> VMProcess:
    """Boot ``disk`` with ``job`` in its NoCloud seed; returns at once.

    Parameters
    ----------
    disk
        A qcow2 image built by :func:`vmimage.build.build_image` (or derived from one).
    job
        The ``hepstream:`` mapping of the agent (see :mod:`vmimage.agent`); ``None`` for no seed.
    workdir
        Holds the seed, ``serial.log`` and ``qemu.log``.
    forwards
        Guest port on 10.0.2.100 -> host port on 127.0.0.1.
    snapshot
        Keep the disk unchanged (writes go to a temporary overlay).
    kernel
        Boot this kernel directly instead of going through BIOS and GRUB.
    """
    if shutil.which("qemu-system-x86_64") is None:
        raise ConfigError("qemu-system-x86_64 is missing: apt-get install qemu-system-x86")
    if not disk.exists():
        raise ConfigError(f"image {disk} does not exist: build it with 'hepstream image build'")
    workdir.mkdir(parents=True, exist_ok=True)
    seed = make_seed(job, workdir) if job is not None else None
    serial_log = workdir / "serial.log"
    serial_log.unlink(missing_ok=True)
    qemu_log = workdir / "qemu.log"
    cmd = qemu_command(
        disk,
        seed=seed,
        serial_log=serial_log,
        memory_mb=memory_mb,
        cpus=cpus,
        forwards=forwards or {},
        snapshot=snapshot,
        kernel=kernel,
    )
    (workdir / "qemu.cmd").write_text(" ".join(cmd) + "\n")
    with qemu_log.open("wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    return VMProcess(proc, serial_log, qemu_log)
