"""A strong deployable heuristic: minimise the task's estimated completion time.

It reads only the snapshot (no simulator internals), so it can serve live traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines.columns import (
    CPU_ALLOC,
    CPU_USED,
    F64,
    I64,
    network_time_ms,
    node_columns,
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

    def score_indices(self, snapshot: ClusterSnapshot, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, vectorised (the same floats)."""
        req_cores = task.cpu_request_m / 1000.0
        limit = max(req_cores * BURST_FACTOR, 0.05)
        floor = 0.1 * req_cores + 0.01
        work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
        used, alloc = node_columns(snapshot).block(nodes, CPU_USED, CPU_ALLOC + 1)
        rate = np.minimum(limit, np.maximum((alloc - used) / 1000.0, floor))
        out: F64 = -(network_time_ms(snapshot, task, nodes) / 1000.0 + work / rate)
        return out
