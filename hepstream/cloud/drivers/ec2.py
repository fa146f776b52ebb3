"""Amazon EC2 (and EC2-compatible clouds such as moto) through apache-libcloud."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from libcloud.compute.base import Node
from libcloud.compute.drivers.ec2 import NAMESPACE, EC2Connection, EC2NodeDriver, EC2Response

from hepstream.cloud.drivers.base import TAG_SHIM, CloudState
from hepstream.cloud.drivers.libcloudbase import LibcloudDriver
from hepstream.cloud.model import Cloud
from hepstream.cloud.policy import credential
from hepstream.errors import ConfigError

_STATES: dict[str, CloudState] = {
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
_BARE_NAMESPACE = NAMESPACE.rstrip("/")


class _Response(EC2Response):
    def parse_body(self) -> Any:
        # moto (and some EC2 clones) answer with xmlns "…/2016-11-15"; libcloud's
        # XPath lookups use "…/2016-11-15/", so nothing would be found.
        if isinstance(self.body, str) and f'xmlns="{_BARE_NAMESPACE}"' in self.body:
            self.body = self.body.replace(f'xmlns="{_BARE_NAMESPACE}"', f'xmlns="{NAMESPACE}"')
        return super().parse_body()


class _Connection(EC2Connection):
    responseCls = _Response


class _NodeDriver(EC2NodeDriver):
    """libcloud's EC2 driver, tolerant of moto's namespace without the trailing slash."""

    connectionCls = _Connection


class EC2Driver(LibcloudDriver):
    """Boot, list and terminate tagged instances on one EC2 region.

    Options (``[cloud.options]``): ``region``, ``endpoint`` (``http://host:port`` for
    EC2-compatible clouds), ``instance_type``, ``images`` (image name -> AMI id; names
    starting with ``ami-`` pass through), ``access_key_env``/``_file``,
    ``secret_key_env``/``_file``.
    """

    api = "EC2"
    states = _STATES
    gone = frozenset({"terminated", "terminating", "shutting-down"})
    tags_key = "tags"
    not_found = "NotFound"

    def __init__(self, cloud: Cloud, shim_id: str) -> None:
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
        self._driver = _NodeDriver(key, secret, **kwargs)

    def _image_id(self, image: str) -> str:
        if image in self._images:
            return self._images[image]
        if image.startswith("ami-"):
            return image
        raise ConfigError(
            f"cloud {self.cloud.name!r} has no AMI for image {image!r}; add it to "
            f"[cloud.options.images]"
        )

    def _size_id(self) -> str:
        return self._instance_type

    def _nodes(self) -> list[Node]:
        return self._driver.list_nodes(ex_filters={f"tag:{TAG_SHIM}": self.shim_id})
