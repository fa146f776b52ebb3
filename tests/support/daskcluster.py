"""A real ``distributed`` cluster on loopback: one scheduler and N worker processes.

Each daemon is a child process (``dask scheduler`` / ``dask worker``, no nanny, so a
killed worker stays dead, as a lost machine would), bound to 127.0.0.1, with a bounded
life: the scheduler has an idle timeout, workers a lifetime and a death timeout, and
:meth:`DaskCluster.stop` kills whatever is left.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hepstream.procs import Service, stop_group


class DaskCluster(Service):
    def __init__(
        self, workers: int = 2, lifetime_s: float = 600.0, env: dict[str, str] | None = None
    ) -> None:
        self.n_workers = workers
        self.lifetime_s = lifetime_s
        self.env = {**os.environ, **(env or {})}
        # the daemons run in a temp directory: relative entries would point nowhere
        paths = self.env.get("PYTHONPATH", "").split(os.pathsep)
        self.env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in paths if p)
        self.base = Path(tempfile.mkdtemp(prefix="hepstream-dask-"))
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.address = ""

    def _dask(self, *args: str, log: str) -> subprocess.Popen:
        out = (self.base / log).open("w")
        dask = Path(sys.executable).with_name("dask")
        argv = [str(dask)] if dask.exists() else [sys.executable, "-m", "dask"]
        proc = subprocess.Popen(
            [*argv, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.base,
            start_new_session=True,
        )
        out.close()
        return proc

    def start(self, timeout: float = 60.0) -> DaskCluster:
        info = self.base / "scheduler.json"
        life = f"{int(self.lifetime_s)}s"
        try:
            self.scheduler = self._dask(
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
                "--idle-timeout",
                life,
                log="scheduler.log",
            )
            end = time.monotonic() + timeout
            while not info.exists() or not info.read_text().strip():
                if self.scheduler.poll() is not None or time.monotonic() > end:
                    raise RuntimeError(f"dask scheduler did not start: {self.log_tail()}")
                time.sleep(0.1)
            self.address = json.loads(info.read_text())["address"]
            for i in range(self.n_workers):
                self.add_worker(f"w{i}")
            self.wait_workers(self.n_workers, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, name: str) -> subprocess.Popen:
        proc = self._dask(
            "worker",
            self.address,
            "--host",
            "127.0.0.1",
            "--nthreads",
            "1",
            "--no-nanny",
            "--name",
            name,
            "--memory-limit",
            "0",
            "--death-timeout",
            "30",
            "--lifetime",
            f"{int(self.lifetime_s)}s",
            "--no-dashboard",
            log=f"{name}.log",
        )
        self.workers.append(proc)
        return proc

    def wait_workers(self, count: int, timeout: float = 60.0) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout, set_as_default=False) as client:
            client.wait_for_workers(count, timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for path in sorted(self.base.glob("*.log")):
            out.append(f"--- {path.name}\n" + "\n".join(path.read_text().splitlines()[-lines:]))
        return "\n".join(out)

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None:
                stop_group(proc)
        shutil.rmtree(self.base, ignore_errors=True)
