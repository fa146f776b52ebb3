"""The driver interface and the tags that let a restarted shim find its VMs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from hepstream.cloud.model import VMSpec
from hepstream.errors import HepstreamError

CloudState = Literal["pending", "running", "error", "stopped"]

TAG_SHIM = "hepstream-shim"
TAG_VM = "hepstream-vm"
TAG_JOB = "hepstream-job"
TAG_IMAGE = "hepstream-image"
TAG_OWNER = "hepstream-owner"
TAG_CPUS = "hepstream-cpus"
TAG_MEM = "hepstream-mem"
TAG_BOOTED = "hepstream-booted"


class CloudAPIError(HepstreamError):
    """A cloud API call failed (network, auth, quota); the shim retries next round."""


@dataclass(frozen=True)
class BootRequest:
    """What the shim asks a driver to boot; ``tags`` go on the VM for re-adoption."""

    name: str
    spec: VMSpec
    tags: Mapping[str, str]
    job: dict[str, Any] | None = None  # passed at boot by drivers with binds_job


@dataclass(frozen=True)
class ObservedVM:
    """One VM as a cloud lists it."""

    cloud_id: str
    state: CloudState
    tags: Mapping[str, str] = field(default_factory=dict)
    registered: bool = False  # the driver itself knows the worker is up

    @property
    def name(self) -> str | None:
        return self.tags.get(TAG_VM)


class Driver(Protocol):
    """boot/list/destroy; ``binds_job``: the VM runs the job given at boot, then stops."""

    binds_job: bool

    def boot(self, request: BootRequest) -> str:
        """Start a VM; return the cloud's id for it. Raise :class:`CloudAPIError`."""
        ...

    def list(self) -> list[ObservedVM]:
        """Every VM this driver can see (the shim filters on its tags)."""
        ...

    def destroy(self, cloud_id: str) -> None:
        """Terminate a VM; an already gone VM is not an error."""
        ...


def make_tags(
    shim_id: str, name: str, spec: VMSpec, job_id: str, booted_at: float
) -> dict[str, str]:
    """Tags that carry everything needed to adopt the VM after a restart."""
    return {
        TAG_SHIM: shim_id,
        TAG_VM: name,
        TAG_JOB: job_id,
        TAG_IMAGE: spec.image,
        TAG_OWNER: spec.owner,
        TAG_CPUS: str(spec.cpus),
        TAG_MEM: str(spec.memory_mb),
        TAG_BOOTED: f"{booted_at:.3f}",
    }


def spec_from_tags(tags: Mapping[str, str]) -> VMSpec:
    """The VM spec its tags carry (defaults for tags it lacks)."""
    return VMSpec(
        image=tags.get(TAG_IMAGE, "unknown"),
        cpus=int(tags.get(TAG_CPUS, "1")),
        memory_mb=int(tags.get(TAG_MEM, "2048")),
        owner=tags.get(TAG_OWNER, "nobody"),
    )
