"""The local QEMU driver: URL rewriting (pure) and one real job through a real VM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from hepstream.cloud.drivers.base import make_tags
from hepstream.cloud.drivers.local import GUEST_HOST, LocalQemuDriver, _read_report, guest_urls
from hepstream.cloud.model import Cloud, VMSpec
from hepstream.cloud.policy import load_config
from hepstream.cloud.queues.local import LocalQueue
from hepstream.cloud.shim import Shim

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_guest_urls_rewrite_loopback_and_forward_ports():
    job = {
        "inputs": ["root://127.0.0.1:21094//data/a.root", "root://far.example//b.root"],
        "output": "root://localhost:21094//out/x.parquet",
        "report": "/tmp/r.json",
    }
    guest, forwards = guest_urls(job)
    assert guest["inputs"] == [
        f"root://{GUEST_HOST}:21094//data/a.root",
        "root://far.example//b.root",
    ]
    assert guest["output"] == f"root://{GUEST_HOST}:21094//out/x.parquet"
    assert guest["report"] == "/tmp/r.json"
    assert forwards == {21094: 21094}
    assert job["inputs"][0].startswith("root://127.0.0.1")  # the caller's job is untouched


@pytest.fixture(scope="session")
def test_image() -> Path:
    from vmimage.config import cache_root
    from vmimage.testing import build_test_image

    return build_test_image(cache_root())


@pytest.mark.vm
@pytest.mark.cloud
@pytest.mark.xrootd
@pytest.mark.slow
def test_queue_to_vm_to_report_and_retired(tmp_path, test_image, xrootd_server, sample_dir):
    config = tmp_path / "cloud.toml"
    config.write_text(
        f"""
[shim]
id = "e2e"
state = "state.sqlite"
workdir = "vms"

[policy]
boot_timeout_s = 1800
idle_keepalive_s = 0

[[cloud]]
name = "local"
quota = 1
driver = "local"
[cloud.options.images]
hepstream-test = "{test_image}"
"""
    )
    cfg = load_config(config)
    queue = LocalQueue(cfg.state_path)
    sample = sorted(p.name for p in sample_dir.glob("tau1n*.root"))[0]
    job = queue.add(
        VMSpec("hepstream-test", 1, 2048, "alice"),
        {
            "plugin_source": (EXAMPLES / "tau1n.py").read_text(),
            "inputs": [xrootd_server.data_url(sample)],
            "output": xrootd_server.out_url("e2e-job.parquet"),
            "report": xrootd_server.out_url("e2e-job.report.json"),
        },
    )

    shim = Shim.from_config(cfg)
    shim.run(interval=2.0, until_idle=True, max_rounds=1200)

    done = queue.get(job)
    assert done.job.status == "done", (done.error, _serial_tail(cfg.workdir))
    report = done.report
    assert report["status"] == "ok"
    assert report["site"] == "local"
    assert report["events_read"] > 0
    assert report["events_per_s"] > 0
    assert shim.state.live() == []
    assert not any((cfg.workdir / "local").iterdir())  # VM dir cleaned up
    assert not _qemu_pids_under(cfg.workdir)


def _serial_tail(workdir: Path) -> str:
    logs = sorted(workdir.glob("*/*/serial.log"))
    return logs[-1].read_text(errors="replace")[-3000:] if logs else "no serial log"


def _qemu_pids_under(workdir: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"qemu" in cmd and str(workdir).encode() in cmd:
                pids.append(int(proc.name))
    return pids


def test_report_json_is_read_from_a_path(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"status": "ok", "site": "local"}))
    assert _read_report(str(path)) == {"status": "ok", "site": "local"}
    assert _read_report(str(tmp_path / "missing.json")) is None
    assert os.path.exists(path)


def test_restarted_driver_finds_running_vm_by_its_files(tmp_path):
    """A VM started by an earlier shim process is listed, collected and killed by pid."""

    fake_qemu = tmp_path / "qemu-standin"
    shutil.copy("/bin/sleep", fake_qemu)
    proc = subprocess.Popen([str(fake_qemu), "300"])
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    for _ in range(100):  # under load the child may not have exec'd yet
        if b"qemu-standin" in cmdline.read_bytes():
            break
        time.sleep(0.05)
    try:
        driver = LocalQemuDriver(Cloud("local", 1, driver="local"), "s", workdir=tmp_path)
        vmdir = driver.workdir / "s-1"
        vmdir.mkdir(parents=True)
        tags = make_tags("s", "s-1", VMSpec("img"), "job-1", 1.0)
        job = {"report": str(tmp_path / "none.json"), "site": "local"}
        (vmdir / "vm.json").write_text(json.dumps({"tags": tags, "pid": proc.pid, "job": job}))
        (vm,) = driver.list()
        assert (vm.cloud_id, vm.state, vm.registered) == ("s-1", "pending", False)
        (vmdir / "serial.log").write_text(
            "[ 1.0] hepstream-agent: start\n"
            '[ 9.0] hepstream-agent: result {"status": "ok", "events_per_s": 50.0}\n'
        )
        (vm,) = driver.list()
        assert (vm.state, vm.registered) == ("running", True)
        assert driver.collect("s-1") == {"status": "ok", "events_per_s": 50.0, "site": "local"}
        driver.destroy("s-1")
        assert proc.wait(10) != 0
        assert driver.list() == []
    finally:
        proc.kill()
        proc.wait()
