"""Lowest network latency to the task's data source (the classic fog-scheduling heuristic)."""

from __future__ import annotations

from collections.abc import Sequence

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines import columns
from edge_allocator.policy.baselines.columns import F64, I64
from edge_allocator.policy.baselines.kube_default import least_allocated


class LowestLatencyPolicy:
    """Score ``-latency_ms`` from the data source (0 on the source node itself).

    Latency is the shortest-path latency between the source's site and the candidate's site.
    Ties (nodes of one site) are broken by LeastAllocated, scaled to stay below 0.01 ms.
    """

    name = "latency"
    version = "1"

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        out: list[float] = []
        for c in candidates:
            node = snapshot.node(c)
            if task.data_source_node == c:
                lat = 0.0
            else:
                lat = snapshot.site_latency_ms(task.data_source_site, node.site)
            out.append(-lat + least_allocated(node, task) * 1e-4)
        return out

    def score_view(self, view: columns.ColumnView, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, vectorised (the same floats)."""
        lat = columns.site_latency(view, task, nodes)
        lat[columns.is_source(view, task, nodes)] = 0.0
        out: F64 = -lat + columns.least_allocated(view.data, task, nodes) * 1e-4
        return out
