"""The QEMU edge without booting: command line, NoCloud seed, guestfwd relay."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from vmimage import _relay
from vmimage.qemu import KernelBoot, make_seed, netdev_arg, qemu_command


def test_qemu_command_uses_tcg_cpu_max_and_restricted_net(tmp_path):
    cmd = qemu_command(
        Path("/d.qcow2"),
        seed=Path("/s.img"),
        serial_log=tmp_path / "s.log",
        memory_mb=2048,
        cpus=2,
        forwards={1094: 40000},
        snapshot=True,
    )
    text = " ".join(cmd)
    assert cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-cpu") + 1] == "max"
    assert cmd[cmd.index("-m") + 1] == "2048"
    assert "restrict=on" in text
    assert "guestfwd=tcp:10.0.2.100:1094-cmd:" in text
    assert "127.0.0.1 40000" in text
    assert "snapshot=on" in text
    assert "-kernel" not in cmd


def test_direct_kernel_boot_adds_kernel_initrd_append(tmp_path):
    kb = KernelBoot(Path("/k"), Path("/i"), "root=UUID=x ro")
    cmd = qemu_command(
        Path("/d.qcow2"),
        seed=None,
        serial_log=tmp_path / "s.log",
        memory_mb=512,
        cpus=1,
        forwards={},
        snapshot=False,
        kernel=kb,
    )
    assert cmd[cmd.index("-kernel") + 1] == "/k"
    assert cmd[cmd.index("-append") + 1] == "root=UUID=x ro"
    assert "snapshot=on" not in " ".join(cmd)


def test_netdev_has_one_forward_per_port():
    arg = netdev_arg({1094: 1, 8080: 2})
    assert arg.count("guestfwd=") == 2


def test_seed_disk_is_labelled_cidata(tmp_path):
    seed = make_seed({"plugin": "/p.py", "inputs": ["a"], "output": "o", "report": "r"}, tmp_path)
    label = subprocess.run(
        ["blkid", "-p", "-s", "LABEL", "-o", "value", str(seed)], capture_output=True, text=True
    ).stdout.strip()
    assert label.lower() == "cidata"


def test_a_seed_that_may_hold_a_key_is_private(tmp_path):
    import stat

    job = {"plugin": "/p.py", "inputs": ["a"], "output": "o", "report": "r", "sss_keytab": "k"}
    seed = make_seed(job, tmp_path)
    for path in (seed, tmp_path / "user-data"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _echo_server():
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(4096):
                    conn.sendall(data.upper())

    threading.Thread(target=serve, daemon=True).start()
    return srv


@pytest.mark.parametrize("n_connections", [3])
def test_relay_carries_several_connections(n_connections):
    """guestfwd's cmd: runs the relay once per guest connection; each must round-trip."""
    srv = _echo_server()
    port = srv.getsockname()[1]
    relay = Path(_relay.__file__)
    try:
        for i in range(n_connections):
            guest, qemu_side = socket.socketpair()
            proc = subprocess.Popen(
                [sys.executable, str(relay), "127.0.0.1", str(port)],
                stdin=qemu_side.fileno(),
                stdout=qemu_side.fileno(),
            )
            qemu_side.close()
            guest.sendall(f"hello {i}".encode())
            guest.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := guest.recv(4096):
                got += chunk
            guest.close()
            assert got == f"HELLO {i}".encode()
            assert proc.wait(10) == 0
    finally:
        srv.close()


def test_relay_exits_when_host_port_is_closed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r, w = os.pipe()
    proc = subprocess.run(
        [sys.executable, _relay.__file__, "127.0.0.1", str(port)], stdin=r, stdout=w, timeout=10
    )
    os.close(r)
    os.close(w)
    assert proc.returncode == 1
