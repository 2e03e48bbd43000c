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
for one graph, in numpy: it is what serving and the simulator run; training keeps the PyG
module, and a test checks the two agree. numpy rather than torch because the incremental pass
is dozens of small gathers, scatters and matmuls on a few hundred rows, where torch's per-call
overhead (advanced indexing above all) cost more than the arithmetic. Two rewrites of the
module's layers keep the work down without changing the function: ``Linear(cat[h, e])`` is
``h @ W_h + (e @ W_e + b)`` with the edge part computed once per topology (edge features are
fixed), and the mean aggregation is a segment sum over edges grouped by target (CSR), so the
aggregate of a few vertices reads only their own incoming edges.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from edge_allocator.policy.gnn import PlacementGNN, SiteGraphConv

FULL_PASS_FRACTION = 0.25
"""Above this share of changed vertices a full pass is cheaper than the bookkeeping."""

F32 = np.ndarray
I64 = np.ndarray


def as_f32(t: Tensor) -> F32:
    """A parameter as a contiguous float32 array."""
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


def for_matmul(weight: Tensor) -> F32:
    """A linear layer's weight (or a block of its columns) transposed, for ``x @ W``."""
    return np.ascontiguousarray(as_f32(weight).T)


@dataclass(frozen=True)
class _Conv:
    """One :class:`SiteGraphConv`'s weights, split by input block and transposed."""

    msg_h: F32  # (H, H): message weight on the source state
    msg_e: F32  # (EDGE_DIM, H): message weight on the edge features
    msg_b: F32  # (H,)
    upd_h: F32  # (H, H): update weight on the vertex state
    upd_a: F32  # (H, H): update weight on the aggregate
    upd_b: F32  # (H,)
    gamma: F32  # (H,) LayerNorm
    beta: F32
    eps: float

    @classmethod
    def of(cls, conv: SiteGraphConv) -> _Conv:
        h = conv.upd.weight.shape[0]
        wm, wu = conv.msg.weight, conv.upd.weight
        return cls(
            msg_h=for_matmul(wm[:, :h]),
            msg_e=for_matmul(wm[:, h:]),
            msg_b=as_f32(conv.msg.bias),
            upd_h=for_matmul(wu[:, :h]),
            upd_a=for_matmul(wu[:, h:]),
            upd_b=as_f32(conv.upd.bias),
            gamma=as_f32(conv.norm.weight),
            beta=as_f32(conv.norm.bias),
            eps=float(conv.norm.eps),
        )

    def update(self, h: F32, agg: F32) -> F32:
        """``LayerNorm(h + ReLU(W_u [h | agg] + b_u))`` row-wise."""
        z: F32 = h @ self.upd_h
        z += agg @ self.upd_a
        z += self.upd_b
        np.maximum(z, 0.0, out=z)
        z += h
        z -= z.mean(axis=1, keepdims=True)
        var = np.mean(z * z, axis=1, keepdims=True)
        z /= np.sqrt(var + self.eps)
        z *= self.gamma
        z += self.beta
        return z


@dataclass(frozen=True)
class _Topology:
    """Edge arrays of one topology: CSR by source and by target, the edges' fixed message
    parts per layer, and each vertex's in-degree."""

    owner: object  # what the topology belongs to (held, so identity stays meaningful)
    src: I64  # (E,)
    dst: I64  # (E,)
    out_ptr: I64  # (V + 1,) edges leaving v: out_edges[out_ptr[v]:out_ptr[v + 1]]
    out_edges: I64
    in_ptr: I64  # (V + 1,) edges into v: in_edges[in_ptr[v]:in_ptr[v + 1]]
    in_edges: I64
    inv_degree: F32  # (V, 1): 1 / in-degree (0 for a vertex without edges: it aggregates 0)
    edge_terms: tuple[F32, ...]  # per conv (E, H): edge_attr @ W_e + b_m
    num_nodes: int  # node vertices come first: [0, num_nodes)


class _State:
    """Every layer of the last embedded graph; updated in place under the embedder's lock."""

    def __init__(
        self, topology: _Topology, vertex_x: F32, hs: list[F32], msgs: list[F32], node_w: F32
    ) -> None:
        self.topology = topology
        self.vertex_x = vertex_x  # (V, VERTEX_DIM) the inputs it was computed from
        self.hs = hs  # layers + 1 arrays (V, H): encoder output, then each conv's
        self.msgs = msgs  # one per conv (E, H)
        self.node_w = node_w  # (V, head_hidden): hs[-1] @ W_node
        self.node_part = np.empty(0, dtype=np.float32)  # node_w + (pooled @ W_pool + b1)


def _gather(ptr: I64, items: I64, rows: I64) -> tuple[I64, I64]:
    """CSR rows ``rows`` concatenated, and each row's count."""
    starts, counts = ptr[rows], ptr[rows + 1] - ptr[rows]
    total = int(counts.sum())
    if total == 0:
        return items[:0], counts
    offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
    return items[offsets + np.arange(total)], counts


def _segment_sum(values: F32, counts: I64, width: int) -> F32:
    """Sums of consecutive ``values`` rows, ``counts[i]`` rows for output row ``i``."""
    out = np.zeros((counts.shape[0], width), dtype=np.float32)
    nonempty = counts > 0
    if values.shape[0]:
        starts = (np.cumsum(counts) - counts)[nonempty]
        out[nonempty] = np.add.reduceat(values, starts, axis=0)
    return out


