"""An EdgeNetwork's status: how many sites, links and nodes it has, and which sites are empty.

Pure, so the operator can compare it with what is stored and write only real changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from edge_allocator.operator.conditions import set_condition
from edge_allocator.operator.topology import Topology
from edge_allocator.operator.views import NetworkView


def network_status(net: NetworkView, topo: Topology, now: dt.datetime) -> dict[str, Any]:
    """The EdgeNetwork's status: counts, empty sites and a Ready condition."""
    names = [s.name for s in net.sites]
    empty = topo.empty_sites(names)
    nodes = topo.nodes_in(names)
    msg = f"{len(names)} sites, {len(net.links)} links, {nodes} nodes"
    if empty:
        msg += f"; sites without nodes: {', '.join(empty)}"
    conds = set_condition(
        net.status.get("conditions") or [], "Ready", True, "Accepted", msg, now, net.generation
    )
    return {
        "observedGeneration": net.generation,
        "siteCount": len(names),
        "linkCount": len(net.links),
        "nodeCount": nodes,
        "emptySites": empty,
        "conditions": conds,
    }
