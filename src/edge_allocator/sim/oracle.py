"""The greedy oracle: minimises each task's completion time using full simulator state.

It knows what no deployable scheduler knows (every running task's remaining work, exact
background load), so it is a reference point for evaluation and an imitation teacher for
training, never a policy the extender can serve. The registry lists it as reference only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.sim.engine import Simulator


def _ps_finish_times(tasks: list[tuple[float, float]], avail: float) -> list[float]:
    """Finish time of each (remaining work, limit) task under processor sharing."""
    rem = [w for w, _ in tasks]
    dem = [d for _, d in tasks]
    out = [0.0] * len(tasks)
    alive = [i for i in range(len(tasks)) if rem[i] > 1e-9]
    t = 0.0
    while alive:
        total = sum(dem[i] for i in alive)
        f = 1.0 if total <= avail else avail / total
        step = min(rem[i] / (dem[i] * f) for i in alive)
        t += step
        nxt = []
        for i in alive:
            rem[i] -= dem[i] * f * step
            if rem[i] <= 1e-9:
                out[i] = t
            else:
                nxt.append(i)
        alive = nxt
    return out


def marginal_cost_s(
    work: float, demand: float, others: list[tuple[float, float]], avail: float
) -> float:
    """The new task's finish time plus the delay it causes the tasks already there."""
    before = _ps_finish_times(others, avail)
    after = _ps_finish_times([*others, (work, demand)], avail)
    return after[-1] + sum(a - b for a, b in zip(after, before, strict=False))


def finish_time_s(
    work: float, demand: float, others: list[tuple[float, float]], avail: float
) -> float:
    """When a new task (``work`` CPU-s, limit ``demand`` cores) finishes under processor
    sharing with ``others`` ((remaining work, limit) pairs) on ``avail`` cores, assuming no
    further arrivals."""
    tasks = [[w, d] for w, d in others if w > 0]
    mine = [work, demand]
    tasks.append(mine)
    t = 0.0
    while True:
        total = sum(d for _, d in tasks)
        f = 1.0 if total <= avail else avail / total
        step = min(w / (d * f) for w, d in tasks)
        if mine[0] / (mine[1] * f) <= step + 1e-12:
            return t + mine[0] / (mine[1] * f)
        t += step
        for task in tasks:
            task[0] -= task[1] * f * step
        tasks = [task for task in tasks if task[0] > 1e-9 or task is mine]


class GreedyOraclePolicy:
    """Score ``-(network_s + exact processor-sharing finish time)`` per candidate.

    With ``marginal=True`` the delay the task inflicts on the tasks already on the node is
    added, so the greedy minimises the increase of total completion time instead.
    """

    name = "greedy-oracle"
    version = "1"

    def __init__(self, marginal: bool = True) -> None:
        self._sim: Simulator | None = None
        self.marginal = marginal

    def bind(self, sim: Simulator) -> None:
        """Attach to the simulator whose state the scores read."""
        self._sim = sim

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        sim = self._sim
        if sim is None:
            raise RuntimeError("greedy-oracle reads simulator state: call bind(simulator) first")
        work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
        out: list[float] = []
        for c in candidates:
            i = snapshot.index_of(c)
            node = snapshot.nodes[i]
            cores = sim.cores[i]
            node_work = work / sim.speed[i]  # a faster CPU needs fewer seconds for it
            demand = min(task.cpu_request_m / 1000.0 * BURST_FACTOR, cores)
            avail = max(cores - sim.bg[i], 0.05 * cores)
            # remaining work as of now (the simulator advances lazily)
            dt = snapshot.taken_at - sim.last_t[i]
            f = sim.factor[i] * max(dt, 0.0)
            others = [(v[0] - v[1] * f, v[1]) for v in sim.running[i].values()]
            if self.marginal:
                exec_s = marginal_cost_s(node_work, demand, others, avail)
            else:
                exec_s = finish_time_s(node_work, demand, others, avail)
            net = snapshot.network_time_ms(task, node) / 1000.0
            out.append(-(net + exec_s) if math.isfinite(exec_s) else -1e12)
        return out
