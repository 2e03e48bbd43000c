"""Trimaran TargetLoadPacking (scheduler-plugins KEP 61) on measured CPU usage."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_allocator.cluster.snapshot import ClusterSnapshot, NodeState, TaskSpec
from edge_allocator.compiled import compiled
from edge_allocator.policy.baselines.columns import (
    CPU_ALLOC1,
    CPU_REQ,
    CPU_USAGE,
    F64,
    I64,
    ColumnView,
)


def target_load_packing(utilisation_pct: float, target_pct: float) -> float:
    """The TLP score for predicted CPU utilisation ``U`` (percent) and target ``X``.

    ``U <= X``: ``(100 - X) * U / X + X``; ``X < U <= 100``: ``X * (100 - U) / (100 - X)``;
    ``U > 100``: 0. Nodes are packed up to the target, then spread.
    """
    u, x = utilisation_pct, target_pct
    if u <= x:
        return (100.0 - x) * u / x + x
    if u <= 100.0:
        return x * (100.0 - u) / (100.0 - x)
    return 0.0


class TargetLoadPackingPolicy:
    """Trimaran TLP with target ``X`` percent (default 40).

    Predicted utilisation ``U = (measured CPU + the pod's CPU request) / allocatable * 100``.
    A node without a fresh measurement falls back to best fit on requests, as the plugin
    does: ``(requested + pod request) / allocatable * 100`` (capped at 100).
    """

    name = "trimaran-tlp"
    version = "1"

    def __init__(self, target_pct: float = 40.0) -> None:
        if not 0.0 < target_pct < 100.0:
            raise ValueError(f"target_pct: must be in (0, 100), got {target_pct}")
        self.target_pct = target_pct

    def _one(self, node: NodeState, task: TaskSpec) -> float:
        alloc = max(node.cpu_allocatable_m, 1)
        if node.cpu_usage_m is None:
            return min((node.cpu_requested_m + task.cpu_request_m) * 100.0 / alloc, 100.0)
        u = (node.cpu_usage_m + task.cpu_request_m) * 100.0 / alloc
        return target_load_packing(u, self.target_pct)

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        return [self._one(snapshot.node(c), task) for c in candidates]

    def score_view(self, view: ColumnView, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, compiled (the same floats)."""
        data = view.data
        rows = (CPU_ALLOC1, CPU_USAGE, CPU_REQ)
        out: F64 = _scores(data, rows, nodes, float(task.cpu_request_m), self.target_pct)
        return out


@compiled
def _scores(data: F64, rows: tuple[int, int, int], nodes: I64, cpu: float, x: float) -> F64:
    """:meth:`TargetLoadPackingPolicy._one` per node, operation for operation (``data``:
    :class:`NodeColumns`; ``rows``: its rows of allocatable CPU floored at 1, measured CPU,
    nan without a measurement, and requested CPU)."""
    r_alloc, r_usage, r_req = rows
    out = np.empty(nodes.shape[0])
    for k in range(nodes.shape[0]):
        i = nodes[k]
        alloc, usage = data[r_alloc, i], data[r_usage, i]
        if usage != usage:
            out[k] = min((data[r_req, i] + cpu) * 100.0 / alloc, 100.0)
            continue
        u = (usage + cpu) * 100.0 / alloc
        if u <= x:
            out[k] = (100.0 - x) * u / x + x
        elif u <= 100.0:
            out[k] = x * (100.0 - u) / (100.0 - x)
        else:
            out[k] = 0.0
    return out
