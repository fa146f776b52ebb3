"""Debian's PostgreSQL started in a temp directory, unix socket only (no TCP listener).

``with PostgreSQL() as pg:`` -> ``pg.url`` is a ``postgresql://`` URL for psycopg. The
server runs as the ``postgres`` user when started by root (PostgreSQL refuses root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from hepstream.errors import ConfigError
from hepstream.procs import Service
from tests.support.squid import free_port


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise ConfigError("PostgreSQL not found; install Debian's postgresql")
    return Path(found[-1]).parent


class PostgreSQL(Service):
    def __init__(self, timeout: float = 60.0) -> None:
        self.bin = _bindir()
        self.timeout = timeout
        self.base: Path | None = None
        self.url = ""
        self._started = False

    def _run(self, *argv: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        result = subprocess.run(
            [*prefix, *argv], capture_output=True, text=True, timeout=self.timeout, check=False
        )
        if result.returncode != 0:
            raise ConfigError(f"{Path(argv[0]).name} failed: {result.stderr.strip()[-500:]}")

    def start(self) -> PostgreSQL:
        self.base = Path(tempfile.mkdtemp(prefix="hepstream-pg-"))
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
        data, port = self.base / "data", free_port()
        self._run(
            str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8",
        )  # fmt: skip
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.base / "server.log"),
            "-w", "-t", str(int(self.timeout)), "-o",
            f"-k {self.base} -c listen_addresses='' -p {port} -F", "start",
        )  # fmt: skip
        self._started = True
        self.url = f"postgresql://postgres@/postgres?host={self.base}&port={port}"
        return self

    def stop(self) -> None:
        if self.base is not None and self._started:
            self._run(
                str(self.bin / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w", "stop"
            )
            self._started = False
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None
