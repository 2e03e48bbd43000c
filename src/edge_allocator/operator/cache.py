"""The operator's in-memory view of tasks, their pods, nodes and EdgeNetworks.

Filled once by plain LIST calls before kopf starts (so a restarted operator knows every existing
pod before it reconciles a single task), then kept current by kopf's watch events. Lookups are
O(1) per task; nothing here talks to the API except ``prime``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edge_allocator.cluster.annotations import LABEL_MANAGED
from edge_allocator.operator.kubeapi import KubeApi
from edge_allocator.operator.topology import Topology, build_topology
from edge_allocator.operator.views import (
    GROUP,
    NETWORK_PLURAL,
    VERSION,
    NetworkView,
    NodeView,
    PodView,
    TaskView,
)

TaskKey = tuple[str, str]


class ClusterCache:
    def __init__(self) -> None:
        self.tasks: dict[TaskKey, TaskView] = {}
        self._pods: dict[TaskKey, dict[str, PodView]] = {}  # task -> pod name -> view
        self._pod_node: dict[tuple[str, str], str] = {}  # (ns, pod) -> node it is bound to
        self._on_node: dict[str, dict[tuple[str, str], TaskKey]] = {}  # node -> (ns, pod) -> task
        self.nodes: dict[str, NodeView] = {}
        self.networks: dict[str, NetworkView] = {}
        self._topology: Topology | None = None

    # -- reads -------------------------------------------------------------------------------

    def pods_of(self, key: TaskKey) -> Iterable[PodView]:
        return tuple(self._pods.get(key, {}).values())

    def tasks_on(self, node: str) -> set[TaskKey]:
        return set(self._on_node.get(node, {}).values())

    def topology(self) -> Topology:
        if self._topology is None:
            self._topology = build_topology(self.networks.values(), self.nodes.values())
        return self._topology

    # -- writes (from watch events) ----------------------------------------------------------

    def put_task(self, view: TaskView) -> None:
        self.tasks[view.key] = view

    def drop_task(self, key: TaskKey) -> None:
        self.tasks.pop(key, None)

    def put_pod(self, view: PodView) -> None:
        key = (view.namespace, view.task)
        self._pods.setdefault(key, {})[view.name] = view
        self._unbind(view.namespace, view.name)
        if view.node_name and not view.terminal:
            self._pod_node[(view.namespace, view.name)] = view.node_name
            self._on_node.setdefault(view.node_name, {})[(view.namespace, view.name)] = key

    def drop_pod(self, view: PodView) -> None:
        key = (view.namespace, view.task)
        pods = self._pods.get(key)
        if pods is not None:
            pods.pop(view.name, None)
            if not pods:
                del self._pods[key]
        self._unbind(view.namespace, view.name)

    def _unbind(self, namespace: str, pod: str) -> None:
        node = self._pod_node.pop((namespace, pod), None)
        if node is None:
            return
        on_node = self._on_node.get(node, {})
        on_node.pop((namespace, pod), None)
        if not on_node:
            self._on_node.pop(node, None)

    def put_node(self, view: NodeView) -> bool:
        """Store ``view``; True if what the operator acts on (site, readiness) changed."""
        old = self.nodes.get(view.name)
        self.nodes[view.name] = view
        changed = old is None or (old.zone, old.ready) != (view.zone, view.ready)
        if changed:
            self._topology = None
        return changed

    def drop_node(self, name: str) -> None:
        self.nodes.pop(name, None)
        self._topology = None

    def put_network(self, view: NetworkView) -> None:
        self.networks[view.name] = view
        self._topology = None

    def drop_network(self, name: str) -> None:
        self.networks.pop(name, None)
        self._topology = None

    # -- the initial fill --------------------------------------------------------------------

    async def prime(self, api: KubeApi, namespaces: Iterable[str]) -> None:
        """LIST nodes, EdgeNetworks and the operator's pods (all, or in ``namespaces``)."""
        for item in await _list(api, "/api/v1/nodes"):
            self.put_node(NodeView.from_body(item))
        for item in await _list(api, f"/apis/{GROUP}/{VERSION}/{NETWORK_PLURAL}"):
            self.put_network(NetworkView.from_body(item))
        selector = {"labelSelector": f"{LABEL_MANAGED}=true"}
        paths = [f"/api/v1/namespaces/{ns}/pods" for ns in namespaces] or ["/api/v1/pods"]
        for path in paths:
            for item in await _list(api, path, selector):
                view = PodView.from_body(item)
                if view is not None:
                    self.put_pod(view)


async def _list(
    api: KubeApi, path: str, params: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every item of a (paginated) LIST."""
    items: list[dict[str, Any]] = []
    query = {"limit": "500", **(params or {})}
    while True:
        page = await api.request("GET", path, params=query)
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items
        query["continue"] = token
