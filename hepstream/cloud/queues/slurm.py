"""Slurm as the shim's job queue: pending jobs that ask for a VM image become Boot demand.

A job asks for a VM with its comment: ``sbatch --comment=hepstream:image=IMG`` (optionally
``;clouds=nrc+ec2``), with ``-c``/``--mem`` sizing the VM. The booted VM joins the cluster
as a Slurm node named after the shim's VM name (a dynamic node, ``slurmd -Z`` with the
image as its feature), so Slurm itself matches jobs to VMs, runs and retries them, as
HTCondor does on the Condor path; a node with the VM's name counts as the VM having
registered. The translation from ``squeue``/``scontrol`` text is pure
(:func:`job_from_squeue`, :func:`workers_from_scontrol`) and tested on strings; only
:class:`SlurmQueue` runs the tools.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from datetime import datetime

from hepstream.cloud.model import Job, JobStatus, VMSpec
from hepstream.cloud.queues.external import ExternalQueue
from hepstream.errors import ConfigError, HepstreamError

#: ``squeue -o``: id, state, user, submit time, node list, comment, CPUs, min memory.
SQUEUE_FORMAT = "%i|%T|%u|%V|%N|%k|%C|%m"
_STATUS: dict[str, JobStatus] = {"PENDING": "idle", "RUNNING": "running", "CONFIGURING": "running"}
PREFIX = "hepstream:"


def _memory_mb(text: str) -> int:
    """``%m`` of squeue: ``2000M``, ``2G``, ``500K`` or a plain number of MB."""
    text = text.strip().upper()
    if not text or text == "0":
        return 2048
    unit = text[-1]
    number = float(text[:-1]) if unit.isalpha() else float(text)
    scale = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}.get(unit, 1)
    return max(256, int(number * scale))


def parse_comment(comment: str) -> dict[str, str]:
    """``hepstream:image=IMG;clouds=a+b`` as a mapping ({} without the prefix)."""
    comment = comment.strip()
    if not comment.startswith(PREFIX):
        return {}
    out: dict[str, str] = {}
    for part in comment[len(PREFIX) :].split(";"):
        key, eq, value = part.partition("=")
        if eq:
            out[key.strip()] = value.strip()
    return out


def job_from_squeue(line: str) -> Job | None:
    """One ``squeue -h -o SQUEUE_FORMAT`` line as a :class:`Job`; None if it needs no VM."""
    fields = line.split("|")
    if len(fields) != 8:
        return None
    job_id, state, user, submitted, nodes, comment, cpus, memory = fields
    status = _STATUS.get(state.strip())
    asked = parse_comment(comment)
    if status is None or not asked.get("image"):
        return None
    try:
        when = datetime.fromisoformat(submitted.strip()).timestamp()
    except ValueError:
        when = 0.0
    clouds = tuple(c for c in asked.get("clouds", "").split("+") if c)
    vm_id = nodes.strip() if status == "running" and nodes.strip() else None
    return Job(
        id=job_id.strip(),
        spec=VMSpec(asked["image"], max(1, int(cpus or 1)), _memory_mb(memory), user.strip()),
        status=status,
        target_clouds=clouds,
        vm_id=vm_id,
        submitted_at=when,
    )


def workers_from_scontrol(text: str) -> dict[str, float]:
    """Node names of ``scontrol show node -o`` with when their slurmd started."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        name = fields.get("NodeName")
        if not name or "DOWN" in fields.get("State", "") or "FUTURE" in fields.get("State", ""):
            continue
        started = fields.get("SlurmdStartTime") or fields.get("BootTime") or ""
        try:
            out[name] = datetime.fromisoformat(started).timestamp()
        except ValueError:
            out[name] = 0.0
    return out


class SlurmQueue(ExternalQueue):
    """Read-only view of slurmctld through ``squeue`` and ``scontrol``; Slurm runs the jobs.

    ``env`` selects the cluster (``SLURM_CONF``); the default is the machine's own.
    """

    owner = "slurm"

    def __init__(self, env: Mapping[str, str] | None = None, timeout_s: float = 30.0) -> None:
        self.env = dict(env) if env is not None else None
        self.timeout_s = timeout_s

    def _run(self, *argv: str) -> str:
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, env=self.env, timeout=self.timeout_s
            )
        except FileNotFoundError:
            raise ConfigError(
                f"{argv[0]} not found: install slurm-client or use another queue"
            ) from None
        if done.returncode != 0:
            raise HepstreamError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def pending(self) -> list[Job]:
        out = self._run("squeue", "-h", "-t", "PENDING,RUNNING,CONFIGURING", "-o", SQUEUE_FORMAT)
        jobs = [job_from_squeue(line) for line in out.splitlines() if line.strip()]
        return [j for j in jobs if j is not None]

    def workers(self) -> dict[str, float]:
        return workers_from_scontrol(self._run("scontrol", "show", "node", "-o"))
