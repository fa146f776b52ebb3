"""Loopback TCP proxy that puts an emulated WAN link (latency, bandwidth) in front of a server.

Used by tests and benchmarks to see how streaming behaves when the storage is far away, as in
the paper's jobs reading one central XRootD server from four clouds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass

from hepstream.errors import ConfigError
from hepstream.procs import Service


@dataclass(frozen=True)
class ProxyConfig:
    """Buffering and timeouts of the proxy (not of the emulated link itself)."""

    #: Bytes taken from a socket at a time: large enough for few wake-ups on loopback,
    #: small enough that a bandwidth-capped link releases data smoothly (64 KiB at 10 Mbit/s
    #: is ~50 ms).
    chunk: int = 64 * 1024
    #: Bytes one direction of one connection may hold in flight inside the proxy, like a TCP
    #: window: it bounds memory, and caps an uncapped link at window / one-way delay.
    window: int = 32 * 1024 * 1024
    #: Seconds to wait for the target to accept a forwarded connection.
    connect_timeout: float = 10.0
    #: Seconds to wait for the proxy's thread to start or stop.
    thread_timeout: float = 10.0


@dataclass(frozen=True)
class WanStats:
    """Traffic through the proxy so far."""

    connections: int = 0
    bytes_up: int = 0  # client -> target, delivered
    bytes_down: int = 0  # target -> client, delivered


class Link:
    """One direction of the emulated link, shared by every connection through the proxy.

    Data first waits for the line to be free and is serialised at ``bytes_per_s`` (when
    capped), then propagates for ``delay`` seconds. Chunks are pipelined: many can be in
    flight at once, so throughput is not limited to one chunk per round trip.
    """

    def __init__(self, delay: float, bytes_per_s: float | None = None) -> None:
        if delay < 0:
            raise ConfigError(f"link delay {delay} s must be >= 0")
        if bytes_per_s is not None and bytes_per_s <= 0:
            raise ConfigError(f"link bandwidth {bytes_per_s} B/s must be > 0 (or None: no cap)")
        self.delay = delay
        self.bytes_per_s = bytes_per_s
        self._free_at = 0.0

    def schedule(self, now: float, nbytes: int) -> float:
        """Time at which ``nbytes`` that arrived at ``now`` come out of the far end."""
        departure = now
        if self.bytes_per_s is not None:
            departure = max(now, self._free_at) + nbytes / self.bytes_per_s
            self._free_at = departure
        return departure + self.delay


class WanProxy(Service):
    """Forward every connection on ``listen`` to ``target`` across an emulated WAN link.

    Each direction adds ``rtt_ms / 2`` of one-way delay as a pipe and, optionally, shares a
    ``bandwidth_mbps`` (megabit/s) cap among all connections. A new connection also pays one
    round trip before its first byte moves, like a TCP handshake. Runs an asyncio loop in a
    background thread; use it as a context manager.

    Parameters
    ----------
    target
        ``(host, port)`` of the real server.
    rtt_ms
        Round-trip time added to every exchange, in milliseconds.
    bandwidth_mbps
        Link capacity per direction in megabit/s (10**6 bit/s); None for no cap.
    listen
        Address to listen on; port 0 picks a free port (see :attr:`address`).
    config
        Proxy buffering and timeouts; defaults to :class:`ProxyConfig`.

    Examples
    --------
    >>> with WanProxy(("127.0.0.1", 1094), rtt_ms=50, bandwidth_mbps=100) as proxy:  # doctest: +SKIP
    ...     url = f"root://127.0.0.1:{proxy.port}//data/file.root"
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        rtt_ms: float = 0.0,
        bandwidth_mbps: float | None = None,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        config: ProxyConfig | None = None,
    ) -> None:
        if rtt_ms < 0:
            raise ConfigError(f"WAN proxy rtt_ms={rtt_ms} must be >= 0")
        if bandwidth_mbps is not None and bandwidth_mbps <= 0:
            raise ConfigError(f"WAN proxy bandwidth_mbps={bandwidth_mbps} must be > 0 or None")
        self.target = target
        self.rtt = rtt_ms / 1000.0
        self.bandwidth_mbps = bandwidth_mbps
        self.config = config or ProxyConfig()
        self._listen = listen
        rate = bandwidth_mbps * 1e6 / 8 if bandwidth_mbps is not None else None
        self._up = Link(self.rtt / 2, rate)
        self._down = Link(self.rtt / 2, rate)
        self._counts = {"connections": 0, "bytes_up": 0, "bytes_down": 0}
        self._address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._handlers: set[asyncio.Task] = set()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        #: Unexpected errors the proxy's loop reported (tests assert there are none).
        self.errors: list[str] = []

    # -- public -----------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` clients connect to."""
        if self._address is None:
            raise RuntimeError("WanProxy is not running; use it as a context manager or start()")
        return self._address

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def stats(self) -> WanStats:
        """Connections accepted and bytes delivered in each direction so far."""
        return WanStats(**self._counts)

    def start(self) -> WanProxy:
        """Start listening; returns once the port is bound."""
        if self._thread is not None:
            return self
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, name="hepstream-wanproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(self.config.thread_timeout):
            raise RuntimeError("WanProxy thread did not start in time")
        if self._start_error is not None:
            self._thread.join(self.config.thread_timeout)
            self._thread = None
            error, self._start_error = self._start_error, None
            raise ConfigError(f"WAN proxy cannot listen on {self._listen}: {error}") from error
        return self

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        """Drop every connection, stop listening and join the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        future.result(self.config.thread_timeout)
        thread.join(self.config.thread_timeout)
        self._thread = None
        self._address = None

    def __repr__(self) -> str:
        return (
            f"WanProxy(target={self.target}, rtt_ms={self.rtt * 1000:g}, "
            f"bandwidth_mbps={self.bandwidth_mbps}, address={self._address})"
        )

    # -- loop thread ------------------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(self._on_loop_error)
        self._loop = loop
        try:
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._handle, *self._listen, limit=self.config.chunk)
                )
            except OSError as err:
                self._start_error = err
                return
            sock = self._server.sockets[0]
            self._address = sock.getsockname()[:2]
            self._ready.set()
            loop.run_forever()
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._loop = None

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        self.errors.append(f"{context.get('message')}: {context.get('exception')!r}")
        loop.default_exception_handler(context)

    async def _shutdown(self) -> None:
        assert self._server is not None
        assert self._loop is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._loop.call_soon(self._loop.stop)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._counts["connections"] += 1
        server_w: asyncio.StreamWriter | None = None
        clean = False
        try:
            # A real connect costs one round trip before the client's first byte can leave.
            _, (server_r, server_w) = await asyncio.gather(
                asyncio.sleep(self.rtt),
                asyncio.wait_for(
                    asyncio.open_connection(*self.target, limit=self.config.chunk),
                    self.config.connect_timeout,
                ),
            )
            _nodelay(client_w)
            _nodelay(server_w)
            pumps = [
                asyncio.create_task(self._pump(client_r, server_w, self._up, "bytes_up")),
                asyncio.create_task(self._pump(server_r, client_w, self._down, "bytes_down")),
            ]
            try:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
                clean = all(not t.cancelled() and t.exception() is None for t in done)
                clean = clean and len(done) == len(pumps)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
        except OSError:  # includes TimeoutError
            pass  # target refused or vanished: the client sees its connection drop
        except asyncio.CancelledError:
            # close() is dropping this connection; end normally, because asyncio's stream
            # callback (3.11) calls task.exception(), which raises on a cancelled task
            pass
        finally:
            for writer in (client_w, server_w):
                if writer is None:
                    continue
                if clean:
                    writer.close()
                else:
                    writer.transport.abort()  # propagate a reset rather than a tidy EOF
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await writer.wait_closed()
            self._handlers.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: Link,
        counter: str,
    ) -> None:
        """Move one direction through ``link`` until EOF, then half-close the far side."""
        loop = asyncio.get_running_loop()
        in_flight: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()
        room = asyncio.Event()
        held = 0
        eof = False

        async def receive() -> None:
            nonlocal held, eof
            while not eof:
                while held >= self.config.window:
                    room.clear()
                    await room.wait()
                data = await reader.read(self.config.chunk)
                now = loop.time()
                if data:
                    in_flight.append((link.schedule(now, len(data)), data))
                    held += len(data)
                else:
                    in_flight.append((now + link.delay, b""))
                    eof = True
                arrived.set()

        async def deliver() -> None:
            nonlocal held
            while True:
                while not in_flight:
                    arrived.clear()
                    await arrived.wait()
                release, data = in_flight.popleft()
                wait = release - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    await writer.drain()
                    return
                writer.write(data)
                await writer.drain()
                held -= len(data)
                self._counts[counter] += len(data)
                room.set()

        tasks = [asyncio.create_task(receive()), asyncio.create_task(deliver())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise a reset or broken pipe so the connection is aborted
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _nodelay(writer: asyncio.StreamWriter) -> None:
    """Disable Nagle: the emulated delay must be the only one added."""
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
