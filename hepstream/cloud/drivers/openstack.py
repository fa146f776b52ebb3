"""OpenStack Nova through apache-libcloud (Keystone v3 password auth)."""

from __future__ import annotations

from typing import Any

from hepstream.cloud.drivers.base import (
    TAG_SHIM,
    BootRequest,
    CloudAPIError,
    ObservedVM,
    destroy_libcloud_node,
)
from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import credential
from hepstream.errors import ConfigError

_STATES = {
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


class OpenStackDriver:
    """Boot, list and delete tagged servers on one Nova.

    Options: ``auth_url`` (Keystone, e.g. ``https://keystone:5000``), ``username``,
    ``project``, ``domain`` (default ``Default``), ``region``, ``flavor`` (id),
    ``images`` (image name -> Glance id), ``password_env``/``password_file``.
    """

    binds_job = False

    def __init__(self, cloud: Cloud, shim_id: str) -> None:
        from libcloud.compute.providers import get_driver
        from libcloud.compute.types import Provider

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

    def __repr__(self) -> str:
        return f"OpenStackDriver(cloud={self.cloud.name!r})"

    def _image_id(self, image: str) -> str:
        if image in self._images:
            return self._images[image]
        raise ConfigError(
            f"cloud {self.cloud.name!r} has no Glance id for image {image!r}; add it to "
            f"[cloud.options.images]"
        )

    def boot(self, request: BootRequest) -> str:
        from libcloud.compute.base import NodeImage, NodeSize

        image = NodeImage(self._image_id(request.spec.image), request.spec.image, self._driver)
        size = NodeSize(self._flavor, self._flavor, request.spec.memory_mb, 0, 0, 0, self._driver)
        try:
            node = self._driver.create_node(  # type: ignore[call-arg]
                name=request.name, size=size, image=image, ex_metadata=dict(request.tags)
            )
        except Exception as err:
            raise CloudAPIError(
                f"cloud {self.cloud.name}: Nova boot failed: {type(err).__name__}: {err}"
            ) from None
        return str(node.id)

    def list(self) -> list[ObservedVM]:
        try:
            nodes = self._driver.list_nodes()
        except Exception as err:
            raise CloudAPIError(
                f"cloud {self.cloud.name}: Nova list failed: {type(err).__name__}: {err}"
            ) from None
        out = []
        for node in nodes:
            meta = {str(k): str(v) for k, v in (node.extra.get("metadata") or {}).items()}
            if meta.get(TAG_SHIM) != self.shim_id:
                continue
            state = str(node.state).lower()
            if state in ("terminated", "deleted"):
                continue
            out.append(ObservedVM(str(node.id), _STATES.get(state, "pending"), meta))  # type: ignore[arg-type]
        return out

    def destroy(self, cloud_id: str) -> None:
        destroy_libcloud_node(self._driver, self.cloud.name, cloud_id, self.list, "404")
