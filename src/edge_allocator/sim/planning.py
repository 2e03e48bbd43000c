"""The planning oracle: the greedy oracle's cost plus what a placement takes from the
latency-bound work about to arrive.

The greedy oracle minimises each task's own completion (and the delay it causes the tasks
already on the node), so a task with no latency budget whose data sits at a busy site stays
there, next to its data, and the next camera frames, which may run only at that site, queue
behind it. A planner keeps room near hot sources for latency-bound work: it knows the tasks
of the next ``window_s`` seconds, and each latency-bound one spreads its work (CPU-seconds)
over the nodes its budget allows. A node's *pressure* is that work per core and second of
the window: the share of the node the coming bound work needs. A task without a budget
then costs its greedy cost plus ``weight * own time on the node * pressure`` per candidate:
the time it holds the node, times how much of the node bound work will want meanwhile. A
latency-bound task is placed as the greedy oracle places it: the room is kept for it.

Reference only, like the greedy oracle: it reads the future arrivals, which no scheduler
knows. It answers whether planning has room to beat greedy placement on a scenario, and by
how much (the simulator documentation reports it beside the greedy oracle).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.sim.engine import Simulator
from edge_allocator.sim.oracle import _UNREACHABLE, F64, I64, GreedyOraclePolicy


class PlanningOraclePolicy(GreedyOraclePolicy):
    """:class:`GreedyOraclePolicy` (marginal cost), minus ``weight * own time * pressure``
    for a task without a latency budget."""

    name = "planning-oracle"
    version = "2"

    def __init__(self, window_s: float = 30.0, weight: float = 1.0) -> None:
        super().__init__(marginal=True)
        if window_s <= 0:
            raise ValueError(f"window_s: must be > 0, got {window_s}")
        self.window_s = window_s
        self.weight = weight
        self._order: I64 = np.zeros(0, dtype=np.int64)
        self._arrival: F64 = np.zeros(0)
        self._entered = 0  # tasks (in arrival order) that entered the window
        self._left = 0  # ... and that left it (arrived)
        # the shares of the tasks in the window, in arrival order (they leave in that order)
        self._shares: deque[tuple[I64, float] | None] = deque()
        self._pressure: F64 = np.zeros(0)
        self._per_core: F64 = np.zeros(0)

    def bind(self, sim: Simulator) -> None:
        super().bind(sim)
        tk = sim.tasks
        self._order = np.argsort(tk.arrival_s, kind="stable")
        self._arrival = np.asarray(tk.arrival_s, dtype=np.float64)[self._order]
        self._entered = self._left = 0
        self._shares.clear()
        self._pressure = np.zeros(len(sim.cluster.nodes))
        cores = np.array([nd.cpu_allocatable_m / 1000.0 for nd in sim.cluster.nodes])
        self._per_core = 1.0 / (cores * self.window_s)

    def _share(self, tid: int) -> tuple[I64, float] | None:
        """The nodes a latency-bound task may run on, and its work per node (None: no
        budget, so it can go anywhere and needs no room kept)."""
        sim = self._bound()
        if np.isnan(sim.tasks.latency_budget_ms[tid]):
            return None
        nodes = np.asarray(sim.within_budget(tid), dtype=np.int64)
        if nodes.shape[0] == 0:
            return None
        return nodes, float(sim.tasks.work_cpu_s[tid]) / nodes.shape[0]

    def pressure(self, now: float) -> F64:
        """Per node: the latency-bound work arriving in ``(now, now + window_s]`` that may
        run there, per core and second of the window."""
        horizon = now + self.window_s
        n = self._arrival.shape[0]
        while self._entered < n and self._arrival[self._entered] <= horizon:
            share = self._share(int(self._order[self._entered]))
            if share is not None:
                self._pressure[share[0]] += share[1]
            self._shares.append(share)
            self._entered += 1
        while self._left < self._entered and self._arrival[self._left] <= now:
            share = self._shares.popleft()
            if share is not None:
                self._pressure[share[0]] -= share[1]
            self._left += 1
        out: F64 = np.maximum(self._pressure, 0.0) * self._per_core
        return out

    def score_indices(self, snapshot: ClusterSnapshot, task: TaskSpec, nodes: I64) -> F64:
        greedy = super().score_indices(snapshot, task, nodes)
        if task.latency_budget_ms is not None:
            return greedy
        reachable = greedy > _UNREACHABLE
        own = np.where(reachable, -greedy, 0.0)
        out: F64 = np.where(
            reachable, greedy - self.weight * own * self.pressure(snapshot.taken_at)[nodes], greedy
        )
        return out
