"""Fixtures for the cloud shim: a manual clock, simulated VM agents, moto_server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hepstream.cloud.model import Cloud

VENV_BIN = Path(sys.executable).parent


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory):
    """A moto_server (EC2 API) on loopback for the whole session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("HS_TEST_AWS_KEY", "AKIDHEPSTREAMTEST")
    monkeypatch.setenv("HS_TEST_AWS_SECRET", "not-a-real-secret-value")
    return {"access_key_env": "HS_TEST_AWS_KEY", "secret_key_env": "HS_TEST_AWS_SECRET"}


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture(scope="session")
def fake_nova():
    """The loopback Keystone + Nova look-alike (no real Nova can run here)."""
    from fakenova import FakeNova

    with FakeNova() as nova:
        yield nova


@pytest.fixture
def nova_cloud(fake_nova, monkeypatch):
    monkeypatch.setenv("HS_TEST_OS_PASSWORD", "os-secret-value")
    fake_nova.fail_next = 0
    options = {
        "auth_url": fake_nova.url,
        "username": "hep",
        "project": "hepstream",
        "password_env": "HS_TEST_OS_PASSWORD",
        "images": {"img": "glance-img-1"},
    }
    return Cloud("os", 3, driver="openstack", options=options)
