"""Feature arrays -> the tensors :class:`PlacementGNN` reads (single graph and batches)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from edge_allocator.cluster.features import NODE_DIM, NodeArrays, TopologyArrays
from edge_allocator.policy.gnn import VERTEX_DIM


@dataclass
class GraphInput:
    """One or more graphs, vertices ordered [nodes of g0, sites of g0, nodes of g1, ...]."""

    vertex_x: Tensor  # (V, VERTEX_DIM)
    edge_index: Tensor  # (2, E)
    edge_attr: Tensor  # (E, EDGE_DIM)
    node_mask: Tensor  # (V,) bool: True for node vertices
    batch: Tensor  # (V,) graph id
    num_graphs: int
    node_offset: Tensor  # (G,) first vertex of each graph


def vertex_matrix(topo: TopologyArrays, nodes: NodeArrays) -> np.ndarray:
    """Stack node and site inputs into one (N + S, VERTEX_DIM) float32 matrix."""
    n, s = nodes.node_x.shape[0], topo.site_x.shape[0]
    x = np.zeros((n + s, VERTEX_DIM), dtype=np.float32)
    x[:n, :NODE_DIM] = nodes.node_x
    x[n:, NODE_DIM : VERTEX_DIM - 1] = topo.site_x
    x[n:, VERTEX_DIM - 1] = 1.0
    return x


def single_graph(topo: TopologyArrays, nodes: NodeArrays) -> GraphInput:
    x = vertex_matrix(topo, nodes)
    n = nodes.node_x.shape[0]
    v = x.shape[0]
    mask = torch.zeros(v, dtype=torch.bool)
    mask[:n] = True
    return GraphInput(
        vertex_x=torch.from_numpy(x),
        edge_index=torch.from_numpy(topo.edge_index),
        edge_attr=torch.from_numpy(topo.edge_attr),
        node_mask=mask,
        batch=torch.zeros(v, dtype=torch.long),
        num_graphs=1,
        node_offset=torch.zeros(1, dtype=torch.long),
    )


def batch_graphs(
    vertex_xs: Sequence[np.ndarray],
    topos: Sequence[TopologyArrays],
) -> GraphInput:
    """Concatenate graphs (each a vertex matrix with its topology) into one batch."""
    xs: list[np.ndarray] = []
    eis: list[np.ndarray] = []
    eas: list[np.ndarray] = []
    masks: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    offsets: list[int] = []
    off = 0
    for g, (x, topo) in enumerate(zip(vertex_xs, topos, strict=True)):
        n = topo.node_site.shape[0]
        xs.append(x)
        eis.append(topo.edge_index + off)
        eas.append(topo.edge_attr)
        m = np.zeros(x.shape[0], dtype=bool)
        m[:n] = True
        masks.append(m)
        batch.append(np.full(x.shape[0], g, dtype=np.int64))
        offsets.append(off)
        off += x.shape[0]
    return GraphInput(
        vertex_x=torch.from_numpy(np.concatenate(xs)),
        edge_index=torch.from_numpy(np.concatenate(eis, axis=1)),
        edge_attr=torch.from_numpy(np.concatenate(eas)),
        node_mask=torch.from_numpy(np.concatenate(masks)),
        batch=torch.from_numpy(np.concatenate(batch)),
        num_graphs=len(offsets),
        node_offset=torch.tensor(offsets, dtype=torch.long),
    )
