"""VM vs native: the same tau1n job on the same root:// file, natively and inside the image.

Under TCG (no KVM here) the VM's events/s measure CPU emulation, not the overhead of a
hardware-virtualised cloud VM; the ratio is reported as measured and labelled so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uproot

from hepstream.errors import OutputError
from hepstream.io.auth import with_credential
from hepstream.jobspec import INLINE_PLUGIN, JobSpec, ShippedJob
from hepstream.tools.generate import generate_sample
from hepstream.tools.serve import XRootDServer
from vmimage.config import cache_root
from vmimage.qemu import GUEST_FWD_ADDR, KernelBoot, VMProcess, start_vm
from vmimage.testing import PROJECT_DIR, build_test_image

#: Port the guest dials on 10.0.2.100 for the XRootD server.
GUEST_XROOTD_PORT = 1094


@dataclass(frozen=True)
class BenchConfig:
    """Size and limits of the comparison."""

    plugin: Path = PROJECT_DIR / "examples" / "tau1n.py"
    sample_kind: str = "tau1n-mc"
    seed: int = 4242
    vm_timeout_s: float = 900.0  # TCG boot + numba JIT + job on 2 shared cores
    memory_mb: int = 2048  # numba's LLVM + uproot + pyarrow need ~1 GB resident


def guest_url(server_url: str, guest_port: int = GUEST_XROOTD_PORT) -> str:
    """Rewrite a host ``root://127.0.0.1:PORT//x`` URL to the address the guest dials."""
    rest = server_url.split("://", 1)[1]
    _, _, path = rest.partition("/")
    return f"root://{GUEST_FWD_ADDR}:{guest_port}/{path}"


def native_run(plugin: Path, inputs: list[str], output: Path, report: Path) -> dict[str, Any]:
    """``hepstream run`` on the host; its report as a dict."""
    spec = JobSpec(str(plugin), tuple(inputs), str(output), report=str(report), site="native")
    cmd = [sys.executable, "-m", "hepstream", *spec.to_argv()]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OutputError(f"native run failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    answer: dict[str, Any] = json.loads(report.read_text())
    return answer


def wait_agent(vm: VMProcess, timeout: float) -> tuple[float | None, float]:
    """Wait for the VM to power off; (seconds until the agent's first line, total seconds)."""
    first: float | None = None
    end = time.monotonic() + timeout
    while vm.poll() is None and time.monotonic() < end:
        if first is None and vm.agent_lines():
            first = time.monotonic() - vm.started
        time.sleep(0.5)
    if vm.poll() is None:
        vm.terminate()
    if first is None and vm.agent_lines():
        first = time.monotonic() - vm.started
    return first, time.monotonic() - vm.started


def compare(
    image: Path | None = None,
    n_events: int = 20_000,
    direct_kernel: bool = False,
    config: BenchConfig | None = None,
) -> dict[str, Any]:
    """Generate a sample, serve it with xrootd, run the job natively and in a VM."""
    cfg = config or BenchConfig()
    image = image or build_test_image(cache_root())
    with tempfile.TemporaryDirectory(prefix="hepstream-vmbench-") as tmp:
        work = Path(tmp)
        data, out = _shared_dirs(work)
        sample = generate_sample(data / "bench.root", cfg.sample_kind, n_events, seed=cfg.seed)
        sample.chmod(0o644)
        with XRootDServer(data, out) as server:
            native = native_run(
                cfg.plugin, [server.data_url(sample.name)], work / "native.root", work / "n.json"
            )
            job = _vm_job(server, sample.name, cfg)
            kernel = KernelBoot.for_image(image) if direct_kernel else None
            vm = start_vm(
                image,
                job=job,
                workdir=work / "vm",
                memory_mb=cfg.memory_mb,
                forwards={GUEST_XROOTD_PORT: server.port},
                kernel=kernel,
            )
            boot_s, total_s = wait_agent(vm, cfg.vm_timeout_s)
            status = vm.agent_status()
            vm_report, equal = _vm_outputs(server.out_path(), work / "native.root")
            serial_tail = vm.serial_log.read_text(errors="replace").splitlines()[-30:]
    vm_eps = float(vm_report.get("events_per_s") or 0.0)
    nat_eps = float(native.get("events_per_s") or 0.0)
    return {
        "status": status,
        "events": n_events,
        "native_events_per_s": nat_eps,
        "vm_events_per_s": vm_eps,
        "ratio": vm_eps / nat_eps if nat_eps else 0.0,
        "boot_s": boot_s or 0.0,
        "vm_total_s": total_s,
        "boot": "direct-kernel" if direct_kernel else "grub",
        "outputs_equal": equal,
        "note": "TCG emulation (no KVM): the ratio measures CPU emulation",
        "serial_tail": serial_tail if status != "ok" else [],
    }


def _shared_dirs(work: Path) -> tuple[Path, Path]:
    """``data`` and ``out`` under ``work``, open to the xrootd daemon's user."""
    data, out = work / "data", work / "out"
    data.mkdir()
    out.mkdir()
    for d in (work, data, out):
        d.chmod(0o777)
    return data, out


def _vm_job(server: XRootDServer, sample: str, cfg: BenchConfig) -> dict[str, Any]:
    """The VM's job: the plugin shipped inline, input and outputs on ``server`` as the guest
    dials it, and the caller's sss key (in this VM's seed only)."""
    vm_spec = JobSpec(
        INLINE_PLUGIN,
        (guest_url(server.data_url(sample)),),
        guest_url(server.out_url("vm.root")),
        report=guest_url(server.out_url("vm-report.json")),
        site="vm",
    )
    shipped = ShippedJob(vm_spec, plugin_source=cfg.plugin.read_text(), owner="bench")
    return with_credential(shipped.to_mapping())


def _vm_outputs(served: Path, native_output: Path) -> tuple[dict[str, Any], bool]:
    """The VM job's report as uploaded to ``served`` ({} if none), and whether its output
    holds the same selection as the native run's."""
    report = served / "vm-report.json"
    vm_report = json.loads(report.read_text()) if report.exists() else {}
    equal = (served / "vm.root").exists() and _same_selection(native_output, served / "vm.root")
    return vm_report, equal


def _same_selection(a: Path, b: Path) -> bool:
    """True when two outputs hold the same selected events, branch by branch."""
    return read_output(a) == read_output(b)


def read_output(path: Path) -> dict[str, list[Any]]:
    """Every branch of every tree in a ROOT output, as plain lists (for equality checks)."""
    out: dict[str, list[Any]] = {}
    with uproot.open(path) as f:
        for key in sorted(f.keys(cycle=False)):
            obj = f[key]
            if isinstance(obj, uproot.TTree):
                arrays = obj.arrays(library="ak")
                for field in arrays.fields:
                    out[f"{key}/{field}"] = arrays[field].to_list()
    return out
