"""HTCondor as the job queue: idle jobs and their VM attributes, read via ``htcondor2``.

The translation from ClassAds to :class:`Job` is pure (``job_from_ad``) so it is tested
on plain dicts; only :class:`CondorQueue` talks to a schedd.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hepstream.cloud.model import Job, JobStatus, VMSpec
from hepstream.cloud.queues.external import ExternalQueue

# Condor JobStatus codes: 1 idle, 2 running, 5 held (counts as not needing a VM).
_STATUS: dict[int, JobStatus] = {1: "idle", 2: "running"}
VM_ATTRS = (
    "ClusterId",
    "ProcId",
    "JobStatus",
    "Owner",
    "QDate",
    "VMType",
    "VMCPUCores",
    "VMMem",
    "TargetClouds",
    "RemoteHost",
    "RequestMemory",
    "RequestCpus",
)


def _text(value: Any) -> str:
    return str(value).strip().strip('"')


def job_from_ad(ad: Mapping[str, Any]) -> Job | None:
    """Translate one job ClassAd to a :class:`Job`; None for jobs that need no VM.

    ``+VMType`` names the image; ``+VMCPUCores``/``+VMMem`` size the VM (falling back to
    RequestCpus/RequestMemory); ``+TargetClouds`` is a comma-separated list.
    """
    image = ad.get("VMType")
    status = _STATUS.get(int(ad.get("JobStatus", 0)))
    if not image or status is None:
        return None
    cpus = int(ad.get("VMCPUCores", ad.get("RequestCpus", 1)) or 1)
    memory = int(ad.get("VMMem", ad.get("RequestMemory", 2048)) or 2048)
    targets = tuple(t.strip() for t in _text(ad.get("TargetClouds", "")).split(",") if t.strip())
    vm_id = None
    if status == "running" and ad.get("RemoteHost"):
        # slot1@<vm name>: the VM's startd advertises the shim's VM name as its host
        vm_id = _text(ad["RemoteHost"]).split("@")[-1].split(".")[0]
    return Job(
        id=f"{ad.get('ClusterId', 0)}.{ad.get('ProcId', 0)}",
        spec=VMSpec(image=_text(image), cpus=cpus, memory_mb=memory, owner=_text(ad["Owner"])),
        status=status,
        target_clouds=targets,
        vm_id=vm_id,
        submitted_at=float(ad.get("QDate", 0)),
    )


def workers_from_ads(startd_ads: list[Mapping[str, Any]]) -> dict[str, float]:
    """VM names of registered startds (attribute ``HepstreamVM``) and when they joined."""
    out: dict[str, float] = {}
    for ad in startd_ads:
        name = ad.get("HepstreamVM")
        if name:
            out[_text(name)] = float(ad.get("DaemonStartTime", 0))
    return out


class CondorQueue(ExternalQueue):
    """Read-only view of a schedd and collector; Condor itself matches jobs to VMs."""

    owner = "condor"

    def __init__(self, schedd_name: str | None = None) -> None:
        # lazy: the optional `cloud` extra, ~25 ms (python -X importtime); this queue only
        import htcondor2

        coll = htcondor2.Collector()
        self._collector = coll
        self._startd = htcondor2.AdTypes.Startd
        if schedd_name:
            ad = coll.locate(htcondor2.DaemonType.Schedd, schedd_name)
            self._schedd = htcondor2.Schedd(ad)
        else:
            self._schedd = htcondor2.Schedd()

    def pending(self) -> list[Job]:
        ads = self._schedd.query(
            constraint="JobStatus == 1 || JobStatus == 2", projection=list(VM_ATTRS)
        )
        jobs = [job_from_ad(dict(ad)) for ad in ads]
        return [j for j in jobs if j is not None]

    def workers(self) -> dict[str, float]:
        ads = self._collector.query(self._startd, projection=["HepstreamVM", "DaemonStartTime"])
        return workers_from_ads([dict(a) for a in ads])
