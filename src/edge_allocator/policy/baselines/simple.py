"""The two floor baselines: random and round-robin, made pure and deterministic.

A policy's ``score`` must be a function of its inputs, so "random" hashes the inputs and
"round-robin" rotates by the snapshot revision instead of keeping a counter.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines.columns import F64, I64, ColumnView


class RandomPolicy:
    """Uniform pseudo-random scores in [0, 1) from a CRC32 of (seed, revision, task, node)."""

    name = "random"
    version = "1"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        prefix = (
            f"{self.seed}|{snapshot.revision}|{snapshot.taken_at}|{task.cpu_request_m}|"
            f"{task.data_source_site}|{task.data_source_node}|"
        ).encode()
        base = zlib.crc32(prefix)
        return [zlib.crc32(c.encode(), base) / 4294967296.0 for c in candidates]


class RoundRobinPolicy:
    """Prefer candidate ``revision mod K``, then the ones after it in the given order."""

    name = "round-robin"
    version = "1"

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        k = len(candidates)
        if k == 0:
            return []
        start = snapshot.revision % k
        return [float(k - ((i - start) % k)) for i in range(k)]

    def score_view(self, view: ColumnView, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, vectorised (the same floats)."""
        k = int(nodes.shape[0])
        if k == 0:
            return np.zeros(0)
        out: F64 = (k - (np.arange(k) - view.revision % k) % k).astype(np.float64)
        return out
