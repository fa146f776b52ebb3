"""A cloud of one machine: boot vmimage images under QEMU, one job per VM.

Each VM gets ``<workdir>/<vm name>/`` holding ``vm.json`` (tags and QEMU's pid), the
NoCloud seed and the serial log, so a restarted shim lists and adopts VMs it did not start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from XRootD import client as xrootd_client

from hepstream.cloud.drivers.base import BootRequest, CloudAPIError, CloudState, ObservedVM
from hepstream.cloud.model import Cloud
from hepstream.errors import ConfigError
from hepstream.io.auth import with_credential
from hepstream.io.partfiles import pid_alive
from hepstream.io.urls import is_remote, via_cache
from vmimage.config import AGENT_PREFIX
from vmimage.qemu import KernelBoot, VMProcess, start_vm
from vmimage.repo import PullResult, pull

log = logging.getLogger("hepstream.cloud")  # the shim's log: boots are reported there
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
GUEST_HOST = "10.0.2.100"  # QEMU slirp guestfwd address (vmimage.qemu.GUEST_FWD_ADDR)


def guest_urls(job: dict[str, Any]) -> tuple[dict[str, Any], dict[int, int]]:
    """Rewrite loopback ``root://`` URLs of a job to the guest's forward address.

    Returns the job as the VM must see it and the guest-port -> host-port forwards.
    """
    forwards: dict[int, int] = {}

    def fix(url: str) -> str:
        if not is_remote(url):
            return url
        parts = urlsplit(url)
        if parts.hostname not in _LOOPBACK:
            return url
        port = parts.port or 1094
        forwards[port] = port
        netloc = (f"{parts.username}@" if parts.username else "") + f"{GUEST_HOST}:{port}"
        return urlunsplit(parts._replace(netloc=netloc))

    out = dict(job)
    for key in ("output", "report", "plugin_source", "next_job_url"):
        if out.get(key):
            out[key] = fix(out[key])
    out["inputs"] = [fix(u) for u in out.get("inputs", [])]
    return out, forwards


def _alive(pid: int) -> bool:
    if not pid_alive(pid):
        return False
    try:  # a reused pid of something else is not our VM
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return b"qemu" in cmdline and ") Z " not in stat


@dataclass
class ImageBytes:
    """Image bytes a driver pulled into its site directory vs found already there."""

    pulled: int = 0
    found: int = 0


class LocalQemuDriver:
    """Boots ``vmimage`` images with :func:`vmimage.qemu.start_vm`; the job goes in at boot.

    Options: ``images`` (image name -> qcow2 path; a path works as image name too),
    ``repository`` (an image repository, directory or ``root://`` URL: other image names are
    ``name:version`` in it), ``image_dir`` (where this host keeps pulled images, default
    ``<workdir>/images``; blobs come through the cloud's ``site_cache``, the site's XCache),
    ``workdir`` (default: the shim's workdir; VMs live in its cloud-name directory),
    ``direct_kernel`` (boot the kernel saved next to the image, default true).
    """

    binds_job = True

    def __init__(self, cloud: Cloud, shim_id: str, workdir: Path | None = None) -> None:
        self.cloud = cloud
        self.shim_id = shim_id
        opts = cloud.options
        base = Path(opts.get("workdir") or (workdir or Path("hepstream-cloud")))
        self.workdir = base / cloud.name
        self._images = {k: Path(v) for k, v in dict(opts.get("images", {})).items()}
        self._repository: str | None = opts.get("repository")
        # shared by every cloud of this host: a site keeps one copy of each image
        self.image_dir = Path(opts.get("image_dir") or base / "images")
        # the cloud's site cache serves its jobs' inputs and its images alike
        self._site_cache = cloud.site_cache
        self._direct_kernel = bool(opts.get("direct_kernel", True))
        self._procs: dict[str, VMProcess] = {}  # the VMs this process started
        self.image_bytes = ImageBytes()
        self._bytes_lock = threading.Lock()

    def disk(self, image: str) -> Path:
        """The qcow2 VMs of ``image`` boot from: its ``images`` entry, else its site copy from
        the repository (pulled once per host, verified), else ``image`` as a path."""
        if image in self._images:
            disk = self._images[image]
        elif self._repository and "/" not in image:  # a ref never holds "/", a path may
            disk = self._pull(self._repository, image).image
        else:
            disk = Path(image)
        if not disk.exists():
            raise ConfigError(
                f"cloud {self.cloud.name!r}: no qcow2 for image {image!r}; add it to "
                f"[cloud.options.images], set a repository, or build it with "
                f"'hepstream image build'"
            )
        return disk

    def _pull(self, repository: str, ref: str) -> PullResult:
        res = pull(repository, ref, self.image_dir, cache=self._site_cache)
        with self._bytes_lock:
            self.image_bytes.pulled += res.downloaded_bytes
            self.image_bytes.found += res.skipped_bytes
        log.info(
            "cloud %s: image %s: %d bytes pulled from %s, %d bytes found in %s (%.1f s)",
            self.cloud.name,
            ref,
            res.downloaded_bytes,
            via_cache(repository, self._site_cache),
            res.skipped_bytes,
            self.image_dir,
            res.seconds,
        )
        return res

    def boot(self, request: BootRequest) -> str:
        if request.job is None:
            raise ConfigError("the local driver boots a VM for one job; none was given")
        disk = self.disk(request.spec.image)
        job = {k: v for k, v in request.job.items() if k != "job_id"}
        job.setdefault("site", self.cloud.name)
        job.setdefault("owner", request.spec.owner)
        guest_job, forwards = guest_urls(with_credential(job))  # the key: seed only, not vm.json
        vmdir = self.workdir / request.name
        vmdir.mkdir(parents=True, exist_ok=True)
        kernel = None
        if self._direct_kernel and disk.with_suffix(".json").exists():
            kernel = KernelBoot.for_image(disk)  # skips BIOS + GRUB: much faster under TCG
        try:
            proc = start_vm(
                disk,
                job=guest_job,
                workdir=vmdir,
                memory_mb=request.spec.memory_mb,
                cpus=request.spec.cpus,
                forwards=forwards,
                snapshot=True,
                kernel=kernel,
            )
        except OSError as err:
            raise CloudAPIError(f"cloud {self.cloud.name}: qemu did not start: {err}") from None
        meta = {"tags": dict(request.tags), "pid": proc.pid, "job": job}
        tmp = vmdir / "vm.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(vmdir / "vm.json")
        self._procs[request.name] = proc
        return request.name

    def _meta(self, vmdir: Path) -> dict[str, Any] | None:
        try:
            return json.loads((vmdir / "vm.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    def list(self) -> list[ObservedVM]:
        out: list[ObservedVM] = []
        if not self.workdir.exists():
            return out
        for vmdir in sorted(p for p in self.workdir.iterdir() if p.is_dir()):
            meta = self._meta(vmdir)
            if meta is None:
                continue
            proc = self._procs.get(vmdir.name)
            running = proc.poll() is None if proc is not None else _alive(int(meta["pid"]))
            serial = vmdir / "serial.log"
            agent_up = serial.exists() and AGENT_PREFIX in serial.read_text(errors="replace")
            state: CloudState = ("running" if agent_up else "pending") if running else "stopped"
            out.append(ObservedVM(vmdir.name, state, meta["tags"], registered=agent_up))
        return out

    def collect(self, cloud_id: str) -> dict[str, Any] | None:
        """The job report of a VM: the uploaded report if readable, else the console's."""
        vmdir = self.workdir / cloud_id
        meta = self._meta(vmdir)
        if meta is None:
            return None
        report = _read_report(str(meta["job"].get("report", "")))
        if report is not None:
            return report
        results = []
        serial = vmdir / "serial.log"
        if serial.exists():
            for line in serial.read_text(errors="replace").splitlines():
                pos = line.find("result {")
                if pos >= 0:
                    try:
                        results.append(json.loads(line[pos + len("result ") :]))
                    except json.JSONDecodeError:
                        continue
        if not results:
            return None
        summary = results[-1]
        return {**summary, "site": meta["job"].get("site", self.cloud.name)}

    def destroy(self, cloud_id: str) -> None:
        vmdir = self.workdir / cloud_id
        proc = self._procs.pop(cloud_id, None)
        if proc is not None:
            proc.terminate()
        else:
            meta = self._meta(vmdir)
            if meta is not None and _alive(int(meta["pid"])):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(meta["pid"]), 9)
        serial = vmdir / "serial.log"
        if serial.exists():  # keep the console for post-mortems, outside the VM dirs
            logs = self.workdir.parent / "logs" / self.cloud.name
            logs.mkdir(parents=True, exist_ok=True)
            serial.replace(logs / f"{cloud_id}.serial.log")
        shutil.rmtree(vmdir, ignore_errors=True)


def _read_report(url: str) -> dict[str, Any] | None:
    """Read a report JSON from a path or ``root://`` URL; None when it is not there."""
    if not url:
        return None
    try:
        if is_remote(url):
            with xrootd_client.File() as f:
                status, _ = f.open(url)
                if not status.ok:
                    return None
                status, data = f.read()
                if not status.ok:
                    return None
            return json.loads(data)
        return json.loads(Path(url).read_text())
    except (OSError, ValueError):
        return None
