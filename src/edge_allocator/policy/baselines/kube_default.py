"""kube-scheduler's default resource scoring, as the in-tree plugins compute it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge_allocator.cluster.snapshot import ClusterSnapshot, NodeState, TaskSpec
from edge_allocator.compiled import compiled
from edge_allocator.policy.baselines.columns import (
    CPU_ALLOC1,
    CPU_REQ,
    F64,
    I64,
    MEM_ALLOC1,
    MEM_REQ,
    ColumnView,
)


def least_allocated(node: NodeState, task: TaskSpec) -> float:
    """NodeResourcesFit/LeastAllocated, 0..100, requests including the incoming pod.

    ``mean over r in (cpu, memory) of (allocatable_r - requested_r) * 100 / allocatable_r``
    (a resource requested beyond allocatable scores 0).
    """
    cpu_alloc = max(node.cpu_allocatable_m, 1)
    mem_alloc = max(node.mem_allocatable_mib, 1)
    cpu = max(cpu_alloc - node.cpu_requested_m - task.cpu_request_m, 0) * 100.0 / cpu_alloc
    mem = max(mem_alloc - node.mem_requested_mib - task.mem_request_mib, 0) * 100.0 / mem_alloc
    return (cpu + mem) / 2.0


def balanced_allocation(node: NodeState, task: TaskSpec) -> float:
    """NodeResourcesBalancedAllocation, 0..100: ``(1 - stddev(f_cpu, f_mem)) * 100``.

    ``f_r = requested_r / allocatable_r`` including the pod, capped at 1; the standard
    deviation of two values is half their absolute difference.
    """
    f_cpu = min((node.cpu_requested_m + task.cpu_request_m) / max(node.cpu_allocatable_m, 1), 1.0)
    f_mem = min(
        (node.mem_requested_mib + task.mem_request_mib) / max(node.mem_allocatable_mib, 1), 1.0
    )
    return (1.0 - abs(f_cpu - f_mem) / 2.0) * 100.0


class KubeDefaultPolicy:
    """kube-scheduler default: ``1 * LeastAllocated + 1 * BalancedAllocation`` on requests.

    The other default plugins (affinity, taints, topology spread, image locality) score every
    candidate of an EdgeTask pod alike, so they do not change the ranking and are left out.
    """

    name = "kube-default"
    version = "1"

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        out: list[float] = []
        for c in candidates:
            node = snapshot.node(c)
            out.append(least_allocated(node, task) + balanced_allocation(node, task))
        return out

    def score_view(self, view: ColumnView, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, compiled (the same floats)."""
        data = view.data
        rows = (CPU_ALLOC1, MEM_ALLOC1, CPU_REQ, MEM_REQ)
        out: F64 = _scores(
            data, rows, nodes, float(task.cpu_request_m), float(task.mem_request_mib)
        )
        return out


@compiled
def _scores(data: F64, rows: tuple[int, int, int, int], nodes: I64, cpu: float, mem: float) -> F64:
    """:func:`least_allocated` + :func:`balanced_allocation` per node, operation for
    operation as the loop does them (``data``: :class:`NodeColumns`; ``rows``: its rows of
    allocatable CPU and memory, floored at 1, and of the requests)."""
    r_ca, r_ma, r_cr, r_mr = rows
    out = np.empty(nodes.shape[0])
    for k in range(nodes.shape[0]):
        i = nodes[k]
        ca, ma = data[r_ca, i], data[r_ma, i]
        cr, mr = data[r_cr, i], data[r_mr, i]
        least = (max(ca - cr - cpu, 0.0) * 100.0 / ca + max(ma - mr - mem, 0.0) * 100.0 / ma) / 2.0
        f_cpu = min((cr + cpu) / ca, 1.0)
        f_mem = min((mr + mem) / ma, 1.0)
        out[k] = least + (1.0 - abs(f_cpu - f_mem) / 2.0) * 100.0
    return out
