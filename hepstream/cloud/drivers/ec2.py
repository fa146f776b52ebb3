"""Amazon EC2 (and EC2-compatible clouds such as moto) through apache-libcloud."""

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
    "unknown": "pending",
    "stopped": "stopped",
    "stopping": "stopped",
    "suspended": "stopped",
    "paused": "stopped",
    "error": "error",
}


def _driver_class():
    """libcloud's EC2 driver, tolerant of moto's namespace without the trailing slash."""
    from libcloud.compute.drivers.ec2 import (
        NAMESPACE,
        EC2Connection,
        EC2NodeDriver,
        EC2Response,
    )

    bare = NAMESPACE.rstrip("/")

    class _Response(EC2Response):
        def parse_body(self):
            # moto (and some EC2 clones) answer with xmlns "…/2016-11-15"; libcloud's
            # XPath lookups use "…/2016-11-15/", so nothing would be found.
            if isinstance(self.body, str) and f'xmlns="{bare}"' in self.body:
                self.body = self.body.replace(f'xmlns="{bare}"', f'xmlns="{NAMESPACE}"')
            return super().parse_body()

    class _Connection(EC2Connection):
        responseCls = _Response

    class _Driver(EC2NodeDriver):
        connectionCls = _Connection

    return _Driver


class EC2Driver:
    """Boot, list and terminate tagged instances on one EC2 region.

    Options (``[cloud.options]``): ``region``, ``endpoint`` (``http://host:port`` for
    EC2-compatible clouds), ``instance_type``, ``images`` (image name -> AMI id; names
    starting with ``ami-`` pass through), ``access_key_env``/``_file``,
    ``secret_key_env``/``_file``.
    """

    binds_job = False

    def __init__(self, cloud: Cloud, shim_id: str) -> None:
        from urllib.parse import urlsplit

        opts = cloud.options
        self.cloud = cloud
        self.shim_id = shim_id
        key = credential(cloud, "access_key")
        secret = credential(cloud, "secret_key")
        if not key or not secret:
            raise ConfigError(
                f"cloud {cloud.name!r}: set access_key_env and secret_key_env "
                f"(or _file) in [cloud.options]"
            )
        kwargs: dict[str, Any] = {
            "region": opts.get("region", "us-east-1"),
            "signature_version": "4",  # libcloud's default v2 is refused by moto and AWS
        }
        endpoint = opts.get("endpoint")
        if endpoint:
            parts = urlsplit(str(endpoint))
            kwargs.update(
                host=parts.hostname,
                port=parts.port or (443 if parts.scheme == "https" else 80),
                secure=parts.scheme == "https",
            )
        self._images: dict[str, str] = dict(opts.get("images", {}))
        self._instance_type = str(opts.get("instance_type", "t2.micro"))
        self._driver = _driver_class()(key, secret, **kwargs)

    def __repr__(self) -> str:
        return f"EC2Driver(cloud={self.cloud.name!r})"

    def _ami(self, image: str) -> str:
        if image in self._images:
            return self._images[image]
        if image.startswith("ami-"):
            return image
        raise ConfigError(
            f"cloud {self.cloud.name!r} has no AMI for image {image!r}; add it to "
            f"[cloud.options.images]"
        )

    def boot(self, request: BootRequest) -> str:
        from libcloud.compute.base import NodeImage, NodeSize

        image = NodeImage(self._ami(request.spec.image), request.spec.image, self._driver)
        size = NodeSize(
            self._instance_type, self._instance_type, request.spec.memory_mb, 0, 0, 0, self._driver
        )
        try:
            node = self._driver.create_node(
                name=request.name, size=size, image=image, ex_metadata=dict(request.tags)
            )
        except ConfigError:
            raise
        except Exception as err:
            raise CloudAPIError(
                f"cloud {self.cloud.name}: EC2 boot failed: {type(err).__name__}: {err}"
            ) from None
        if isinstance(node, list):  # libcloud returns a list when it parsed none or many
            if len(node) != 1:
                raise CloudAPIError(f"cloud {self.cloud.name}: EC2 boot returned {len(node)} VMs")
            node = node[0]
        return str(node.id)

    def list(self) -> list[ObservedVM]:
        try:
            nodes = self._driver.list_nodes(ex_filters={f"tag:{TAG_SHIM}": self.shim_id})
        except Exception as err:
            raise CloudAPIError(
                f"cloud {self.cloud.name}: EC2 list failed: {type(err).__name__}: {err}"
            ) from None
        out = []
        for node in nodes:
            state = str(node.state).lower()
            if state in ("terminated", "terminating", "shutting-down"):
                continue
            tags = {str(k): str(v) for k, v in (node.extra.get("tags") or {}).items()}
            out.append(ObservedVM(str(node.id), _STATES.get(state, "pending"), tags))  # type: ignore[arg-type]
        return out

    def destroy(self, cloud_id: str) -> None:
        destroy_libcloud_node(self._driver, self.cloud.name, cloud_id, self.list, "NotFound")
