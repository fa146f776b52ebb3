"""Cloud drivers behind one small interface: boot, list, destroy."""

from __future__ import annotations

from pathlib import Path

from hepstream.cloud.drivers.base import BootRequest, CloudAPIError, Driver, ObservedVM
from hepstream.cloud.drivers.fake import FakeDriver
from hepstream.cloud.drivers.local import LocalQemuDriver
from hepstream.cloud.model import Cloud
from hepstream.errors import ConfigError

__all__ = ["BootRequest", "CloudAPIError", "Driver", "ObservedVM", "make_driver"]


def make_driver(cloud: Cloud, shim_id: str, workdir: Path | None = None) -> Driver:
    """Build the driver named by ``cloud.driver`` (fake, ec2, openstack, local)."""
    if cloud.driver == "fake":
        return FakeDriver(cloud.name, **cloud.options)
    if cloud.driver in ("ec2", "openstack"):
        return _libcloud_driver(cloud, shim_id)
    if cloud.driver == "local":
        return LocalQemuDriver(cloud, shim_id, workdir=workdir)
    raise ConfigError(
        f"cloud {cloud.name!r}: unknown driver {cloud.driver!r}; use fake, ec2, openstack or local"
    )


def _libcloud_driver(cloud: Cloud, shim_id: str) -> Driver:
    # lazy: apache-libcloud is the optional `cloud` extra, ~100 ms (python -X importtime)
    if cloud.driver == "ec2":
        from hepstream.cloud.drivers.ec2 import EC2Driver

        return EC2Driver(cloud, shim_id)
    from hepstream.cloud.drivers.openstack import OpenStackDriver

    return OpenStackDriver(cloud, shim_id)
