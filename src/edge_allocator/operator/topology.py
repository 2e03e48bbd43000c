"""Which sites exist, which site each node is in, and how far apart sites are.

Sites come from two places: EdgeNetwork objects (sites, links, per-node overrides) and the
``topology.kubernetes.io/zone`` label of nodes. A site that neither declares does not exist,
and a task whose data comes from it cannot be placed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_allocator.cluster.annotations import DEFAULT_INTRA_LATENCY_MS
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, Site
from edge_allocator.operator.views import NetworkView, NodeView


class Topology:
    """The merged picture of every EdgeNetwork and node (cheap to build, immutable)."""

    def __init__(self, networks: Iterable[NetworkView], nodes: Iterable[NodeView]) -> None:
        sites: dict[str, Site] = {}
        links: dict[tuple[str, str], Link] = {}
        overrides: dict[str, str] = {}
        for net in sorted(networks, key=lambda n: n.name):
            for s in net.sites:
                sites.setdefault(s.name, Site(s.name, float(s.intra_latency_ms)))
            for link in net.links:
                pair = (min(link.a, link.b), max(link.a, link.b))
                links.setdefault(
                    pair, Link(pair[0], pair[1], float(link.latency_ms), float(link.bandwidth_mbps))
                )
            for node, site in net.node_sites:
                overrides.setdefault(node, site)
        self.declared_sites = frozenset(sites)
        self._node_site: dict[str, str] = {}
        for view in nodes:
            where = overrides.get(view.name) or view.zone
            if where:
                self._node_site[view.name] = where
                sites.setdefault(where, Site(where, DEFAULT_INTRA_LATENCY_MS))
        self.sites = frozenset(sites)
        self._graph = ClusterSnapshot(
            nodes=(), sites=tuple(sites.values()), links=tuple(links.values())
        )

    def has_site(self, site: str) -> bool:
        """True if an EdgeNetwork declares ``site`` or some node is labelled with it."""
        return site in self.sites

    def site_of(self, node: str) -> str | None:
        """The node's site (an EdgeNetwork override wins over the zone label)."""
        return self._node_site.get(node)

    def nodes_in(self, sites: Iterable[str]) -> int:
        wanted = set(sites)
        return sum(1 for s in self._node_site.values() if s in wanted)

    def empty_sites(self, sites: Iterable[str]) -> list[str]:
        occupied = set(self._node_site.values())
        return sorted(s for s in sites if s not in occupied)

    def latency_ms(self, source_site: str, target_site: str) -> int | None:
        """Shortest-path latency between two sites, rounded; ``None`` if unknown/unreachable."""
        if source_site not in self.sites or target_site not in self.sites:
            return None
        value = self._graph.site_latency_ms(source_site, target_site)
        return None if math.isinf(value) else round(value)
