"""The latency-budget rule: one definition for the operator, the extender and the simulator.

A task with ``latencyBudgetMs: B`` whose data comes from site ``S`` (or from node ``N`` in
site ``S``) may run on a node exactly when

* the node *is* ``N`` (the data is local: no network at all), or
* the shortest-path latency from ``S`` to the node's site is at most ``B`` (within ``S`` that
  is the site's intra-site latency).

Transfer time is not part of the budget: the budget bounds how far the task runs from its data,
not how long the data takes to move. There is no relaxation: when no node within the budget has
room, the task waits (kube-scheduler enforces the rule as the pod's required node affinity,
:mod:`edge_allocator.cluster.affinity`, and the simulator queues the task).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec


def latency_within(latency_ms: float, budget_ms: float | None) -> bool:
    """The comparison itself: no budget allows anything; an unreachable site never fits."""
    if budget_ms is None:
        return True
    return math.isfinite(latency_ms) and latency_ms <= budget_ms


def latencies_within(latencies_ms: np.ndarray, budget_ms: float) -> np.ndarray:
    """:func:`latency_within` over an array of latencies (a bool mask; the simulator's many
    budget keys at fleet scale)."""
    mask: np.ndarray = np.isfinite(latencies_ms) & (latencies_ms <= budget_ms)
    return mask


def node_within_budget(snapshot: ClusterSnapshot, task: TaskSpec, node: str) -> bool:
    """Whether ``task`` may run on ``node`` under its budget (see the module docstring)."""
    if task.latency_budget_ms is None:
        return True
    if task.data_source_node is not None and task.data_source_node == node:
        return True
    site = snapshot.node(node).site
    return latency_within(
        snapshot.site_latency_ms(task.data_source_site, site), task.latency_budget_ms
    )


@dataclass(frozen=True)
class BudgetSites:
    """The sites a budget allows, and the nearest site for the message when none does."""

    allowed: tuple[str, ...]
    nearest: str | None
    nearest_latency_ms: float | None


def sites_within_budget(
    snapshot: ClusterSnapshot,
    source_site: str,
    budget_ms: float,
    among: Iterable[str] | None = None,
) -> BudgetSites:
    """The sites (of ``among``, default every site) within ``budget_ms`` of ``source_site``,
    sorted by name, plus the nearest reachable one of ``among`` whether allowed or not."""
    names = sorted(set(among) if among is not None else {s.name for s in snapshot.sites})
    allowed: list[str] = []
    nearest: tuple[float, str] | None = None
    for site in names:
        if site not in snapshot.site_index or source_site not in snapshot.site_index:
            continue
        lat = snapshot.site_latency_ms(source_site, site)
        if latency_within(lat, budget_ms):
            allowed.append(site)
        if math.isfinite(lat) and (nearest is None or (lat, site) < nearest):
            nearest = (lat, site)
    return BudgetSites(
        tuple(allowed),
        nearest[1] if nearest else None,
        nearest[0] if nearest else None,
    )
