"""The learned policy as a :class:`PlacementPolicy`: cached embeddings, per-request head.

Per snapshot (keyed by its topology cache and ``revision``) the GNN runs once and the node
part of the head's first layer is pre-multiplied; each ``score`` call then costs a gather, two
small matmuls and the rest of the head, O(candidates), in numpy (on a few hundred rows
torch's per-call overhead is most of the cost). A new revision of the same topology is
embedded incrementally from the last one (:mod:`edge_allocator.policy.incremental`): a
placement recomputes the changed node's neighbourhood, not the cluster.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_allocator.cluster.features import (
    NODE_ARRAYS_KEY,
    candidate_arrays,
    node_arrays,
    topology_arrays,
)
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.gnn import PlacementGNN
from edge_allocator.policy.graph_input import vertex_matrix
from edge_allocator.policy.incremental import IncrementalEmbedder, as_f32, for_matmul


@dataclass
class _Embedding:
    topology: dict[str, Any]  # held so its id() stays unique while cached
    node_part: np.ndarray  # (V, head_hidden): h @ W_node^T + pooled @ W_pool^T + b, read-only


class GNNPolicy:
    """Scores candidates with a trained :class:`PlacementGNN` (deterministic, no I/O).

    ``cache_size`` snapshots' embeddings are kept (LRU). Snapshot producers must bump
    ``revision`` whenever node state changes, and derive snapshots of one topology with
    :meth:`ClusterSnapshot.with_nodes` (or reuse the object) for the cache to hit. A snapshot
    is embedded once even when several threads ask at the same time (the extender's
    ``prepare`` and the next ``/prioritize`` on a busy host): later callers wait for the first.
    """

    def __init__(self, model: PlacementGNN, metadata: dict[str, Any], cache_size: int = 8) -> None:
        self.model = model.eval()
        self.metadata = metadata
        self._cache: OrderedDict[tuple[int, int], _Embedding] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._in_flight: dict[tuple[int, int], threading.Event] = {}
        self._local = threading.local()  # per-thread scratch rows for score()
        _, _, w_cand, w_task = model.split_head_weights()  # node, pool: in the embedder
        self._w_cand, self._w_task = for_matmul(w_cand), for_matmul(w_task)
        self._w2, self._b2 = for_matmul(model.head2.weight), as_f32(model.head2.bias)
        self._w3, self._b3 = for_matmul(model.head3.weight), as_f32(model.head3.bias)
        self.embedder = IncrementalEmbedder(model)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "gnn"))

    @property
    def version(self) -> str:
        return str(self.metadata.get("version", "0"))

    def _embedding(self, snapshot: ClusterSnapshot) -> _Embedding:
        key = (id(snapshot.topology_cache), snapshot.revision)
        while True:
            with self._lock:
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    return hit
                flight = self._in_flight.get(key)
                if flight is None:
                    flight = self._in_flight[key] = threading.Event()
                    break
            flight.wait()  # then the cache has it, or that caller failed and this one tries
        try:
            return self._embed(snapshot, key)
        finally:
            with self._lock:
                del self._in_flight[key]
            flight.set()

    def _embed(self, snapshot: ClusterSnapshot, key: tuple[int, int]) -> _Embedding:
        topo, nodes = topology_arrays(snapshot), node_arrays(snapshot)
        node_part = self.embedder.embed(
            snapshot.topology_cache,
            topo.edge_index,
            topo.edge_attr,
            vertex_matrix(topo, nodes),
            nodes.node_x.shape[0],
        )
        emb = _Embedding(snapshot.topology_cache, node_part)
        with self._lock:
            self._cache[key] = emb
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return emb

    def _scratch(self, rows: int, hidden: int) -> tuple[np.ndarray, np.ndarray]:
        """Two (rows, hidden) float32 work arrays owned by the calling thread (grown, never
        shrunk: their size is bounded by the largest candidate list seen)."""
        have: np.ndarray | None = getattr(self._local, "rows", None)
        if have is None or have.shape[1] < rows or have.shape[2] != hidden:
            have = self._local.rows = np.empty((2, max(rows, 64), hidden), dtype=np.float32)
        return have[0, :rows], have[1, :rows]

    def prepare(self, snapshot: ClusterSnapshot) -> None:
        """Embed ``snapshot`` now (cached), so that scoring on it later is O(candidates)."""
        self._embedding(snapshot)

    def _prepared(self, snapshot: ClusterSnapshot) -> _Embedding | None:
        """``snapshot``'s cached embedding when its feature arrays exist too, else None."""
        if NODE_ARRAYS_KEY not in snapshot.derived_cache:
            return None
        with self._lock:
            return self._cache.get((id(snapshot.topology_cache), snapshot.revision))

    def prepared(self, snapshot: ClusterSnapshot) -> bool:
        """Whether ``snapshot``'s embedding is cached and its feature arrays exist."""
        return self._prepared(snapshot) is not None

    def score_prepared(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float] | None:
        """:meth:`score` from the cached embedding only (None when it is not cached)."""
        emb = self._prepared(snapshot)
        return None if emb is None else self._head(emb, snapshot, task, candidates)

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        if not candidates:
            return []
        return self._head(self._embedding(snapshot), snapshot, task, candidates)

    def _head(
        self, emb: _Embedding, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        """The per-candidate part: candidate features and the head, on ``emb``."""
        if not candidates:
            return []
        ca = candidate_arrays(snapshot, task, candidates)
        # PlacementGNN.head_from_parts, row for row, in this thread's scratch rows: two fresh
        # (K, hidden) arrays per call would each be mapped and faulted in by malloc at 1,000
        # candidates (the slow tail of a request), the same BLAS calls write here instead
        z, y = self._scratch(len(ca.index), emb.node_part.shape[1])
        # mode='clip': 'raise' would stage the rows in a fresh array (the indices are the
        # snapshot's own, in range)
        np.take(emb.node_part, ca.index, axis=0, out=z, mode="clip")
        z += np.matmul(ca.cand_x, self._w_cand, out=y)
        z += ca.task_x @ self._w_task
        np.maximum(z, 0.0, out=z)
        y = np.matmul(z, self._w2, out=y)
        y += self._b2
        np.maximum(y, 0.0, out=y)
        logits = y @ self._w3
        logits += self._b3
        out: list[float] = logits[:, 0].tolist()
        return out
