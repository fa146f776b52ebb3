"""The WAN proxy: latency and bandwidth are at least what was asked, bytes arrive intact."""

from __future__ import annotations

import os
import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from hepstream.errors import ConfigError
from tests.support.wanproxy import Link, WanProxy

SOCKET_TIMEOUT = 20.0  # s: a broken proxy fails the test instead of hanging it


class _Echo(socketserver.BaseRequestHandler):
    """Send back every byte as it comes; half-close after the client's EOF."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.request.shutdown(socket.SHUT_WR)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = False
    block_on_close = True


@pytest.fixture(scope="module")
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, name="echo-server")
    thread.start()
    try:
        yield server.server_address[:2]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _connect(proxy: WanProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        data = sock.recv(min(n - got, 1 << 20))
        assert data, f"connection closed after {got} of {n} bytes"
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def _send_and_collect(sock: socket.socket, payload: bytes) -> bytes:
    """Send everything, half-close, read back until EOF (a writer thread avoids deadlock)."""
    writer = threading.Thread(target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)))
    writer.start()
    parts = []
    while data := sock.recv(1 << 20):
        parts.append(data)
    writer.join()
    return b"".join(parts)


# -- the link model (pure) --------------------------------------------------------------------


def test_link_without_cap_releases_every_chunk_after_the_delay() -> None:
    link = Link(delay=0.05)
    releases = [link.schedule(10.0, 65536) for _ in range(100)]
    assert releases == [pytest.approx(10.05)] * 100


def test_link_with_cap_serialises_then_delays_and_is_shared() -> None:
    link = Link(delay=0.5, bytes_per_s=1000.0)
    assert link.schedule(0.0, 100) == pytest.approx(0.6)
    # a second connection's chunk at the same instant queues behind the first on the line
    assert link.schedule(0.0, 100) == pytest.approx(0.7)
    # after an idle gap the line is free again
    assert link.schedule(5.0, 1000) == pytest.approx(6.5)


@pytest.mark.parametrize(("delay", "rate"), [(-0.1, None), (0.0, 0.0), (0.0, -5.0)])
def test_link_rejects_impossible_settings(delay: float, rate: float | None) -> None:
    with pytest.raises(ConfigError):
        Link(delay, rate)


def test_proxy_rejects_negative_rtt() -> None:
    with pytest.raises(ConfigError, match="rtt_ms"):
        WanProxy(("127.0.0.1", 1), rtt_ms=-1)


# -- real sockets on loopback -----------------------------------------------------------------


def test_bytes_arrive_identical_and_half_close_propagates(echo) -> None:
    payload = os.urandom(3 << 20)
    with WanProxy(echo, rtt_ms=10) as proxy, _connect(proxy) as sock:
        back = _send_and_collect(sock, payload)
        assert back == payload
        stats = proxy.stats
    assert proxy.errors == []
    assert stats.connections == 1
    assert stats.bytes_up == len(payload)
    assert stats.bytes_down == len(payload)


def test_ping_pong_takes_at_least_the_round_trip(echo) -> None:
    rtt = 0.040
    with WanProxy(echo, rtt_ms=rtt * 1000) as proxy, _connect(proxy) as sock:
        times = []
        for i in range(5):
            began = time.perf_counter()
            sock.sendall(bytes([i]))
            assert _recv_exactly(sock, 1) == bytes([i])
            times.append(time.perf_counter() - began)
    assert min(times) >= 0.9 * rtt


def test_bandwidth_cap_bounds_transfer_time_from_below(echo) -> None:
    cap_mbps = 20.0
    payload = os.urandom(1 << 20)
    with WanProxy(echo, bandwidth_mbps=cap_mbps) as proxy, _connect(proxy) as sock:
        began = time.perf_counter()
        back = _send_and_collect(sock, payload)
        elapsed = time.perf_counter() - began
    assert back == payload
    assert elapsed >= 0.95 * len(payload) * 8 / (cap_mbps * 1e6)


def test_pipelined_chunks_share_one_round_trip(echo) -> None:
    rtt, chunks, size = 0.050, 40, 4096
    with WanProxy(echo, rtt_ms=rtt * 1000) as proxy, _connect(proxy) as sock:
        began = time.perf_counter()
        for i in range(chunks):
            sock.sendall(bytes([i]) * size)
        back = _recv_exactly(sock, chunks * size)
        elapsed = time.perf_counter() - began
    assert back == b"".join(bytes([i]) * size for i in range(chunks))
    assert elapsed >= 0.9 * rtt  # physics: nothing beats the link
    assert elapsed < 0.3 * chunks * rtt  # a pipe, not one chunk per round trip


def test_two_connections_share_the_capped_link(echo) -> None:
    cap_mbps, size = 20.0, 512 << 10
    payloads = [os.urandom(size), os.urandom(size)]
    results: list[bytes] = [b"", b""]
    with WanProxy(echo, bandwidth_mbps=cap_mbps) as proxy:
        socks = [_connect(proxy) for _ in payloads]
        began = time.perf_counter()

        def run(i: int) -> None:
            results[i] = _send_and_collect(socks[i], payloads[i])

        workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - began
        for sock in socks:
            sock.close()
        assert proxy.stats.connections == 2
    assert results == payloads
    assert elapsed >= 0.95 * 2 * size * 8 / (cap_mbps * 1e6)


def test_refused_target_drops_the_client_connection() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[:2]
    with WanProxy(dead, rtt_ms=5) as proxy, _connect(proxy) as sock:
        try:
            data = sock.recv(1)
        except ConnectionResetError:
            data = b""
        assert data == b""
    assert proxy.errors == []


def test_close_drops_open_connections_and_leaves_no_thread(echo) -> None:
    proxy = WanProxy(echo, rtt_ms=5).start()
    with _connect(proxy) as sock:
        sock.sendall(b"x")
        assert _recv_exactly(sock, 1) == b"x"
        proxy.close()
        try:
            data = sock.recv(1)
        except ConnectionResetError:
            data = b""
        assert data == b""
    assert not [t for t in threading.enumerate() if t.name == "hepstream-wanproxy"]
    assert proxy.errors == []
    with pytest.raises(RuntimeError, match="not running"):
        _ = proxy.address


def test_listen_on_a_busy_port_is_a_config_error(echo) -> None:
    with pytest.raises(ConfigError, match="cannot listen"):
        WanProxy(echo, listen=echo).start()


@pytest.mark.xrootd
def test_xrootd_reads_through_the_proxy_are_identical(xrootd_server, sample_dir) -> None:
    from XRootD import client
    from XRootD.client.flags import OpenFlags

    name = "tau1n_mc_000.root"
    want = (sample_dir / name).read_bytes()
    with WanProxy(("127.0.0.1", xrootd_server.port), rtt_ms=20) as proxy:
        url = f"root://127.0.0.1:{proxy.port}//data/{name}"
        file = client.File()
        status, _ = file.open(url, OpenFlags.READ, timeout=30)
        assert status.ok, status.message
        try:
            status, data = file.read(0, len(want), timeout=30)
            assert status.ok, status.message
            assert data == want
            chunks = [(0, 100), (len(want) // 2, 4096), (len(want) - 10, 10)]
            status, info = file.vector_read(chunks=chunks, timeout=30)
            assert status.ok, status.message
            assert [c.buffer for c in info.chunks] == [want[o : o + n] for o, n in chunks]
        finally:
            file.close(timeout=30)
        stats = proxy.stats
    # the client keeps its connection open after close(): the proxy must drop it quietly
    assert proxy.errors == []
    assert stats.connections >= 1
    assert stats.bytes_down >= len(want)
