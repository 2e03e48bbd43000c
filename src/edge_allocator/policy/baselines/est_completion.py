"""A strong deployable heuristic: minimise the task's estimated completion time.

It reads only the snapshot (no simulator internals), so it can serve live traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.compiled import compiled
from edge_allocator.policy.baselines.columns import (
    CPU_ALLOC,
    CPU_USED,
    F64,
    I64,
    ColumnView,
    source_index,
)


class EstimatedCompletionPolicy:
    """Score ``-(network_s + work / rate)``.

    ``network_s`` is latency plus input transfer over the path's bottleneck bandwidth
    (:meth:`ClusterSnapshot.network_time_ms`). ``rate`` (cores) is the task's limit
    (``BURST_FACTOR * request``) capped by the node's free measured CPU (measured usage, or
    requests without metrics), floored at a small share so a full node is not infinite.
    ``work`` is the task's CPU-seconds when known, else 1 (which keeps the ranking by speed).
    """

    name = "est-completion"
    version = "1"

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        req_cores = task.cpu_request_m / 1000.0
        limit = max(req_cores * BURST_FACTOR, 0.05)
        floor = 0.1 * req_cores + 0.01
        work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
        out: list[float] = []
        for c in candidates:
            node = snapshot.node(c)
            free = max((node.cpu_allocatable_m - node.cpu_used_m) / 1000.0, floor)
            rate = min(limit, free)
            out.append(-(snapshot.network_time_ms(task, node) / 1000.0 + work / rate))
        return out

    def score_view(self, view: ColumnView, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, compiled (the same floats; the network time as
        :func:`~edge_allocator.policy.baselines.columns.network_time_ms` computes it)."""
        req_cores = task.cpu_request_m / 1000.0
        limit = max(req_cores * BURST_FACTOR, 0.05)
        floor = 0.1 * req_cores + 0.01
        work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
        sa = view.sites
        s = view.site_index[task.data_source_site]
        out: F64 = _scores(
            view.data,
            (CPU_ALLOC, CPU_USED),
            nodes,
            sa.node_site,
            sa.latency_ms[s],
            view.bandwidth_row(s),
            task.input_mb * 8.0,
            source_index(view, task),
            (limit, floor, work),
        )
        return out


@compiled
def _scores(
    data: F64,
    rows: tuple[int, int],
    nodes: I64,
    node_site: I64,
    latency_ms: F64,
    bandwidth: F64,
    megabits: float,
    src: int,
    rate_work: tuple[float, float, float],
) -> F64:
    """``-(network_s + work / rate)`` per node, operation for operation as :meth:`score`
    (``data``: :class:`NodeColumns`, ``rows`` its rows of allocatable and used CPU;
    ``latency_ms`` and ``bandwidth`` by site, from the data's site; ``src``: the source node's
    index, -1 for none)."""
    r_alloc, r_used = rows
    limit, floor, work = rate_work
    out = np.empty(nodes.shape[0])
    for k in range(nodes.shape[0]):
        i = nodes[k]
        site = node_site[i]
        net_ms = 0.0 if i == src else megabits / bandwidth[site] * 1000.0 + latency_ms[site]
        rate = min(limit, max((data[r_alloc, i] - data[r_used, i]) / 1000.0, floor))
        out[k] = -(net_ms / 1000.0 + work / rate)
    return out
