"""Node embeddings recomputed only where a snapshot changed.

A placement changes one node's row; a 3-layer message-passing network changes, because of it,
only the vertices within 3 hops (the node, its site, the site's nodes, the next sites and their
nodes), and the mean-pooled graph vector. :class:`IncrementalEmbedder` keeps every layer's
vertex states and edge messages of the last graph it embedded and, for the next graph of the
same topology, recomputes only the rows whose inputs differ: the changed vertices' encodings,
the messages leaving a changed vertex, the aggregates of the vertices those messages reach,
and their updates, layer by layer. Each value is still computed once from its own inputs (no
running sums), so the result equals a full pass up to float rounding, however many updates
follow one another.

The forward pass here is the arithmetic of :class:`~edge_allocator.policy.gnn.PlacementGNN`
for one graph written with plain tensor ops (``index_add_`` for the mean aggregation): it is
what serving and the simulator run; training keeps the PyG module. A test checks the two agree.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np
import torch
from torch import Tensor, nn

from edge_allocator.policy.gnn import PlacementGNN, SiteGraphConv

FULL_PASS_FRACTION = 0.25
"""Above this share of changed vertices a full pass is cheaper than the bookkeeping."""


@dataclass(frozen=True)
class _Topology:
    """Edge arrays of one topology, as tensors, with each vertex's in-degree."""

    owner: object  # what the topology belongs to (held, so identity stays meaningful)
    src: Tensor  # (E,)
    dst: Tensor  # (E,)
    edge_attr: Tensor  # (E, EDGE_DIM)
    degree: Tensor  # (V, 1): in-degree, at least 1 (a vertex without edges aggregates 0)
    num_nodes: int  # node vertices come first: [0, num_nodes)


@dataclass(frozen=True)
class _State:
    """Every layer of one embedded graph (never mutated: a new state copies what changes)."""

    topology: _Topology
    vertex_x: np.ndarray  # (V, VERTEX_DIM) the inputs it was computed from
    h: tuple[Tensor, ...]  # layers + 1 tensors (V, H): encoder output, then each conv's
    msgs: tuple[Tensor, ...]  # one per conv (E, H)
    node_w: Tensor  # (V, head_hidden): h[-1] @ W_node^T
    node_part: Tensor  # node_w + (pooled @ W_pool^T + b1): the head's first layer, node part


@dataclass(frozen=True)
class _Conv:
    msg: nn.Linear
    upd: nn.Linear
    norm: nn.LayerNorm


def _is_conv(module: nn.Module) -> TypeGuard[SiteGraphConv]:
    return isinstance(module, SiteGraphConv)


