"""A real one-node Slurm cluster (munged + slurmctld + slurmd) in a temp directory.

Debian's ``slurm-wlm`` and ``munge`` daemons run in the foreground as children of this
process, from a generated ``slurm.conf`` whose ports, state, spool, logs and munge socket
all live in the temp directory; the system's own Slurm or munge setup is never touched.
Client tools find the cluster through ``SLURM_CONF`` (:attr:`SlurmCluster.env`).
Every daemon has a bounded lifetime (``lifetime_s``: a watchdog stops them) and
:meth:`SlurmCluster.stop` kills them and removes the directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from hepstream.errors import ConfigError
from hepstream.procs import Service, stop_group

_CONF = """\
ClusterName=hepstream-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long before it starts again (120 s by default:
# two minutes of the requeue test); 30 s still lets a job step launch on a loaded machine
AuthInfo=socket={base}/munge.socket,cred_expire=30
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobRequeue=1
MinJobAge=3600
MaxArraySize=10001
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
"""

DAEMONS = ("munged", "slurmctld", "slurmd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def slurm_missing() -> list[str]:
    """The daemons and tools this needs that are not installed."""
    tools = (*DAEMONS, "sbatch", "squeue", "scontrol")
    return [t for t in tools if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


class SlurmCluster(Service):
    """One node, ``cpus`` slots, root as the Slurm user; use as a context manager."""

    def __init__(self, cpus: int = 2, memory_mb: int = 4096, lifetime_s: float = 900.0) -> None:
        missing = slurm_missing()
        if missing:
            raise ConfigError(f"{', '.join(missing)} missing: apt-get install slurm-wlm munge")
        self.cpus = cpus
        self.memory_mb = memory_mb
        self.lifetime_s = lifetime_s
        self.base = Path(tempfile.mkdtemp(prefix="hepstream-slurm-"))
        self.base.chmod(0o755)
        self.conf = self.base / "slurm.conf"
        self.host = socket.gethostname().split(".")[0]
        self._procs: dict[str, subprocess.Popen] = {}
        self._stopped = threading.Event()

    @property
    def env(self) -> dict[str, str]:
        """Environment for Slurm's client tools (and jobs) to use this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        base = self.base
        for sub in ("state", "spool"):
            (base / sub).mkdir()
        key = base / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        self.conf.write_text(
            _CONF.format(
                host=self.host,
                base=base,
                cpus=self.cpus,
                memory_mb=self.memory_mb,
                ctld_port=_free_port(),
                slurmd_port=_free_port(),
            )
        )
        try:
            self._spawn(
                "munged",
                [
                    _sbin("munged"),
                    "--foreground",
                    "--force",
                    f"--key-file={key}",
                    f"--socket={base}/munge.socket",
                    f"--pid-file={base}/munged.pid",
                    f"--log-file={base}/munged.log",
                    f"--seed-file={base}/munged.seed",
                ],
            )
            self._wait(lambda: (base / "munge.socket").exists(), timeout, "munged socket")
            self._spawn("slurmctld", [_sbin("slurmctld"), "-D", "-i", "-f", str(self.conf)])
            self._wait(self._ctld_up, timeout, "slurmctld")
            self._spawn("slurmd", [_sbin("slurmd"), "-D", "-f", str(self.conf)])
            self._wait(self._node_idle, timeout, "slurmd (node idle)")
        except BaseException:
            self.stop()
            raise
        threading.Thread(target=self._watchdog, daemon=True, name="slurm-watchdog").start()
        return self

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.base / f"{name}.stdout").open("w")
        self._procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        log.close()

    def _wait(self, ready, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            dead = [n for n, p in self._procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited: {self.log_tail()}")
            if ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} not ready after {timeout:.0f} s: {self.log_tail()}")

    def _scontrol(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["scontrol", *args], capture_output=True, text=True, env=self.env, timeout=30
        )

    def _ctld_up(self) -> bool:
        return self._scontrol("ping").returncode == 0

    def _node_idle(self) -> bool:
        out = self._scontrol("show", "node", self.host, "-o").stdout
        return "State=IDLE" in out

    def log_tail(self, lines: int = 15) -> str:
        out = []
        for name in DAEMONS:
            for path in (self.base / f"{name}.log", self.base / f"{name}.stdout"):
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-lines:]
                    out.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(out)

    def _watchdog(self) -> None:
        if not self._stopped.wait(self.lifetime_s):
            self.stop()

    def stop(self) -> None:
        """Cancel every job, stop the daemons (TERM, then KILL), remove the directory."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
            subprocess.run(
                ["scancel", "--full", "--user", "root"],
                env=self.env,
                capture_output=True,
                timeout=30,
                check=False,
            )
        for name in reversed(DAEMONS):
            proc = self._procs.get(name)
            if proc is not None:
                stop_group(proc)
        shutil.rmtree(self.base, ignore_errors=True)


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"
