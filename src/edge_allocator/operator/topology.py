"""The operator's topology: the one model of :mod:`edge_allocator.cluster.topology` over its
cached EdgeNetworks and nodes."""

from __future__ import annotations

from collections.abc import Iterable

from edge_allocator.cluster.topology import NetworkModel, Topology
from edge_allocator.operator.views import NetworkView, NodeView

__all__ = ["Topology", "build_topology"]


def build_topology(networks: Iterable[NetworkView], nodes: Iterable[NodeView]) -> Topology:
    model = NetworkModel.merge(n.decl for n in networks)
    return Topology(model, ((n.name, n.zone) for n in nodes))
