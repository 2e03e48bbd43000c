"""The greedy oracle: minimises each task's completion time using full simulator state.

It knows what no deployable scheduler knows (every running task's remaining work, exact
background load), so it is a reference point for evaluation and an imitation teacher for
training, never a policy the extender can serve. The registry lists it as reference only.

:func:`finish_time_s` and :func:`marginal_cost_s` are the reference: a processor-sharing
run per candidate, phase by phase, in plain Python. :meth:`GreedyOraclePolicy.score_indices`
gives the same scores for all candidates at once, fast enough for a thousand nodes:

* A node with nothing running is one phase, computed with the reference's operations.
* Elsewhere every alive task progresses at ``limit * f`` with one factor ``f`` shared on
  the node, so ``remaining / limit`` falls at one rate for all: tasks finish in ascending
  order of it, and the finish times follow from a sort and suffix sums of the limits, for
  all busy nodes together (:func:`_ps_closed`).
* That agrees with the reference to rounding, but the argmax breaks near-ties by rounding
  (a busy node that does not contend scores ``work / limit`` give or take one, as an idle
  node of its kind scores it exactly), so the candidates that could be the best are
  replayed with the reference's very operations (bit for bit), and so are the nodes where
  the reference's 1e-9 thresholds end a task early (two finishes closer than that). The
  first best is then the reference's, and a run makes the same decisions.
  ``tests/unit/test_oracle_fast.py`` checks both against a copy of the per-candidate code.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from operator import itemgetter

import numpy as np
import numpy.typing as npt

from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.policy.baselines.columns import SnapshotView, network_time_ms
from edge_allocator.sim.engine import Simulator

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

_TINY = 1e-9  # remaining work (CPU-s) at or below which a task counts as finished
_UNREACHABLE = -1e12  # the score of a candidate whose execution time is not finite
# Finishes closer than this (CPU-s, as the later task's work) may be merged by _TINY: such
# nodes are replayed exactly. Ten times _TINY, far above the reference's roundings.
_CLOSE = 1e-8
# Scores within this (relative, of 1 + |best|) of the best are replayed exactly: far more
# than the closed form's rounding (~1e-15 of the node's longest finish, times its tasks).
_NEAR = 1e-6
_ONE_BY_ONE = 8  # replay up to this many nodes one by one with the Python reference


def _ps_finish_times(tasks: list[tuple[float, float]], avail: float) -> list[float]:
    """Finish time of each (remaining work, limit) task under processor sharing."""
    rem = [w for w, _ in tasks]
    dem = [d for _, d in tasks]
    out = [0.0] * len(tasks)
    alive = [i for i in range(len(tasks)) if rem[i] > _TINY]
    t = 0.0
    while alive:
        total = sum(dem[i] for i in alive)
        f = 1.0 if total <= avail else avail / total
        step = min(rem[i] / (dem[i] * f) for i in alive)
        t += step
        nxt = []
        for i in alive:
            rem[i] -= dem[i] * f * step
            if rem[i] <= _TINY:
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
        tasks = [task for task in tasks if task[0] > _TINY or task is mine]


# -- many nodes at once


def _ps_closed(run: I64, rem: F64, dem: F64, avail: F64) -> tuple[F64, Bools]:
    """Per run (``run``: each task's, ``avail``: each run's cores): the sum of the tasks'
    finish times in closed form, and whether two finishes are so close that the
    reference's threshold could merge them.

    Tasks finish in ascending ``u = remaining / limit``. The phase that ends with a task's
    finish advances ``u`` from the next smaller one (or 0) at ``f = min(1, avail / limits
    of the tasks with this u or more)``, so it lasts ``gap / f``, and those tasks all wait
    through it."""
    alive = rem > _TINY
    run, dem = run[alive], dem[alive]
    u = rem[alive] / dem
    order = np.lexsort((-u, run))  # by run, u descending
    run, u, dem = run[order], u[order], dem[order]
    count = np.bincount(run, minlength=avail.shape[0])
    first = (np.cumsum(count) - count)[run]  # where each task's run starts
    k = np.arange(run.shape[0])
    last = k - first == count[run] - 1  # the run's smallest u
    # limits summed from the run's first task to each (the sums over [first, k + 1))
    bounds = np.empty(2 * k.shape[0], dtype=np.int64)
    bounds[0::2], bounds[1::2] = first, k + 1
    limits = np.add.reduceat(np.append(dem, 0.0), bounds)[0::2]
    below = np.append(u[1:], 0.0)
    below[last] = 0.0
    gap = u - below
    slow = np.maximum(limits / avail[run], 1.0)  # 1 / f
    waits = gap * slow * (k - first + 1)
    total = np.bincount(run, weights=waits, minlength=count.shape[0]).astype(np.float64)
    close = ~last & (gap > 0.0) & (gap * dem <= _CLOSE)
    return total, np.bincount(run[close], minlength=count.shape[0]) > 0


def _seq_sum(d: F64) -> F64:
    """Each column's sum, added top to bottom like Python's ``sum`` (``numpy.sum`` may add
    pairwise, which rounds differently; ``cumsum`` is sequential but slow per element, so
    wide arrays add row by row)."""
    if d.shape[1] < 256:
        out: F64 = d.cumsum(axis=0)[-1]
        return out
    total: F64 = d[0].copy()
    for row in d[1:]:
        total += row
    return total


def _ps_rows(rem: F64, dem: F64, avail: F64) -> F64:
    """:func:`_ps_finish_times` for each column (a row per task in the reference's
    order, padded with finished tasks), the same floats: the reference's operations in its
    order (sums top to bottom), all columns one phase per loop.

    A finished task's work turns inf and its limit 0.0: it then adds 0.0 to the sum of
    limits (which changes no float), takes inf to finish and never finishes again, with no
    masks to carry. A column with nothing left steps by inf (nan after that), harmlessly."""
    out = np.zeros(rem.shape)
    done = rem <= _TINY
    r = np.where(done, np.inf, rem)
    d = np.where(done, 0.0, dem)
    left = rem.size - int(np.count_nonzero(done))
    a, t, o, cols = avail, np.zeros(rem.shape[1]), out, np.arange(rem.shape[1])
    phase = 0
    while left:
        df = d * np.minimum(a / _seq_sum(d), 1.0)  # f is 1 when the limits fit, as ``<=``
        step = (r / df).min(axis=0)
        t = t + step
        r = r - df * step
        fin = r <= _TINY
        r[fin] = np.inf
        d[fin] = 0.0
        o = np.where(fin, t, o)
        finished = int(np.count_nonzero(fin))
        if not finished and not (step < np.inf).any():
            break  # nothing can finish (a limit of 0): the reference would divide by 0
        left -= finished
        phase += 1
        if phase in (2, 4, 8):  # most nodes run a task or two: drop the finished columns
            out[:, cols] = o
            live = d.any(axis=0)
            cols, r, d, a, t, o = cols[live], r[:, live], d[:, live], a[live], t[live], o[:, live]
    out[:, cols] = o
    return out


def _finish_rows(rem: F64, dem: F64, avail: F64) -> F64:
    """:func:`finish_time_s` for each column, the new task in the last row, the same
    floats (a dropped task as in :func:`_ps_rows`)."""
    res = np.zeros(rem.shape[1])
    gone = rem <= 0.0
    gone[-1] = False
    r = np.where(gone, np.inf, rem)
    d = np.where(gone, 0.0, dem)
    a, t, cols = avail, np.zeros(rem.shape[1]), np.arange(rem.shape[1])
    while cols.shape[0]:
        df = d * np.minimum(a / _seq_sum(d), 1.0)
        q = r / df
        step = q.min(axis=0)
        mine = q[-1]
        done = ~(mine > step + 1e-12)  # (a nan ends the column too)
        res[cols[done]] = t[done] + mine[done]
        t = t + step
        r = r - df * step
        gone = r <= _TINY
        gone[-1] = False
        r[gone] = np.inf
        d[gone] = 0.0
        keep = ~done
        cols, r, d, a, t = cols[keep], r[:, keep], d[:, keep], a[keep], t[keep]
    return res


def _columns(counts: I64, rem: F64, dem: F64, work: F64, demand: F64) -> tuple[F64, F64]:
    """Nodes' tasks (``counts`` each, node after node) as columns, a row per task in the
    node's order, padded with finished tasks (work 0, limit 1), the new task last."""
    n = counts.shape[0]
    col = np.repeat(np.arange(n), counts)
    row = np.arange(col.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    width = int(counts.max()) + 1
    r, d = np.zeros((width, n)), np.ones((width, n))
    r[row, col], d[row, col] = rem, dem
    r[-1], d[-1] = work, demand
    return r, d


def _marginal_exact(r: F64, d: F64, avail: F64) -> F64:
    """:func:`marginal_cost_s` per column (the new task in the last row), the same floats."""
    n = r.shape[1]
    without = r.copy()
    without[-1] = 0.0  # finished: the node as it is
    out = _ps_rows(np.hstack([without, r]), np.hstack([d, d]), np.concatenate([avail, avail]))
    res: F64 = out[-1, n:] + _seq_sum(out[:-1, n:] - out[:-1, :n])
    return res


def _scores(net: F64, exec_s: F64) -> F64:
    """The reference's score from network and execution times."""
    out: F64 = np.where(np.isfinite(exec_s), -(net + exec_s), _UNREACHABLE)
    return out


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

    def _bound(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("greedy-oracle reads simulator state: call bind(simulator) first")
        return self._sim

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        """Scores for candidate names (the simulator's candidates carry their indices)."""
        self._bound()
        nodes = getattr(candidates, "nodes", None)
        if not isinstance(nodes, np.ndarray):
            nodes = np.array([snapshot.index_of(c) for c in candidates], dtype=np.int64)
        out: list[float] = self.score_indices(snapshot, task, nodes).tolist()
        return out

    def score_indices(self, snapshot: ClusterSnapshot, task: TaskSpec, nodes: I64) -> F64:
        """:meth:`score` for node indices, all candidates at once (see the module: the
        reference's scores to rounding, its first best exactly)."""
        sim = self._bound()
        work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
        cores = np.array(sim.cores)[nodes]
        node_work = work / np.array(sim.speed)[nodes]  # a faster CPU needs fewer seconds
        demand = np.minimum(task.cpu_request_m / 1000.0 * BURST_FACTOR, cores)
        avail = np.maximum(cores - np.array(sim.bg)[nodes], 0.05 * cores)
        net = network_time_ms(SnapshotView(snapshot), task, nodes) / 1000.0
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # nothing running: the reference's one phase, the same floats
            f = np.where(demand <= avail, 1.0, avail / demand)
            exec_s = node_work / (demand * f)
            if self.marginal:
                exec_s[node_work <= _TINY] = 0.0
            n_running = map(len, map(sim.running.__getitem__, nodes.tolist()))
            busy = np.flatnonzero(np.fromiter(n_running, np.int64, nodes.shape[0]))
            if busy.shape[0] == 0:
                return _scores(net, exec_s)
            idle = np.ones(nodes.shape[0], dtype=bool)
            idle[busy] = False
            best = float(_scores(net[idle], exec_s[idle]).max(initial=-np.inf))
            counts, rem, dem = self._tasks(sim, snapshot.taken_at, nodes[busy])
            args = (counts, rem, dem, node_work[busy], demand[busy], avail[busy])
            exec_s[busy] = self._busy(*args, net[busy], best)
            return _scores(net, exec_s)

    def _tasks(self, sim: Simulator, now: float, nodes: I64) -> tuple[I64, F64, F64]:
        """How many tasks run on each node, and their remaining work and limits, node after
        node. The simulator advances lazily: the remaining work is as of ``now``."""
        node_list = nodes.tolist()
        runs = list(map(sim.running.__getitem__, node_list))
        counts = np.fromiter(map(len, runs), np.int64, len(runs))
        tasks = list(chain.from_iterable(map(dict.values, runs)))  # [remaining, limit] each
        dem = np.fromiter(map(itemgetter(1), tasks), np.float64, len(tasks))
        last_t = np.fromiter(map(sim.last_t.__getitem__, node_list), np.float64, len(runs))
        factor = np.fromiter(map(sim.factor.__getitem__, node_list), np.float64, len(runs))
        f = factor * np.maximum(now - last_t, 0.0)
        rem = np.fromiter(map(itemgetter(0), tasks), np.float64, len(tasks))
        rem -= dem * np.repeat(f, counts)
        return counts, rem, dem

    def _busy(
        self,
        counts: I64,
        rem: F64,
        dem: F64,
        work: F64,
        demand: F64,
        avail: F64,
        net: F64,
        best: float,
    ) -> F64:
        """Execution times on busy nodes: in closed form, then replayed exactly where the
        score is within reach of the best (``best``: the idle nodes') or where the
        reference's thresholds could bite. (``marginal=False``: all replayed.)"""
        if not self.marginal:
            return _finish_rows(*_columns(counts, rem, dem, work, demand), avail)
        n = counts.shape[0]
        node = np.repeat(np.arange(n), counts)
        # runs 0..n-1: the nodes as they are; n..2n-1: with the new task
        total, close = _ps_closed(
            np.concatenate([node, node + n, np.arange(n, 2 * n)]),
            np.concatenate([rem, rem, work]),
            np.concatenate([dem, dem, demand]),
            np.concatenate([avail, avail]),
        )
        exec_s = total[n:] - total[:n]
        close = close[:n] | close[n:]
        score = _scores(net, exec_s)
        best = max(best, float(score[~close].max(initial=-np.inf)))
        again = np.flatnonzero(close | (score >= best - _NEAR * (1.0 + abs(best))))
        if again.shape[0] > _ONE_BY_ONE:  # all together, the reference's operations
            pick = np.zeros(n, dtype=bool)
            pick[again] = True
            on = np.repeat(pick, counts)  # their tasks
            cols = _columns(counts[again], rem[on], dem[on], work[again], demand[again])
            exec_s[again] = _marginal_exact(*cols, avail[again])
        else:  # a few: the reference itself is quicker than a phase of numpy calls
            end = np.cumsum(counts).tolist()
            for j in again.tolist():
                a, b = end[j] - int(counts[j]), end[j]
                others = list(zip(rem[a:b].tolist(), dem[a:b].tolist(), strict=True))
                exec_s[j] = marginal_cost_s(
                    work[j].item(), demand[j].item(), others, avail[j].item()
                )
        return exec_s