class IncrementalEmbedder:
    """Full or incremental embedding of one graph with a frozen :class:`PlacementGNN`.

    ``embed(owner, edge_index, edge_attr, vertex_x, num_nodes)`` -> the head's node part
    ``(V, head_hidden)``. ``owner`` is the object the topology belongs to (the same object: the
    same edges); the last state embedded is the base of the next call of the same owner.
    Thread-safe: one embedding at a time (the state is updated in place); the arrays it
    returns are read-only.
    """

    def __init__(self, model: PlacementGNN) -> None:
        self.model = model
        self._enc_w = for_matmul(model.encoder.weight)
        self._enc_b = as_f32(model.encoder.bias)
        self._convs = [_Conv.of(c) for c in model.convs if isinstance(c, SiteGraphConv)]
        w_node, w_pool, _, _ = model.split_head_weights()
        self._w_node, self._w_pool = for_matmul(w_node), for_matmul(w_pool)
        self._b1 = as_f32(model.head1.bias)
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
    ) -> np.ndarray:
        x = np.array(vertex_x, dtype=np.float32)  # a copy: the base of the next call
        with self._lock:
            base, self._last = self._last, None  # restored only once the state is whole
            if base is not None and base.topology.owner is owner:
                changed = np.flatnonzero((x != base.vertex_x).any(axis=1))
                if changed.size == 0:
                    state = base
                elif changed.size <= self.full_pass_fraction * x.shape[0]:
                    state = self._update(base, x, changed)
                    self.incremental_passes += 1
                else:
                    state = self._full(base.topology, x)
                    self.full_passes += 1
            else:
                topo = self._topology(owner, edge_index, edge_attr, x.shape[0], num_nodes)
                state = self._full(topo, x)
                self.full_passes += 1
            self._last = state
            return state.node_part

    def _topology(
        self, owner: object, edge_index: np.ndarray, edge_attr: np.ndarray, v: int, n: int
    ) -> _Topology:
        src = np.ascontiguousarray(edge_index[0], dtype=np.int64)
        dst = np.ascontiguousarray(edge_index[1], dtype=np.int64)
        attr = np.asarray(edge_attr, dtype=np.float32)
        out_edges = np.argsort(src, kind="stable")
        in_edges = np.argsort(dst, kind="stable")
        out_ptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=v))])
        degree = np.bincount(dst, minlength=v)
        in_ptr = np.concatenate([[0], np.cumsum(degree)])
        inv = np.where(degree > 0, 1.0 / np.maximum(degree, 1), 0.0).astype(np.float32)
        terms = tuple(np.ascontiguousarray(attr @ c.msg_e + c.msg_b) for c in self._convs)
        return _Topology(
            owner, src, dst, out_ptr, out_edges, in_ptr, in_edges, inv[:, None], terms, n
        )

    def _finish(self, state: _State) -> _State:
        """The head's node part from the state's last layer and its node mean."""
        pooled = state.hs[-1][: state.topology.num_nodes].mean(axis=0)
        state.node_part = state.node_w + (pooled @ self._w_pool + self._b1)
        state.node_part.flags.writeable = False  # handed to readers: never written again
        return state

    def _encode(self, x: F32) -> F32:
        h: F32 = x @ self._enc_w
        h += self._enc_b
        np.maximum(h, 0.0, out=h)
        return h

    def _full(self, topo: _Topology, x: F32) -> _State:
        h = self._encode(x)
        hs, msgs = [h], []
        width = h.shape[1]
        for conv, terms in zip(self._convs, topo.edge_terms, strict=True):
            m = h[topo.src] @ conv.msg_h
            m += terms
            np.maximum(m, 0.0, out=m)
            counts = topo.in_ptr[1:] - topo.in_ptr[:-1]
            agg = _segment_sum(m[topo.in_edges], counts, width) * topo.inv_degree
            h = conv.update(h, agg)
            hs.append(h)
            msgs.append(m)
        return self._finish(_State(topo, x, hs, msgs, h @ self._w_node))

    def _update(self, state: _State, x: F32, changed: I64) -> _State:
        topo = state.topology
        hs, width = state.hs, state.hs[0].shape[1]
        hs[0][changed] = self._encode(x[changed])
        for layer, (conv, terms) in enumerate(zip(self._convs, topo.edge_terms, strict=True)):
            h, m = hs[layer], state.msgs[layer]
            edges, _ = _gather(topo.out_ptr, topo.out_edges, changed)  # leaving changed rows
            if edges.size:
                fresh = h[topo.src[edges]] @ conv.msg_h
                fresh += terms[edges]
                np.maximum(fresh, 0.0, out=fresh)
                m[edges] = fresh
            reached = np.zeros(x.shape[0], dtype=bool)
            reached[changed] = True
            reached[topo.dst[edges]] = True  # and the vertices those messages reach
            targets = np.flatnonzero(reached)
            incoming, counts = _gather(topo.in_ptr, topo.in_edges, targets)
            agg = _segment_sum(m[incoming], counts, width) * topo.inv_degree[targets]
            hs[layer + 1][targets] = conv.update(h[targets], agg)
            changed = targets
        state.node_w[changed] = hs[-1][changed] @ self._w_node
        state.vertex_x = x
        return self._finish(state)
