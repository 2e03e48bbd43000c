"""EdgeNetwork objects and Node objects (raw API JSON) to the snapshot's sites, links and nodes.

Pure functions: the watch cache keeps the raw pieces and calls these when something changes.
Several EdgeNetwork objects are merged (sorted by name, so the result does not depend on watch
order); a node joins the site named by its zone label unless an EdgeNetwork overrides it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edge_allocator.cluster.annotations import (
    DEFAULT_INTRA_LATENCY_MS,
    LABEL_NODE_CLASS,
    LABEL_ZONE,
)
from edge_allocator.cluster.snapshot import Link, Site
from edge_allocator.extender.quantity import QuantityError, cpu_millicores, memory_mib

log = logging.getLogger(__name__)

UNZONED_SITE = "unzoned"
"""The site of a node with no zone label and no override."""

DEFAULT_NODE_CLASS = "default"


@dataclass(frozen=True)
class Topology:
    """Declared sites and links plus per-node overrides, merged from every EdgeNetwork."""

    sites: dict[str, Site] = field(default_factory=dict)
    links: tuple[Link, ...] = ()
    site_override: dict[str, str] = field(default_factory=dict)
    class_override: dict[str, str] = field(default_factory=dict)


def merge_networks(objects: Iterable[Mapping[str, Any]]) -> Topology:
    """Merge EdgeNetwork objects; the first object (by name) to declare a site or pair wins."""
    sites: dict[str, Site] = {}
    links: dict[frozenset[str], Link] = {}
    site_override: dict[str, str] = {}
    class_override: dict[str, str] = {}
    ordered = sorted(objects, key=lambda o: str((o.get("metadata") or {}).get("name", "")))
    for obj in ordered:
        spec = obj.get("spec") or {}
        try:
            for s in spec.get("sites") or []:
                name = str(s["name"])
                latency = float(s.get("intraLatencyMs", DEFAULT_INTRA_LATENCY_MS))
                sites.setdefault(name, Site(name=name, intra_latency_ms=latency))
            for lk in spec.get("links") or []:
                a, b = str(lk["a"]), str(lk["b"])
                latency, bandwidth = float(lk["latencyMs"]), float(lk["bandwidthMbps"])
                if a == b or latency < 0 or bandwidth <= 0:
                    raise ValueError(f"link {a}-{b} is invalid")
                links.setdefault(frozenset((a, b)), Link(a, b, latency, bandwidth))
            for o in spec.get("nodeOverrides") or []:
                node = str(o["node"])
                if o.get("site"):
                    site_override.setdefault(node, str(o["site"]))
                if o.get("nodeClass"):
                    class_override.setdefault(node, str(o["nodeClass"]))
        except (KeyError, TypeError, ValueError) as exc:
            obj_name = (obj.get("metadata") or {}).get("name")
            log.warning("EdgeNetwork %s: ignoring what follows an invalid entry: %s", obj_name, exc)
    for link in links.values():  # API validation prevents this; a merge across objects may not
        for end in (link.a, link.b):
            sites.setdefault(end, Site(end, DEFAULT_INTRA_LATENCY_MS))
    return Topology(sites, tuple(links.values()), site_override, class_override)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What the cache keeps of a Node object."""

    name: str
    zone: str | None
    node_class: str | None
    cpu_capacity_m: int
    mem_capacity_mib: int
    cpu_allocatable_m: int
    mem_allocatable_mib: int
    ready: bool


def _resource(resources: Mapping[str, Any], key: str, fallback: Mapping[str, Any]) -> Any:
    value = resources.get(key)
    return fallback.get(key, 0) if value is None else value


def parse_node(obj: Mapping[str, Any]) -> NodeInfo:
    """A Node object to NodeInfo; unparsable quantities count as 0 (the node then scores low)."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = obj.get("status") or {}
    capacity = status.get("capacity") or {}
    allocatable = status.get("allocatable") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    try:
        cpu_cap = cpu_millicores(capacity.get("cpu", 0))
        mem_cap = memory_mib(capacity.get("memory", 0))
        cpu_alloc = cpu_millicores(_resource(allocatable, "cpu", capacity))
        mem_alloc = memory_mib(_resource(allocatable, "memory", capacity))
    except QuantityError as exc:
        log.warning("node %s: %s", meta.get("name"), exc)
        cpu_cap = mem_cap = cpu_alloc = mem_alloc = 0
    return NodeInfo(
        name=str(meta.get("name", "")),
        zone=labels.get(LABEL_ZONE) or None,
        node_class=labels.get(LABEL_NODE_CLASS) or None,
        cpu_capacity_m=cpu_cap,
        mem_capacity_mib=mem_cap,
        cpu_allocatable_m=cpu_alloc,
        mem_allocatable_mib=mem_alloc,
        ready=ready,
    )


def node_site(info: NodeInfo, topo: Topology) -> str:
    return topo.site_override.get(info.name) or info.zone or UNZONED_SITE


def node_class(info: NodeInfo, topo: Topology) -> str:
    return topo.class_override.get(info.name) or info.node_class or DEFAULT_NODE_CLASS
