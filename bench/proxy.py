"""A :class:`~tests.support.wanproxy.WanProxy` in its own process.

In the benchmark's process the proxy's event loop would compete for the GIL with the reader
being measured; in a child it behaves like a network hop. ``python -m bench.proxy`` prints the
listening port, then forwards until its stdin closes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from hepstream.procs import Service


class ProxyProcess(Service):
    """Start ``python -m bench.proxy`` towards ``target``; ``port`` is where clients connect."""

    #: Seconds for the child to print its port or to exit after stdin closes.
    timeout: float = 20.0

    def __init__(
        self, target: tuple[str, int], rtt_ms: float, bandwidth_mbps: float | None
    ) -> None:
        self.target = target
        self.rtt_ms = rtt_ms
        self.bandwidth_mbps = bandwidth_mbps
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> ProxyProcess:
        cmd = [sys.executable, "-m", "bench.proxy", self.target[0], str(self.target[1])]
        cmd += ["--rtt-ms", str(self.rtt_ms)]
        if self.bandwidth_mbps is not None:
            cmd += ["--bandwidth-mbps", str(self.bandwidth_mbps)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.close()
            raise RuntimeError(f"WAN proxy process did not start (said {line!r})")
        self.port = int(line)
        return self

    def stop(self) -> None:
        self.close()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _main() -> None:
    from tests.support.wanproxy import WanProxy

    parser = argparse.ArgumentParser(description="Emulated WAN hop in front of a TCP server.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--bandwidth-mbps", type=float, default=None)
    args = parser.parse_args()
    with WanProxy(
        (args.host, args.port), rtt_ms=args.rtt_ms, bandwidth_mbps=args.bandwidth_mbps
    ) as proxy:
        print(proxy.port, flush=True)
        sys.stdin.read()  # returns when the parent closes our stdin (or dies)


if __name__ == "__main__":
    _main()
