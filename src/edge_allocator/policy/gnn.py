"""The graph network behind the learned policy: site-graph message passing + candidate head.

The cluster is one graph whose vertices are the nodes and the sites (a node is wired to its
site, sites to each other along network links). Node embeddings depend only on cluster state,
so a server computes them once per snapshot revision; per request only the small candidate
head runs, which is what keeps scoring 1,000 candidates within a couple of milliseconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter

from edge_allocator.cluster.features import CAND_DIM, EDGE_DIM, NODE_DIM, SITE_DIM, TASK_DIM

VERTEX_DIM = NODE_DIM + SITE_DIM + 1
"""Vertex input: node features | site features | is-site flag (the unused part is zero)."""


class SiteGraphConv(MessagePassing):  # type: ignore[misc]
    r"""Residual mean-aggregation convolution with edge features.

    .. math::
        m_i = \frac{1}{|N(i)|}\sum_{j \in N(i)} \mathrm{ReLU}(W_m [h_j \,\|\, e_{ji}] + b_m)
        \qquad h_i' = \mathrm{LayerNorm}(h_i + \mathrm{ReLU}(W_u [h_i \,\|\, m_i] + b_u))

    Args:
        hidden: embedding width ``H``.
        edge_dim: edge feature width.

    Shapes: ``x`` (V, H), ``edge_index`` (2, E), ``edge_attr`` (E, edge_dim) -> (V, H).
    Mean (not sum) aggregation keeps magnitudes independent of site size.
    """

    def __init__(self, hidden: int, edge_dim: int) -> None:
        super().__init__(aggr="mean")
        self.msg = nn.Linear(hidden + edge_dim, hidden)
        self.upd = nn.Linear(2 * hidden, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        agg: Tensor = self.propagate(edge_index, x=x, edge_attr=edge_attr)
        out: Tensor = self.norm(x + torch.relu(self.upd(torch.cat([x, agg], dim=-1))))
        return out

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return torch.relu(self.msg(torch.cat([x_j, edge_attr], dim=-1)))


@dataclass(frozen=True)
class GNNConfig:
    """Architecture hyper-parameters (stored in the model file)."""

    hidden: int = 32
    layers: int = 3
    head_hidden: int = 64

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PlacementGNN(nn.Module):
    """Embeds the cluster graph, then scores each candidate with a task-conditioned head.

    ``embed``: vertex inputs (V, VERTEX_DIM) -> vertex embeddings (V, H) and a pooled graph
    embedding per graph (G, H) (mean over node vertices). ``head``: for K candidates, the
    input ``[h_node | pooled | cand_x | task_x]`` (K, 2H + CAND_DIM + TASK_DIM) -> logits (K,).
    ``value``: ``[pooled | task_x]`` -> a scalar state value (the actor-critic baseline).
    """

    def __init__(self, config: GNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or GNNConfig()
        h, hh = self.config.hidden, self.config.head_hidden
        self.encoder = nn.Linear(VERTEX_DIM, h)
        self.convs = nn.ModuleList(SiteGraphConv(h, EDGE_DIM) for _ in range(self.config.layers))
        self.head1 = nn.Linear(2 * h + CAND_DIM + TASK_DIM, hh)
        self.head2 = nn.Linear(hh, hh)
        self.head3 = nn.Linear(hh, 1)
        self.value1 = nn.Linear(h + TASK_DIM, hh)
        self.value2 = nn.Linear(hh, 1)

    def embed(
        self,
        vertex_x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        node_mask: Tensor,
        batch: Tensor,
        num_graphs: int,
    ) -> tuple[Tensor, Tensor]:
        h = torch.relu(self.encoder(vertex_x))
        for conv in self.convs:
            h = conv(h, edge_index, edge_attr)
        pooled = scatter(h[node_mask], batch[node_mask], dim=0, dim_size=num_graphs, reduce="mean")
        return h, pooled

    def head_from_parts(self, first_layer: Tensor) -> Tensor:
        """The head after its first linear layer (shared by training and cached serving)."""
        z = torch.relu(first_layer)
        z = torch.relu(self.head2(z))
        logits: Tensor = self.head3(z).squeeze(-1)
        return logits

    def head(self, h_cand: Tensor, pooled: Tensor, cand_x: Tensor, task_x: Tensor) -> Tensor:
        return self.head_from_parts(self.head1(torch.cat([h_cand, pooled, cand_x, task_x], -1)))

    def value(self, pooled: Tensor, task_x: Tensor) -> Tensor:
        z = torch.relu(self.value1(torch.cat([pooled, task_x], dim=-1)))
        v: Tensor = self.value2(z).squeeze(-1)
        return v

    def split_head_weights(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``head1``'s weight split by input block: (node, pooled, candidate, task)."""
        h = self.config.hidden
        w = self.head1.weight
        return w[:, :h], w[:, h : 2 * h], w[:, 2 * h : 2 * h + CAND_DIM], w[:, 2 * h + CAND_DIM :]
