"""Node objects (raw API JSON) to what the watch cache keeps of them.

Sites, links and which site a node is in come from the one topology model,
:mod:`edge_allocator.cluster.topology`, shared with the operator.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_allocator.cluster.annotations import (
    LABEL_NODE_CLASS,
    LABEL_ZONE,
)
from edge_allocator.cluster.quantity import QuantityError, cpu_millicores, memory_mib

log = logging.getLogger(__name__)


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
