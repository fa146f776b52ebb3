"""What the apache-libcloud drivers (EC2, OpenStack) share: boot, list and destroy of nodes
that carry the shim's tags; each subclass builds its libcloud driver and names its images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from libcloud.compute.base import Node, NodeDriver, NodeImage, NodeSize

from hepstream.cloud.drivers.base import (
    TAG_SHIM,
    BootRequest,
    CloudAPIError,
    CloudState,
    ObservedVM,
)
from hepstream.cloud.model import Cloud


class LibcloudDriver:
    """Boot, list and destroy tagged nodes through one libcloud ``NodeDriver``."""

    binds_job = False
    #: The API as error lines name it.
    api: ClassVar[str]
    #: libcloud node states as the shim's cloud states (unlisted ones count as pending).
    states: ClassVar[Mapping[str, CloudState]]
    #: Node states of a VM that is gone or going: not listed.
    gone: ClassVar[frozenset[str]]
    #: The node's ``extra`` entry that holds its tags.
    tags_key: ClassVar[str]
    #: How the API words "no such node" in an error (a destroy of a gone node is no error).
    not_found: ClassVar[str]

    cloud: Cloud
    shim_id: str
    _driver: NodeDriver

    def __repr__(self) -> str:  # the libcloud driver holds the credentials
        return f"{type(self).__name__}(cloud={self.cloud.name!r})"

    def _image_id(self, image: str) -> str:
        """The cloud's id of the VM image named ``image``; a ConfigError if it has none."""
        raise NotImplementedError

    def _size_id(self) -> str:
        """The instance type or flavor every VM gets."""
        raise NotImplementedError

    def _nodes(self) -> list[Node]:
        """The nodes to look at; a subclass may ask the API for the shim's tag only."""
        return self._driver.list_nodes()

    def boot(self, request: BootRequest) -> str:
        image = NodeImage(self._image_id(request.spec.image), request.spec.image, self._driver)
        size_id = self._size_id()
        size = NodeSize(size_id, size_id, request.spec.memory_mb, 0, 0, 0, self._driver)
        try:
            # ex_metadata (the tags) is the EC2 and OpenStack drivers' extension of
            # NodeDriver.create_node, which libcloud's base signature does not list
            node: Node | list[Node] = self._driver.create_node(  # type: ignore[call-arg]
                name=request.name, size=size, image=image, ex_metadata=dict(request.tags)
            )
        except Exception as err:
            raise CloudAPIError(
                f"cloud {self.cloud.name}: {self.api} boot failed: {type(err).__name__}: {err}"
            ) from None
        if isinstance(node, list):  # libcloud's EC2 returns a list when it parsed none or many
            if len(node) != 1:
                raise CloudAPIError(
                    f"cloud {self.cloud.name}: {self.api} boot returned {len(node)} VMs"
                )
            node = node[0]
        return str(node.id)

    def list(self) -> list[ObservedVM]:
        try:
            nodes = self._nodes()
        except Exception as err:
            raise CloudAPIError(
                f"cloud {self.cloud.name}: {self.api} list failed: {type(err).__name__}: {err}"
            ) from None
        out = []
        for node in nodes:
            tags = {str(k): str(v) for k, v in (node.extra.get(self.tags_key) or {}).items()}
            if tags.get(TAG_SHIM) != self.shim_id:
                continue
            state = str(node.state).lower()
            if state in self.gone:
                continue
            out.append(ObservedVM(str(node.id), self.states.get(state, "pending"), tags))
        return out

    def destroy(self, cloud_id: str) -> None:
        """Destroy one node; a node already gone counts as destroyed.

        Clouds and their fakes word "not found" differently (moto's body does not even
        parse in libcloud), so an error is checked against ``not_found`` and the listing.
        """
        try:
            # a handle by id is all destroy_node needs; libcloud's hints want every field
            handle = Node(cloud_id, None, None, [], [], self._driver)  # type: ignore[arg-type]
            self._driver.destroy_node(handle)
        except Exception as err:
            if self.not_found in str(err) or cloud_id not in {vm.cloud_id for vm in self.list()}:
                return
            raise CloudAPIError(
                f"cloud {self.cloud.name}: destroy of {cloud_id} failed: {err}"
            ) from None
