"""What-if arithmetic for re-placement: the cluster without a task's pod, and the gain of a move.

The operator asks "where would this running task go now, and is it worth moving?". Fair
answers need the task's own pod taken off its node first (otherwise its node always looks
busier by exactly the task and every task looks worth moving), and a gain in a unit both sides
understand. The policy chooses the target; the gain is measured with the deployable
estimated-completion model (network time + work at the rate the node's free measured CPU
allows, one CPU-second of work when unknown), so it means seconds whatever the policy is.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines.est_completion import EstimatedCompletionPolicy

_WHAT_IF_REVISIONS = itertools.count(1)
"""What-if views get negative revisions, each its own: scorers cache per revision, and two
what-ifs on one live snapshot (different pods taken off) must never share a cache entry."""


def without_pod(snap: ClusterSnapshot, node: str, cpu_m: int, mem_mib: int) -> ClusterSnapshot:
    """``snap`` with a pod of these requests taken off ``node`` (requests, running tasks, and
    the same amount of measured usage, an estimate: a pod's own usage is not in the sample)."""
    if not snap.has_node(node):
        return snap
    i = snap.index_of(node)
    st = snap.nodes[i]
    fixed = dataclasses.replace(
        st,
        cpu_requested_m=max(st.cpu_requested_m - cpu_m, 0),
        mem_requested_mib=max(st.mem_requested_mib - mem_mib, 0),
        cpu_usage_m=None if st.cpu_usage_m is None else max(st.cpu_usage_m - cpu_m, 0),
        mem_usage_mib=None if st.mem_usage_mib is None else max(st.mem_usage_mib - mem_mib, 0),
        running_tasks=max(st.running_tasks - 1, 0),
    )
    nodes = (*snap.nodes[:i], fixed, *snap.nodes[i + 1 :])
    revision = -next(_WHAT_IF_REVISIONS)
    return snap.with_nodes(nodes, revision=revision, taken_at=snap.taken_at, changed=[i])


def estimated_completion_s(snap: ClusterSnapshot, task: TaskSpec, node: str) -> float:
    """The estimated-completion model's seconds for ``task`` on ``node``."""
    return -EstimatedCompletionPolicy().score(snap, task, [node])[0]


def predicted_gain(
    snap: ClusterSnapshot, task: TaskSpec, current: str, target: str
) -> tuple[float, float]:
    """(seconds saved, fraction of the current estimate saved) by moving current -> target."""
    now_s = estimated_completion_s(snap, task, current)
    then_s = estimated_completion_s(snap, task, target)
    gain = now_s - then_s
    ratio = gain / now_s if now_s > 0 and math.isfinite(now_s) else 0.0
    return gain, ratio
