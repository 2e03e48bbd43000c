"""Decision records and batched forward passes over many recorded decisions.

A rollout stores, per decision, the task-independent vertex matrix, the (shared) topology
arrays, and the candidate arrays; training re-runs the network on minibatches of them as one
disjoint-union graph and takes a log-softmax over each decision's own candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import scatter

from edge_allocator.cluster.features import TopologyArrays
from edge_allocator.policy.gnn import PlacementGNN
from edge_allocator.policy.graph_input import batch_graphs


@dataclass
class Decision:
    vertex_x: np.ndarray
    topo: TopologyArrays
    cand_index: np.ndarray
    cand_x: np.ndarray
    task_x: np.ndarray
    task_id: int
    teacher: int  # the teacher's choice (index into the candidates)
    action: int  # what was actually done
    logp: float = 0.0  # log-probability of ``action`` when it was sampled


@dataclass
class BatchOut:
    logp_all: Tensor  # (sum K,) log-softmax within each decision
    seg: Tensor  # (sum K,) decision id of each candidate row
    offsets: Tensor  # (B,) first candidate row of each decision
    values: Tensor  # (B,)


def forward_batch(model: PlacementGNN, recs: Sequence[Decision]) -> BatchOut:
    g = batch_graphs([r.vertex_x for r in recs], [r.topo for r in recs])
    h, pooled = model.embed(
        g.vertex_x, g.edge_index, g.edge_attr, g.node_mask, g.batch, g.num_graphs
    )
    sizes = [len(r.cand_index) for r in recs]
    seg = torch.repeat_interleave(torch.arange(len(recs)), torch.tensor(sizes))
    vertex = torch.from_numpy(np.concatenate([r.cand_index for r in recs])) + g.node_offset[seg]
    cand_x = torch.from_numpy(np.concatenate([r.cand_x for r in recs]))
    task_x = torch.from_numpy(np.stack([r.task_x for r in recs]))
    logits = model.head(h[vertex], pooled[seg], cand_x, task_x[seg])
    m = scatter(logits.detach(), seg, dim=0, dim_size=len(recs), reduce="max")
    z = logits - m[seg]
    lse = torch.log(scatter(torch.exp(z), seg, dim=0, dim_size=len(recs), reduce="sum"))
    offsets = torch.zeros(len(recs), dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor(sizes), 0)[:-1]
    return BatchOut(z - lse[seg], seg, offsets, model.value(pooled, task_x))