class IncrementalEmbedder:
    """Full or incremental embedding of one graph with a frozen :class:`PlacementGNN`.

    ``embed(owner, edge_index, edge_attr, vertex_x, num_nodes)`` -> the head's node part
    ``(V, head_hidden)``. ``owner`` is the object the topology belongs to (the same object: the
    same edges); the last state embedded is the base of the next call of the same owner.
    Thread-safe: states are immutable and swapped under a lock.
    """

    def __init__(self, model: PlacementGNN, w_node: Tensor, w_pool: Tensor, b1: Tensor) -> None:
        self.model = model
        self._encoder = model.encoder
        self._convs = [_Conv(c.msg, c.upd, c.norm) for c in model.convs if _is_conv(c)]
        self._w_node, self._w_pool, self._b1 = w_node, w_pool, b1
        self.full_pass_fraction = FULL_PASS_FRACTION
        self._last: _State | None = None
        self._lock = threading.Lock()
        self.full_passes = 0
        self.incremental_passes = 0

    def embed(
        self,
        owner: object,
        edge_index: np.ndarray,
        edge_attr: np.ndarray,
        vertex_x: np.ndarray,
        num_nodes: int,
    ) -> Tensor:
        with self._lock:
            base = self._last
        with torch.inference_mode():
            if base is not None and base.topology.owner is owner:
                changed = np.flatnonzero((vertex_x != base.vertex_x).any(axis=1))
                if changed.size == 0:
                    return base.node_part
                if changed.size <= self.full_pass_fraction * vertex_x.shape[0]:
                    state = self._update(base, vertex_x, changed)
                    self.incremental_passes += 1
                else:
                    state = self._full(base.topology, vertex_x)
                    self.full_passes += 1
            else:
                topo = self._topology(owner, edge_index, edge_attr, vertex_x.shape[0], num_nodes)
                state = self._full(topo, vertex_x)
                self.full_passes += 1
        with self._lock:
            self._last = state
        return state.node_part

    @staticmethod
    def _topology(
        owner: object, edge_index: np.ndarray, edge_attr: np.ndarray, v: int, num_nodes: int
    ) -> _Topology:
        src = torch.from_numpy(np.ascontiguousarray(edge_index[0]))
        dst = torch.from_numpy(np.ascontiguousarray(edge_index[1]))
        degree = torch.zeros(v).index_add_(0, dst, torch.ones(dst.shape[0])).clamp(min=1.0)
        attr = torch.from_numpy(edge_attr)
        return _Topology(owner, src, dst, attr, degree.unsqueeze(1), num_nodes)

    def _messages(self, conv: _Conv, h: Tensor, topo: _Topology, edges: Tensor | None) -> Tensor:
        src = topo.src if edges is None else topo.src[edges]
        attr = topo.edge_attr if edges is None else topo.edge_attr[edges]
        return torch.relu(conv.msg(torch.cat([h[src], attr], dim=-1)))

    @staticmethod
    def _updated(conv: _Conv, h: Tensor, agg: Tensor) -> Tensor:
        out: Tensor = conv.norm(h + torch.relu(conv.upd(torch.cat([h, agg], dim=-1))))
        return out

    def _state(
        self, topo: _Topology, x: np.ndarray, hs: list[Tensor], msgs: list[Tensor], node_w: Tensor
    ) -> _State:
        pooled = hs[-1][: topo.num_nodes].mean(dim=0)
        node_part = (node_w + (pooled @ self._w_pool + self._b1)).contiguous()
        return _State(topo, x, tuple(hs), tuple(msgs), node_w, node_part)

    def _full(self, topo: _Topology, vertex_x: np.ndarray) -> _State:
        h = torch.relu(self._encoder(torch.from_numpy(vertex_x)))
        hs, msgs = [h], []
        for conv in self._convs:
            m = self._messages(conv, h, topo, None)
            agg = torch.zeros_like(h).index_add_(0, topo.dst, m) / topo.degree
            h = self._updated(conv, h, agg)
            hs.append(h)
            msgs.append(m)
        return self._state(topo, vertex_x, hs, msgs, h @ self._w_node)

    def _update(self, base: _State, vertex_x: np.ndarray, changed_rows: np.ndarray) -> _State:
        topo = base.topology
        v = vertex_x.shape[0]
        changed = torch.from_numpy(changed_rows)
        h = base.h[0].clone()
        h[changed] = torch.relu(self._encoder(torch.from_numpy(vertex_x[changed_rows])))
        hs, msgs = [h], []
        mask = torch.zeros(v, dtype=torch.bool)
        for layer, conv in enumerate(self._convs):
            mask[changed] = True
            edges = torch.nonzero(mask[topo.src]).squeeze(1)  # messages leaving changed rows
            m = base.msgs[layer].clone()
            m[edges] = self._messages(conv, h, topo, edges)
            mask[topo.dst[edges]] = True  # the vertices those messages reach
            targets = torch.nonzero(mask).squeeze(1)
            incoming = torch.nonzero(mask[topo.dst]).squeeze(1)  # all edges into the targets
            agg = torch.zeros_like(h).index_add_(0, topo.dst[incoming], m[incoming])
            agg_t = agg[targets] / topo.degree[targets]
            nxt = base.h[layer + 1].clone()
            nxt[targets] = self._updated(conv, h[targets], agg_t)
            hs.append(nxt)
            msgs.append(m)
            h, changed = nxt, targets
        node_w = base.node_w.clone()
        node_w[changed] = h[changed] @ self._w_node
        return self._state(topo, vertex_x, hs, msgs, node_w)
