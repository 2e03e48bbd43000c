"""The latency budget as a required node affinity, so kube-scheduler itself enforces it.

The extender is ``ignorable`` (a scheduler must keep placing pods while it restarts), so no
guarantee may depend on its ``/filter``. Instead the operator writes the budget into every
task pod as ``requiredDuringSchedulingIgnoredDuringExecution`` terms built from the one
topology model and the one budget rule (:mod:`edge_allocator.cluster.budget`):

* one term ``topology.kubernetes.io/zone In <sites within budget>``, with a
  ``metadata.name NotIn`` requirement for each node an EdgeNetwork moved *out* of such a site;
* one ``metadata.name In [node]`` term per node an EdgeNetwork moved *into* such a site, and one
  for the data-source node itself (local data is always within budget).

Node selector terms are ORed and the requirements inside a term ANDed, so the user's own
required terms (from the template) are combined term by term: a node must satisfy the user's
affinity *and* the budget. A pod already bound keeps its node when the topology changes
(``IgnoredDuringExecution``); the operator's re-placement repairs that.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge_allocator.cluster.annotations import LABEL_ZONE
from edge_allocator.cluster.budget import latency_within
from edge_allocator.cluster.topology import Topology

Term = dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class BudgetPlacement:
    """Where a budget lets a task run: the allowed sites and the node terms saying so.

    ``terms`` is empty exactly when nothing is allowed; then ``nearest_site`` and
    ``nearest_latency_ms`` say how close the closest site came (``None`` if none is reachable).
    """

    allowed_sites: tuple[str, ...]
    terms: tuple[Term, ...]
    nearest_site: str | None
    nearest_latency_ms: float | None

    @property
    def satisfiable(self) -> bool:
        return bool(self.terms)

    def fingerprint(self) -> str:
        """A stable text of the terms: a pod whose fingerprint differs was built for another
        topology."""
        return json.dumps(self.terms, sort_keys=True, separators=(",", ":"))

    def unsatisfiable_message(self, source_site: str, budget_ms: float) -> str:
        where = f"site {source_site}"
        if self.nearest_site is None:
            return (
                f"no site is within the latency budget of {budget_ms:g} ms from {where}, and no "
                "site is reachable from it over the EdgeNetwork links"
            )
        return (
            f"no site is within the latency budget of {budget_ms:g} ms from {where}: the nearest "
            f"is {self.nearest_site} at {self.nearest_latency_ms:g} ms"
        )


def _name_req(op: str, node: str) -> dict[str, Any]:
    # the API server allows exactly one value per metadata.name field requirement
    return {"key": "metadata.name", "operator": op, "values": [node]}


def budget_placement(
    topo: Topology, source_site: str, source_node: str | None, budget_ms: float
) -> BudgetPlacement:
    """The budget's sites and node-affinity terms (see the module docstring)."""
    allowed: list[str] = []
    nearest: tuple[float, str] | None = None
    for site in sorted(topo.sites):
        lat = topo.latency_exact_ms(source_site, site)
        if latency_within(lat, budget_ms):
            allowed.append(site)
        if lat != float("inf") and (nearest is None or (lat, site) < nearest):
            nearest = (lat, site)
    allowed_set = set(allowed)
    terms: list[Term] = []
    moved_in: list[str] = []
    if allowed:
        zone_term: Term = {
            "matchExpressions": [{"key": LABEL_ZONE, "operator": "In", "values": allowed}]
        }
        moved_out: list[dict[str, Any]] = []
        for node, site in sorted(topo.overridden_nodes().items()):
            if site in allowed_set:
                moved_in.append(node)
            else:
                moved_out.append(_name_req("NotIn", node))
        if moved_out:
            zone_term["matchFields"] = moved_out
        terms.append(zone_term)
    if source_node and source_node not in moved_in:
        moved_in.append(source_node)
    terms.extend({"matchFields": [_name_req("In", n)]} for n in sorted(moved_in))
    return BudgetPlacement(
        tuple(allowed),
        tuple(terms),
        nearest[1] if nearest else None,
        nearest[0] if nearest else None,
    )


def combine_terms(user: Sequence[Mapping[str, Any]], ours: Sequence[Term]) -> list[Term]:
    """Terms that hold where some user term *and* some of ``ours`` hold (cross product)."""
    if not user:
        return [copy.deepcopy(t) for t in ours]
    out: list[Term] = []
    for u in user:
        for o in ours:
            merged: Term = {}
            for key in ("matchExpressions", "matchFields"):
                reqs = list(copy.deepcopy(u.get(key) or [])) + copy.deepcopy(o.get(key, []))
                if reqs:
                    merged[key] = reqs
            out.append(merged)
    return out


def require_terms(pod_spec: dict[str, Any], terms: Sequence[Term]) -> None:
    """AND ``terms`` into ``pod_spec``'s required node affinity, in place."""
    affinity = pod_spec.setdefault("affinity", {})
    node_aff = affinity.setdefault("nodeAffinity", {})
    required = node_aff.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    required["nodeSelectorTerms"] = combine_terms(required.get("nodeSelectorTerms") or [], terms)


def avoid_node_term(node: str) -> Term:
    """A term that keeps a pod off ``node`` (a moved task must not land where it was)."""
    return {"matchFields": [_name_req("NotIn", node)]}
