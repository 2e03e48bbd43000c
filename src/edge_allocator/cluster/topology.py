"""The one topology model: EdgeNetworks and nodes merged into sites, links and node placement.

The operator (task status, budget affinity, re-placement) and the extender (its snapshots) both
build their picture of the network here, so they can never disagree about which site a node is
in or how far two sites are apart. The rules:

* Several EdgeNetwork objects merge sorted by name; the first to declare a site, a link (either
  direction) or a node override wins. An entry that cannot be parsed is skipped with a warning,
  and so is everything after it in the same object (the API server's validation makes this rare).
* A node's site is its EdgeNetwork ``nodeOverrides[].site`` if any, else its
  ``topology.kubernetes.io/zone`` label, else none: an unzoned node is in no site, so no
  latency budget can ever allow it (the extender scores it in a placeholder site that no link
  reaches, :data:`UNZONED_SITE`).
* A node's class is its override's ``nodeClass``, else its ``edge-allocator.io/node-class``
  label, else :data:`DEFAULT_NODE_CLASS`.
* A site exists when an EdgeNetwork declares it, a link names it, or a node is in it; a site
  only nodes name has the default intra-site latency. A site's ``intraBandwidthMbps`` (its
  LAN) prices moving a task's input between two of its nodes; unset, that costs latency only.

Pure: raw API JSON in, immutable values out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_allocator.cluster.annotations import DEFAULT_INTRA_LATENCY_MS
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, Site

log = logging.getLogger(__name__)

UNZONED_SITE = "unzoned"
"""Where the extender's snapshot puts a node with no site (no link reaches it)."""

DEFAULT_NODE_CLASS = "default"


@dataclass(frozen=True)
class NetworkDecl:
    """What one EdgeNetwork object declares (entries in the object's order)."""

    name: str
    sites: tuple[Site, ...] = ()
    links: tuple[Link, ...] = ()
    site_overrides: tuple[tuple[str, str], ...] = ()  # (node, site)
    class_overrides: tuple[tuple[str, str], ...] = ()  # (node, node class)


def parse_network(obj: Mapping[str, Any]) -> NetworkDecl:
    """An EdgeNetwork object (raw JSON) to its declarations; see the module rules on errors."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    name = str(meta.get("name", ""))
    sites: list[Site] = []
    links: list[Link] = []
    site_ov: list[tuple[str, str]] = []
    class_ov: list[tuple[str, str]] = []
    try:
        for s in spec.get("sites") or []:
            latency = float(s.get("intraLatencyMs", DEFAULT_INTRA_LATENCY_MS))
            if not math.isfinite(latency) or latency < 0:
                raise ValueError(f"site {s.get('name')}: intraLatencyMs must be >= 0")
            bandwidth = s.get("intraBandwidthMbps")
            if bandwidth is not None:
                bandwidth = float(bandwidth)
                if not math.isfinite(bandwidth) or bandwidth <= 0:
                    raise ValueError(f"site {s.get('name')}: intraBandwidthMbps must be > 0")
            sites.append(
                Site(
                    name=str(s["name"]),
                    intra_latency_ms=latency,
                    intra_bandwidth_mbps=bandwidth,
                )
            )
        for lk in spec.get("links") or []:
            a, b = str(lk["a"]), str(lk["b"])
            latency, bandwidth = float(lk["latencyMs"]), float(lk["bandwidthMbps"])
            if a == b or not latency >= 0 or not bandwidth > 0:
                raise ValueError(f"link {a}-{b} is invalid")
            links.append(Link(a, b, latency, bandwidth))
        for o in spec.get("nodeOverrides") or []:
            node = str(o["node"])
            if o.get("site"):
                site_ov.append((node, str(o["site"])))
            if o.get("nodeClass"):
                class_ov.append((node, str(o["nodeClass"])))
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("EdgeNetwork %s: ignoring what follows an invalid entry: %s", name, exc)
    return NetworkDecl(name, tuple(sites), tuple(links), tuple(site_ov), tuple(class_ov))


@dataclass(frozen=True)
class NetworkModel:
    """Every EdgeNetwork merged: declared sites, links and per-node overrides."""

    sites: Mapping[str, Site] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    site_override: Mapping[str, str] = field(default_factory=dict)
    class_override: Mapping[str, str] = field(default_factory=dict)
    declared_sites: frozenset[str] = frozenset()

    @classmethod
    def merge(cls, decls: Iterable[NetworkDecl]) -> NetworkModel:
        sites: dict[str, Site] = {}
        links: dict[frozenset[str], Link] = {}
        site_ov: dict[str, str] = {}
        class_ov: dict[str, str] = {}
        for d in sorted(decls, key=lambda d: d.name):
            for s in d.sites:
                sites.setdefault(s.name, s)
            for link in d.links:
                links.setdefault(frozenset((link.a, link.b)), link)
            for node, site in d.site_overrides:
                site_ov.setdefault(node, site)
            for node, klass in d.class_overrides:
                class_ov.setdefault(node, klass)
        declared = frozenset(sites)
        for link in links.values():
            for end in (link.a, link.b):
                sites.setdefault(end, Site(end, DEFAULT_INTRA_LATENCY_MS))
        return cls(sites, tuple(links.values()), site_ov, class_ov, declared)

    @classmethod
    def from_objects(cls, objects: Iterable[Mapping[str, Any]]) -> NetworkModel:
        return cls.merge(parse_network(o) for o in objects)

    def site_of(self, node: str, zone: str | None) -> str | None:
        """The node's site: the override, else its zone label, else none."""
        return self.site_override.get(node) or zone or None

    def class_of(self, node: str, label: str | None) -> str:
        return self.class_override.get(node) or label or DEFAULT_NODE_CLASS


class Topology:
    """Sites, links and which site each node is in (cheap to build, immutable)."""

    def __init__(self, model: NetworkModel, node_zones: Iterable[tuple[str, str | None]]) -> None:
        sites = dict(model.sites)
        self.model = model
        self.declared_sites = model.declared_sites
        self._node_site: dict[str, str] = {}
        for name, zone in node_zones:
            where = model.site_of(name, zone)
            if where:
                self._node_site[name] = where
                sites.setdefault(where, Site(where, DEFAULT_INTRA_LATENCY_MS))
        self.sites = frozenset(sites)
        self._graph = ClusterSnapshot(nodes=(), sites=tuple(sites.values()), links=model.links)

    def has_site(self, site: str) -> bool:
        """True if an EdgeNetwork declares ``site``, a link names it, or a node is in it."""
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

    def overridden_nodes(self) -> dict[str, str]:
        """Nodes whose site comes from an EdgeNetwork override, not their zone label."""
        return {n: s for n, s in self.model.site_override.items() if n in self._node_site}

    def latency_exact_ms(self, source_site: str, target_site: str) -> float:
        """Shortest-path latency (``inf`` when unknown or unreachable)."""
        if source_site not in self.sites or target_site not in self.sites:
            return math.inf
        return self._graph.site_latency_ms(source_site, target_site)

    def latency_ms(self, source_site: str, target_site: str) -> int | None:
        """Shortest-path latency between two sites, rounded; ``None`` if unknown/unreachable."""
        value = self.latency_exact_ms(source_site, target_site)
        return None if math.isinf(value) else round(value)
