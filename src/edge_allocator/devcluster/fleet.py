"""The simulated edge fleet: heterogeneous kwok nodes spread over sites.

Real edge fleets mix small devices, mid-size boxes and one or two site servers per site; the
node manifests here say so with labels (site, class) and capacities, so the scheduler, the
extender and metrics-server all see what they would see on k3s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edge_allocator.cluster.annotations import LABEL_NODE_CLASS, LABEL_ZONE


@dataclass(frozen=True)
class NodeClass:
    name: str
    cpu: int  # cores
    memory_gib: int
    pods: int = 110


NODE_CLASSES: dict[str, NodeClass] = {
    "small": NodeClass("small", cpu=4, memory_gib=4),
    "mid": NodeClass("mid", cpu=8, memory_gib=16),
    "server": NodeClass("server", cpu=32, memory_gib=64),
}

# Within each site, nodes cycle through this pattern: one server, then small/mid devices.
_CLASS_PATTERN = ("server", "small", "mid", "small", "small", "mid", "small", "mid")


@dataclass(frozen=True)
class FleetSpec:
    """How many nodes over which sites; nodes are spread round-robin over the sites."""

    nodes: int = 12
    sites: tuple[str, ...] = ("site-a", "site-b", "site-c")
    extra_labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise ValueError(f"nodes: must be >= 1, got {self.nodes}")
        if not self.sites:
            raise ValueError("sites: at least one site is required")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError(f"sites: names must be unique, got {list(self.sites)}")

    def layout(self) -> list[tuple[str, str, NodeClass]]:
        """(node name, site, class) for every node, deterministic."""
        out: list[tuple[str, str, NodeClass]] = []
        per_site = [0] * len(self.sites)
        for i in range(self.nodes):
            s = i % len(self.sites)
            k = per_site[s]
            per_site[s] += 1
            cls = NODE_CLASSES[_CLASS_PATTERN[k % len(_CLASS_PATTERN)]]
            out.append((f"{self.sites[s]}-{cls.name}-{k}", self.sites[s], cls))
        return out


def node_manifest(
    name: str, site: str, cls: NodeClass, extra_labels: dict[str, str]
) -> dict[str, Any]:
    """A Node object that kwok will manage (annotation ``kwok.x-k8s.io/node: fake``)."""
    alloc = {"cpu": str(cls.cpu), "memory": f"{cls.memory_gib}Gi", "pods": str(cls.pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {
                "kwok.x-k8s.io/node": "fake",
                "node.alpha.kubernetes.io/ttl": "0",
                # metrics-server scrapes kwok's per-node kubelet-style endpoint at this path.
                "metrics.k8s.io/resource-metrics-path": f"/metrics/nodes/{name}/metrics/resource",
            },
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                LABEL_ZONE: site,
                LABEL_NODE_CLASS: cls.name,
                **extra_labels,
            },
        },
        "spec": {},
        "status": {
            "allocatable": alloc,
            "capacity": alloc,
        },
    }


def fleet_manifest(spec: FleetSpec) -> str:
    """All nodes as one ``kubectl apply``-able JSON List."""
    items = [node_manifest(n, s, c, spec.extra_labels) for n, s, c in spec.layout()]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
