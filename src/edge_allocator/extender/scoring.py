"""Pure decision arithmetic: latency-budget filtering and policy scores -> extender scores.

Filter rules, per candidate node:

* not in the cache's snapshot -> ``FailedNodes`` ("unknown to the extender's cache": deleted, or
  not seen yet - a later cycle may succeed);
* in the snapshot but not Ready -> ``FailedNodes``;
* shortest-path network latency from the task's data-source site (0 on the data-source node
  itself; transfer time is not part of the budget, as in the simulator) above the pod's
  latency budget -> ``FailedAndUnresolvableNodes`` ("42 ms from site-a exceeds budget 20 ms"):
  preemption cannot move a node closer.

Score mapping (kube-scheduler wants integers 0..10, higher is better). Candidates are ranked by
(policy score descending, node name ascending) - the **tie rule**: equal policy scores are
broken by node name, so the answer is deterministic and exactly one node is the top choice.
The top node gets 10. Every other node gets
``round(9 * (raw - lo) / (top - lo))`` clipped to 0..9, where ``lo`` is the lowest policy
score among the candidates (9 for all when ``top == lo``). The mapping is monotone: a better
policy score never gets a lower extender score. Non-finite policy scores count as the lowest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_allocator.cluster.budget import latency_within
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec

MAX_SCORE = 10


def format_ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 or value == int(value) else f"{value:.1f} ms"


@dataclass(frozen=True, slots=True)
class FilterOutcome:
    passed: list[str]
    failed: dict[str, str]
    unresolvable: dict[str, str]


def filter_candidates(
    snapshot: ClusterSnapshot, task: TaskSpec | None, candidates: Sequence[str]
) -> FilterOutcome:
    """Apply the filter rules above; ``task`` None (not an EdgeTask pod) checks the cache only."""
    passed: list[str] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    budget = task.latency_budget_ms if task is not None else None
    per_site: dict[str, float] = {}
    for name in candidates:
        if not snapshot.has_node(name):
            failed[name] = "node is unknown to the edge-allocator cache (deleted or not yet seen)"
            continue
        node = snapshot.node(name)
        if not node.ready:
            failed[name] = "node is not Ready in the edge-allocator cache"
            continue
        if task is not None and budget is not None:
            if task.data_source_node == name:
                net = 0.0
            else:
                net = per_site.get(node.site, -1.0)
                if net < 0:
                    net = snapshot.site_latency_ms(task.data_source_site, node.site)
                    per_site[node.site] = net
            if not latency_within(net, budget):  # the one budget rule
                unresolvable[name] = (
                    f"{format_ms(net)} from {task.data_source_site} exceeds budget "
                    f"{format_ms(budget)}"
                    if math.isfinite(net)
                    else f"no network path from {task.data_source_site} to {node.site} "
                    "(no EdgeNetwork link joins them)"
                )
                continue
        passed.append(name)
    return FilterOutcome(passed, failed, unresolvable)


def _clean(raw: Sequence[float] | np.ndarray) -> np.ndarray:
    """Policy scores as float64, non-finite ones as -inf (they rank last)."""
    arr = np.asarray(raw, dtype=np.float64)
    return np.where(np.isfinite(arr), arr, -np.inf)


def _best_first(candidates: Sequence[str], clean: np.ndarray, idx: np.ndarray) -> list[int]:
    """``idx`` sorted by the tie rule: (score descending, name ascending)."""
    return sorted(idx.tolist(), key=lambda i: (-clean[i], candidates[i]))


def rank(candidates: Sequence[str], raw: Sequence[float], k: int | None = None) -> list[int]:
    """Indices of ``candidates`` best first, by (raw descending, name ascending); the first
    ``k`` only when given (only the nodes that can be among them are sorted)."""
    clean = _clean(raw)
    n = clean.shape[0]
    if k is None or k >= n:
        return _best_first(candidates, clean, np.arange(n))
    if k <= 0:
        return []
    kth = np.partition(clean, n - k)[n - k]  # the k-th best score; ties with it compete by name
    return _best_first(candidates, clean, np.flatnonzero(clean >= kth))[:k]


def to_extender_scores(
    candidates: Sequence[str], raw: Sequence[float] | np.ndarray
) -> tuple[list[int], int]:
    """Integer scores (same order as ``candidates``) and the index of the top node."""
    if len(candidates) != len(raw):
        raise ValueError(f"policy returned {len(raw)} scores for {len(candidates)} candidates")
    if not candidates:
        return [], -1
    clean = _clean(raw)
    finite = clean != -np.inf
    hi = float(clean.max())
    best = np.flatnonzero(clean == hi)
    top = int(best[0]) if best.size == 1 else min(best.tolist(), key=candidates.__getitem__)
    nine = MAX_SCORE - 1
    if not finite.any():
        scores = np.zeros(clean.shape[0], dtype=np.int64)
    else:
        lo = float(clean[finite].min())
        span = hi - lo
        if span <= 0:
            scores = np.where(finite, nine, 0)
        else:  # np.rint rounds half to even, as round() does
            scaled = np.rint((np.where(finite, clean, lo) - lo) * (nine / span))
            scores = np.where(finite, np.clip(scaled, 0, nine), 0).astype(np.int64)
    out: list[int] = scores.tolist()
    out[top] = MAX_SCORE
    return out, top
