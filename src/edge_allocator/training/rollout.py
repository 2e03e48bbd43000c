"""Choosers that run the network (or a teacher) inside the simulator and record decisions."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from edge_allocator.cluster.features import build_features
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.gnn import PlacementGNN
from edge_allocator.policy.graph_input import single_graph, vertex_matrix
from edge_allocator.training.batching import Decision


def _argmax(xs: Sequence[float]) -> int:
    best, bi = -math.inf, 0
    for i, x in enumerate(xs):
        if x > best:
            best, bi = x, i
    return bi


class RecordingChooser:
    """Records every decision; acts as the teacher, the network greedily, or by sampling.

    ``mode``: ``"teacher"`` (imitation data), ``"greedy"`` (DAgger: the student acts, the
    teacher labels), ``"sample"`` (policy gradient: actions drawn from the softmax).
    ``hide_work``: the student sees each task without its CPU-seconds of work, as it does on a
    live cluster (a pod does not declare it); the teacher still sees it.
    """

    def __init__(
        self,
        model: PlacementGNN | None,
        teacher: PlacementPolicy | None,
        mode: str,
        rng: np.random.Generator,
        *,
        hide_work: bool = False,
    ) -> None:
        self.model, self.teacher, self.mode, self.rng = model, teacher, mode, rng
        self.hide_work = hide_work
        self.records: list[Decision] = []

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        seen = task.without_work() if self.hide_work else task
        topo, nodes, ca = build_features(snapshot, seen, candidates)
        teacher = _argmax(self.teacher.score(snapshot, task, candidates)) if self.teacher else 0
        action, logp = teacher, 0.0
        if self.mode != "teacher" and self.model is not None:
            g = single_graph(topo, nodes)
            with torch.inference_mode():
                h, pooled = self.model.embed(
                    g.vertex_x, g.edge_index, g.edge_attr, g.node_mask, g.batch, 1
                )
                k = len(candidates)
                logits = self.model.head(
                    h[torch.from_numpy(ca.index)],
                    pooled.expand(k, -1),
                    torch.from_numpy(ca.cand_x),
                    torch.from_numpy(ca.task_x).expand(k, -1),
                )
                logps = torch.log_softmax(logits, 0).numpy()
            if self.mode == "sample":
                p = np.exp(logps.astype(np.float64))
                action = int(self.rng.choice(k, p=p / p.sum()))
            else:
                action = int(np.argmax(logps))
            logp = float(logps[action])
        if len(candidates) > 1:
            self.records.append(
                Decision(
                    vertex_matrix(topo, nodes),
                    topo,
                    ca.index,
                    ca.cand_x,
                    ca.task_x,
                    task_id,
                    teacher,
                    action,
                    logp,
                )
            )
        return action
