"""OpenStack Nova through apache-libcloud (Keystone v3 password auth)."""

from __future__ import annotations

from typing import Any

from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider

from hepstream.cloud.drivers.base import CloudState
from hepstream.cloud.drivers.libcloudbase import LibcloudDriver
from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import credential
from hepstream.errors import ConfigError

_STATES: dict[str, CloudState] = {
    "running": "running",
    "pending": "pending",
    "starting": "pending",
    "rebooting": "pending",
    "reconfiguring": "pending",
    "unknown": "pending",
    "migrating": "running",
    "stopped": "stopped",
    "suspended": "stopped",
    "paused": "stopped",
    "error": "error",
}


class OpenStackDriver(LibcloudDriver):
    """Boot, list and delete tagged servers on one Nova.

    Options: ``auth_url`` (Keystone, e.g. ``https://keystone:5000``), ``username``,
    ``project``, ``domain`` (default ``Default``), ``region``, ``flavor`` (id),
    ``images`` (image name -> Glance id), ``password_env``/``password_file``.
    """

    api = "Nova"
    states = _STATES
    gone = frozenset({"terminated", "deleted"})
    tags_key = "metadata"
    not_found = "404"

    def __init__(self, cloud: Cloud, shim_id: str) -> None:
        opts = cloud.options
        self.cloud = cloud
        self.shim_id = shim_id
        password = credential(cloud, "password")
        for key in ("auth_url", "username", "project"):
            if not opts.get(key):
                raise ConfigError(f"cloud {cloud.name!r}: set {key} in [cloud.options]")
        if not password:
            raise ConfigError(
                f"cloud {cloud.name!r}: set password_env or password_file in [cloud.options]"
            )
        kwargs: dict[str, Any] = {
            "ex_force_auth_url": str(opts["auth_url"]),
            "ex_force_auth_version": "3.x_password",
            "ex_tenant_name": str(opts["project"]),
            "ex_domain_name": str(opts.get("domain", "Default")),
            "ex_force_service_region": str(opts.get("region", "RegionOne")),
        }
        self._flavor = str(opts.get("flavor", "1"))
        self._images: dict[str, str] = dict(opts.get("images", {}))
        self._driver = get_driver(Provider.OPENSTACK)(str(opts["username"]), password, **kwargs)

    def _image_id(self, image: str) -> str:
        if image in self._images:
            return self._images[image]
        raise ConfigError(
            f"cloud {self.cloud.name!r} has no Glance id for image {image!r}; add it to "
            f"[cloud.options.images]"
        )

    def _size_id(self) -> str:
        return self._flavor
