"""A NetworkOverhead-style (Diktyo) score: network cost to the data source, plus balance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines import columns
from edge_allocator.policy.baselines.columns import F64, I64
from edge_allocator.policy.baselines.kube_default import balanced_allocation


class NetworkOverheadPolicy:
    """``5 * network score + 1 * BalancedAllocation`` (NodeResourcesFit disabled).

    The network cost of a candidate is the shortest-path latency in ms from the task's data
    source (0 on the source node), as a NetworkTopology's zone costs would give it. Costs are
    normalised over the candidates: ``network score = 100 * (max - cost) / (max - min)``
    (100 for all when every cost is equal), so lower cost scores higher.
    """

    name = "network-overhead"
    version = "1"
    network_weight = 5.0
    balance_weight = 1.0

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        nodes = [snapshot.node(c) for c in candidates]
        costs = [
            0.0
            if task.data_source_node == n.name
            else snapshot.site_latency_ms(task.data_source_site, n.site)
            for n in nodes
        ]
        if not costs:
            return []
        lo, hi = min(costs), max(costs)
        span = hi - lo
        out: list[float] = []
        for n, cost in zip(nodes, costs, strict=True):
            net = 100.0 if span <= 0 else 100.0 * (hi - cost) / span
            out.append(
                self.network_weight * net + self.balance_weight * balanced_allocation(n, task)
            )
        return out

    def score_view(self, view: columns.ColumnView, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, vectorised (the same floats)."""
        if not nodes.shape[0]:
            return np.zeros(0)
        costs = columns.site_latency(view, task, nodes)
        costs[columns.is_source(view, task, nodes)] = 0.0
        lo, hi = float(costs.min()), float(costs.max())
        span = hi - lo
        net = np.full(nodes.shape[0], 100.0) if span <= 0 else 100.0 * (hi - costs) / span
        balanced = columns.balanced_allocation(view.data, task, nodes)
        out: F64 = self.network_weight * net + self.balance_weight * balanced
        return out
