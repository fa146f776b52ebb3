"""Build the image, boot it under QEMU/TCG and run examples/tau1n.py over root://.

The VM reads the session's xrootd through guestfwd (10.0.2.100:1094 -> 127.0.0.1:port),
uploads its output and report there, and powers off; the output must equal a native
``hepstream run`` of the same job. GRUB boot and direct kernel boot (of a derived overlay
holding the plugin) are both exercised; events/s and boot times are printed, not asserted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmimage.bench import GUEST_XROOTD_PORT, guest_url, native_run, read_output, wait_agent
from vmimage.build import build_image
from vmimage.config import BuildConfig, cache_root
from vmimage.derive import derive_image
from vmimage.qemu import KernelBoot, start_vm
from vmimage.testing import PROJECT_DIR, build_test_image

pytestmark = [pytest.mark.vm, pytest.mark.slow]

TAU1N = PROJECT_DIR / "examples" / "tau1n.py"
SAMPLE = "tau1n_mc_000.root"
VM_TIMEOUT_S = 900  # TCG boot + numba JIT + job on 2 shared cores; a hang fails, not blocks


@pytest.fixture(scope="session")
def image() -> Path:
    res = build_image(PROJECT_DIR, BuildConfig(cache_dir=cache_root()))
    print(
        f"\nimage {res.image}: {res.size_bytes / 2**20:.0f} MiB, build {res.build_s:.1f} s, "
        f"steps {json.dumps({k: round(v, 1) for k, v in res.steps.items()})}, "
        f"cached {res.cached}"
    )
    return res.image


@pytest.fixture(scope="session")
def native(xrootd_server, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("native")
    report = native_run(
        TAU1N, [xrootd_server.data_url(SAMPLE)], work / "native.root", work / "native.json"
    )
    return {"report": report, "output": read_output(work / "native.root")}


def _run_in_vm(disk, job, workdir, xrootd_server, kernel=None, forwards=None):
    vm = start_vm(
        disk,
        job=job,
        workdir=workdir,
        forwards={GUEST_XROOTD_PORT: xrootd_server.port, **(forwards or {})},
        kernel=kernel,
    )
    boot_s, total_s = wait_agent(vm, VM_TIMEOUT_S)
    serial = vm.serial_log.read_text(errors="replace")
    assert vm.agent_status() == "ok", serial[-3000:]
    assert vm.agent_lines()[-1] == "done status=ok"
    return vm, boot_s, total_s


def _job(xrootd_server, name, **kw):
    from hepstream.io.auth import with_credential  # the session's key goes in the VM's seed

    return with_credential(
        {
            "inputs": [guest_url(xrootd_server.data_url(SAMPLE))],
            "output": guest_url(xrootd_server.out_url(f"{name}.root")),
            "report": guest_url(xrootd_server.out_url(f"{name}.json")),
            "site": f"vm-{name}",
            "owner": "tests",
            **kw,
        }
    )


def test_build_test_image_is_idempotent(image):
    assert build_test_image(cache_root()) == image


def test_grub_boot_runs_tau1n_like_native(image, native, xrootd_server, tmp_path):
    job = _job(xrootd_server, "grub", plugin_source=TAU1N.read_text())
    vm, boot_s, total_s = _run_in_vm(image, job, tmp_path / "vm", xrootd_server)
    out_dir = xrootd_server.out_path()
    report = json.loads((out_dir / "grub.json").read_text())
    assert report["status"] == "ok"
    assert report["site"] == "vm-grub"
    assert report["events_read"] == native["report"]["events_read"]
    assert read_output(out_dir / "grub.root") == native["output"]
    assert "Booting `hepstream'" in vm.serial_log.read_text(errors="replace")  # went through GRUB
    nat = native["report"]["events_per_s"]
    print(
        f"\nGRUB boot: agent after {boot_s:.1f} s, VM total {total_s:.1f} s; events/s "
        f"VM {report['events_per_s']:.0f} vs native {nat:.0f} "
        f"(ratio {report['events_per_s'] / nat:.3f}, TCG emulation)"
    )


def test_derived_overlay_direct_kernel_boot(image, native, xrootd_server, tmp_path):
    derived = derive_image(image, [TAU1N], tmp_path / "user.qcow2", scratch_dir=tmp_path)
    assert derived.size_bytes < 16 << 20
    job = _job(xrootd_server, "direct", plugin=derived.plugins[0])
    _vm, boot_s, total_s = _run_in_vm(
        derived.image, job, tmp_path / "vm", xrootd_server, kernel=KernelBoot.for_image(image)
    )
    out_dir = xrootd_server.out_path()
    assert json.loads((out_dir / "direct.json").read_text())["status"] == "ok"
    assert read_output(out_dir / "direct.root") == native["output"]
    print(
        f"\nderived overlay {derived.size_bytes / 2**20:.1f} MiB in {derived.derive_s:.1f} s; "
        f"direct kernel boot: agent after {boot_s:.1f} s, VM total {total_s:.1f} s"
    )


class _PoolServer:
    """The shim's job pool for one image, on host loopback: hands out ``jobs`` one per GET,
    then 204 (none left), and logs what it answered."""

    def __init__(self, jobs: list[dict]) -> None:
        import http.server
        import threading

        pool, answered = list(jobs), []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if pool:
                    body = json.dumps(pool.pop(0)).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    answered.append(200)
                else:
                    self.send_response(204)
                    self.end_headers()
                    answered.append(204)

            def log_message(self, *args) -> None:
                pass

        self.answered = answered
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_a_vm_takes_jobs_of_its_image_until_none_are_left(image, native, xrootd_server, tmp_path):
    """Pool mode, as in the paper: the VM runs its first job, takes the next from the pool,
    runs it, finds none left and powers off; both outputs equal the native run's."""
    from vmimage.qemu import GUEST_FWD_ADDR

    guest_pool_port = 8080
    second = _job(xrootd_server, "pool-2", plugin_source=TAU1N.read_text())
    pool = _PoolServer([second])
    try:
        first = _job(
            xrootd_server,
            "pool-1",
            plugin_source=TAU1N.read_text(),
            mode="pool",
            next_job_url=f"http://{GUEST_FWD_ADDR}:{guest_pool_port}/next",
        )
        vm, _boot_s, total_s = _run_in_vm(
            image, first, tmp_path / "vm", xrootd_server, forwards={guest_pool_port: pool.port}
        )
    finally:
        pool.close()
    assert pool.answered == [200, 204]  # one more job, then none left: the VM retired
    assert vm.poll() is not None  # powered off by itself
    out_dir = xrootd_server.out_path()
    for name in ("pool-1", "pool-2"):
        report = json.loads((out_dir / f"{name}.json").read_text())
        assert report["status"] == "ok", name
        assert read_output(out_dir / f"{name}.root") == native["output"]
    assert [r["status"] for r in vm.agent_results()] == ["ok", "ok"]
    print(f"\npool VM: two jobs in a row and retired after {total_s:.1f} s")
