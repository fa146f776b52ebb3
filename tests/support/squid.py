"""Debian's squid as a site's caching proxy on loopback, for tests, benches and the demo.

The configuration is generated in a temp directory (own port, memory cache, logs): the
machine's ``/etc/squid`` is never read. ``collapsed_forwarding`` makes concurrent misses
for one URL wait for a single fetch from the central server, as a site's Frontier squid
does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hepstream.errors import ConfigError
from hepstream.procs import Service

CONF = """\
http_port 127.0.0.1:{port}
visible_hostname hepstream-test-squid
pid_filename {base}/squid.pid
cache_log {base}/cache.log
access_log stdio:{base}/access.log squid
cache_store_log none
logfile_rotate 0
coredump_dir {base}
netdb_filename none
pinger_enable off
cache_mem 64 MB
maximum_object_size_in_memory 32 MB
maximum_object_size 32 MB
collapsed_forwarding on
shutdown_lifetime 1 seconds
acl loopback src 127.0.0.1/32
http_access allow loopback
http_access deny all
{user}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Squid(Service):
    """``with Squid() as squid:`` -> ``squid.url`` is the proxy URL (``http://127.0.0.1:N``)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.binary = shutil.which("squid") or "/usr/sbin/squid"
        if not os.path.exists(self.binary):
            raise ConfigError("squid not found; install Debian's squid (apt-get install squid)")
        self.timeout = timeout
        self.base: Path | None = None
        self.process: subprocess.Popen | None = None
        self.url = ""

    @property
    def access_log(self) -> Path:
        assert self.base is not None
        return self.base / "access.log"

    def start(self) -> Squid:
        self.base = Path(tempfile.mkdtemp(prefix="hepstream-squid-"))
        port = free_port()
        user = ""
        if os.geteuid() == 0:  # squid drops root privileges: its files must be theirs
            user = "cache_effective_user proxy"
            entry = pwd.getpwnam("proxy")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        conf = self.base / "squid.conf"
        conf.write_text(CONF.format(port=port, base=self.base, user=user))
        self.process = subprocess.Popen(
            [self.binary, "-N", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.timeout
        while True:
            if self.process.poll() is not None:
                err = (
                    self.process.stderr.read().decode(errors="replace")
                    if self.process.stderr
                    else ""
                )
                log = (
                    (self.base / "cache.log").read_text()
                    if (self.base / "cache.log").exists()
                    else ""
                )
                self.stop()
                raise ConfigError(f"squid exited at start: {err.strip()} {log[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError(f"squid did not listen on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def access_lines(self) -> list[str]:
        """The access log's lines (squid writes them as requests complete)."""
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(15)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(10)
            if self.process.stderr is not None:
                self.process.stderr.close()
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    def __exit__(self, *exc: object) -> None:
        self.cleanup()  # stop, and remove its directory
