"""The greedy oracle's vectorised scores against the per-candidate reference.

The reference below is the oracle as it was before it was vectorised: a loop over the
candidates, two processor-sharing runs per candidate. The fast oracle computes the scores in
closed form and replays the reference's operations for the candidates near the best, so:

* every score is the reference's to a relative 1e-9 (in fact to rounding);
* the best score, and every score near it, is the reference's bit for bit, so the first
  best is the same candidate (a busy node that does not contend scores ``work / limit`` give
  or take a rounding: near-ties are broken by roundings, and they are common);
* whole simulator runs make the same decisions and give the same results.

Checked on random node states (0 to 9 running tasks, finished and nearly finished ones,
twins, limits that fit and that do not) and at every decision of whole runs.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.sim import oracle
from edge_allocator.sim.engine import (
    CandidateNames,
    PolicyChooser,
    SimResult,
    Simulator,
    first_best,
    simulator_for,
)
from edge_allocator.sim.oracle import GreedyOraclePolicy, finish_time_s, marginal_cost_s
from edge_allocator.sim.scenario import Scenario, load_scenario, parse_scenario

# -- the reference: the per-candidate oracle, as it was --------------------------------------


def _ref_ps_finish_times(tasks: list[tuple[float, float]], avail: float) -> list[float]:
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


def _ref_marginal_cost_s(
    work: float, demand: float, others: list[tuple[float, float]], avail: float
) -> float:
    before = _ref_ps_finish_times(others, avail)
    after = _ref_ps_finish_times([*others, (work, demand)], avail)
    return after[-1] + sum(a - b for a, b in zip(after, before, strict=False))


def _ref_finish_time_s(
    work: float, demand: float, others: list[tuple[float, float]], avail: float
) -> float:
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


class ReferenceOracle:
    """The greedy oracle before vectorisation (no ``score_indices``: choosers call ``score``)."""

    name = "greedy-oracle-reference"
    version = "1"

    def __init__(self, marginal: bool = True) -> None:
        self.sim: Simulator | None = None
        self.marginal = marginal

    def bind(self, sim: Simulator) -> None:
        self.sim = sim

    def score(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str]
    ) -> list[float]:
        sim = self.sim
        assert sim is not None
        work = task.work_cpu_s if task.work_cpu_s is not None else 1.0
        out: list[float] = []
        for c in candidates:
            i = snapshot.index_of(c)
            node = snapshot.nodes[i]
            cores = sim.cores[i]
            node_work = work / sim.speed[i]
            demand = min(task.cpu_request_m / 1000.0 * BURST_FACTOR, cores)
            avail = max(cores - sim.bg[i], 0.05 * cores)
            dt = snapshot.taken_at - sim.last_t[i]
            f = sim.factor[i] * max(dt, 0.0)
            others = [(v[0] - v[1] * f, v[1]) for v in sim.running[i].values()]
            if self.marginal:
                exec_s = _ref_marginal_cost_s(node_work, demand, others, avail)
            else:
                exec_s = _ref_finish_time_s(node_work, demand, others, avail)
            net = snapshot.network_time_ms(task, node) / 1000.0
            out.append(-(net + exec_s) if math.isfinite(exec_s) else -1e12)
        return out


# -- random node states ------------------------------------------------------------------------


def _work(rng: random.Random) -> float:
    """Remaining work: mostly ordinary, sometimes finished, nearly finished or tiny."""
    u = rng.random()
    if u < 0.05:
        return 0.0
    if u < 0.1:
        return rng.choice([1e-10, 1e-9, 5e-9, 2e-8, 1e-7])
    if u < 0.15:
        return -rng.uniform(0.0, 1e-9)  # overshot by a rounding
    return rng.uniform(0.01, 8.0)


def _randomise(sim: Simulator, rng: random.Random) -> tuple[int, int]:
    """A random state for every node; returns how many busy nodes (with the newcomer's
    largest limit) fit in their available cores and how many do not."""
    fits = over = 0
    tid = 0
    for i in range(len(sim.cores)):
        cores = rng.choice([0.5, 1.0, 2.0, 4.0, 8.0, 16.0])
        sim.cores[i] = cores
        sim.bg[i] = rng.choice([0.0, rng.uniform(0.0, 1.0), 0.99]) * cores
        sim.speed[i] = rng.choice([1.0, rng.uniform(0.5, 2.0)])
        sim.factor[i] = rng.choice([1.0, rng.uniform(0.05, 1.0)])
        sim.last_t[i] = rng.choice([0.0, -rng.uniform(0.0, 3.0), rng.uniform(0.0, 1.0)])
        k = rng.choice([0, 0, 0, 1, 1, 2, 3, rng.randint(4, 9)])
        run: dict[int, list[float]] = {}
        for _ in range(k):
            if run and rng.random() < 0.15:  # a twin: started together, same size
                run[tid] = list(run[next(iter(run))])
            else:
                run[tid] = [_work(rng), min(rng.choice([0.15, 0.3, 0.75, 1.5, 3.0]), cores)]
            tid += 1
        sim.running[i] = run
        if run:
            avail = max(cores - sim.bg[i], 0.05 * cores)
            total = sum(v[1] for v in run.values()) + 1.5
            fits += total <= avail
            over += total > avail
    return fits, over


def _check(got: Sequence[float] | np.ndarray, want: Sequence[float]) -> int:
    """``got`` is ``want`` to 1e-9, and bit for bit near the best; returns how many
    candidates were that near (ties the reference broke by rounding)."""
    g, w = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(g, w, rtol=1e-9, atol=0.0)
    assert first_best(g) == first_best(w)
    best = w.max()
    near = w >= best - 1e-7 * (1.0 + abs(best))
    np.testing.assert_array_equal(g[near], w[near])
    return int(near.sum())


@pytest.mark.parametrize("one_by_one", [True, False])
@pytest.mark.parametrize("marginal", [True, False])
def test_random_states_score_as_the_reference(
    marginal: bool, one_by_one: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not one_by_one:  # replay even a single node with all of them together
        monkeypatch.setattr(oracle, "_ONE_BY_ONE", 0)
    sim = Simulator(load_scenario("campus").resized(40, 50), 1)
    sim._reset()
    fast, ref = GreedyOraclePolicy(marginal), ReferenceOracle(marginal)
    fast.bind(sim)
    ref.bind(sim)
    snap = sim.snapshot(0.0)
    rng = random.Random(7)
    names = [nd.name for nd in snap.nodes]
    fits = over = compared = ties = 0
    for _ in range(150):
        a, b = _randomise(sim, rng)
        fits, over = fits + a, over + b
        base = sim.task_spec(rng.randrange(len(sim.tasks)))
        task = dataclasses.replace(
            base,
            cpu_request_m=rng.choice([100, 250, 500, 1000, 4000]),
            work_cpu_s=rng.choice([None, 0.0, 1e-10, rng.uniform(0.01, 10.0)]),
        )
        cands = rng.sample(names, rng.randint(1, len(names)))  # any order, by name
        want = ref.score(snap, task, cands)
        got = fast.score(snap, task, cands)
        if not marginal:  # no closed form: every score is replayed
            assert got == want
        ties += _check(got, want) > 1
        nodes = np.array(sorted(snap.index_of(c) for c in cands), dtype=np.int64)
        want = ref.score(snap, task, CandidateNames(nodes, np.array(names, dtype=object)))
        _check(fast.score_indices(snap, task, nodes), want)
        compared += len(cands)
    assert fits > 100 and over > 100 and compared > 2000 and ties > 10


def _bound_pair() -> tuple[Simulator, GreedyOraclePolicy, ReferenceOracle]:
    """A small campus simulator at its start, with both oracles bound to it."""
    sim = Simulator(load_scenario("campus").resized(40, 50), 1)
    sim._reset()
    fast, ref = GreedyOraclePolicy(), ReferenceOracle()
    fast.bind(sim)
    ref.bind(sim)
    return sim, fast, ref


def test_near_ties_are_broken_as_the_reference_breaks_them() -> None:
    """Nodes alike but for what runs on them, none contending: every score is
    ``-(net + work / limit)`` give or take a rounding, and the first best is decided by
    the roundings. The fast scores must be the reference's bit for bit."""
    sim, fast, ref = _bound_pair()
    snap = sim.snapshot(0.0)
    site = snap.nodes[0].site
    same = [i for i, nd in enumerate(snap.nodes) if nd.site == site]
    task = dataclasses.replace(sim.task_spec(0), data_source_node=None, data_source_site=site)
    task = dataclasses.replace(task, cpu_request_m=250, work_cpu_s=0.5)
    rng = random.Random(11)
    distinct = 0
    for _ in range(200):
        for i in same:
            sim.cores[i], sim.bg[i], sim.speed[i], sim.factor[i] = 16.0, 0.0, 1.0, 1.0
            sim.last_t[i] = -rng.uniform(0.0, 2.0)
            k = rng.choice([0, 1, 1, 2, 3])
            sim.running[i] = {j: [rng.uniform(0.01, 3.0), 0.375] for j in range(k)}
        nodes = np.array(same, dtype=np.int64)
        want = ref.score(snap, task, [snap.nodes[i].name for i in same])
        np.testing.assert_array_equal(fast.score_indices(snap, task, nodes), want)
        distinct += len(set(want)) > 1
    assert distinct > 50  # the roundings do differ


def test_finishes_closer_than_the_threshold_end_as_in_the_reference() -> None:
    """Two tasks due to finish within 1e-9 CPU-s of each other: the reference ends the
    later one with the earlier (its remaining work counts as done), which a closed form
    does not; on a crowded node that moves the score by more than 1e-9. Such nodes are
    replayed, even far from the best."""
    sim, fast, ref = _bound_pair()
    snap = sim.snapshot(0.0)
    task = dataclasses.replace(sim.task_spec(0), cpu_request_m=250, work_cpu_s=0.5)
    rng = random.Random(5)
    nodes = np.arange(len(snap.nodes), dtype=np.int64)
    for _ in range(20):
        for i in nodes.tolist():
            sim.cores[i], sim.speed[i], sim.factor[i], sim.last_t[i] = 4.0, 1.0, 1.0, 0.0
            sim.bg[i] = 0.0
            sim.running[i] = {}
            if i % 4:  # crowded: f about 0.1
                sim.bg[i] = 3.8
                w, d = rng.uniform(0.5, 2.0), 1.5
                late = rng.uniform(2e-10, 9e-10)  # B's work left when A finishes
                sim.running[i] = {0: [w, d], 1: [0.15 * w / d + late, 0.15], 2: [9.0, 0.3]}
        want = ref.score(snap, task, [nd.name for nd in snap.nodes])
        _check(fast.score_indices(snap, task, nodes), want)


def test_public_functions_unchanged() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        others = [(_work(rng), rng.uniform(0.1, 3.0)) for _ in range(rng.randint(0, 8))]
        work, demand, avail = rng.uniform(0.0, 5.0), rng.uniform(0.1, 3.0), rng.uniform(0.1, 8)
        assert marginal_cost_s(work, demand, others, avail) == _ref_marginal_cost_s(
            work, demand, others, avail
        )
        assert finish_time_s(work, demand, others, avail) == _ref_finish_time_s(
            work, demand, others, avail
        )


# -- whole simulator runs -------------------------------------------------------------------


def _scenarios() -> list[Scenario]:
    d: dict[str, Any] = load_scenario("bursty-mixed").resized(30, 300).model_dump()
    d["dynamics"]["failures"] = {"mtbf_s": 200, "mttr_s": 20}
    return [
        load_scenario("campus").resized(40, 400),
        load_scenario("campus").resized(40, 400, load_scale=1.8),  # nodes contend
        parse_scenario(d),
    ]


class CheckingChooser:
    """Places by the fast oracle and checks every decision's scores against the reference."""

    def __init__(self, fast: GreedyOraclePolicy, ref: ReferenceOracle) -> None:
        self.fast, self.ref, self.checked, self.ties = fast, ref, 0, 0

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        assert isinstance(candidates, CandidateNames)
        got = self.fast.score_indices(snapshot, task, candidates.nodes)
        self.ties += _check(got, self.ref.score(snapshot, task, candidates)) > 1
        self.checked += 1
        return first_best(got)


def _same_results(a: SimResult, b: SimResult) -> None:
    assert a.summary() == pytest.approx(b.summary(), rel=0, abs=0, nan_ok=True)
    assert a.decision_tasks == b.decision_tasks
    np.testing.assert_array_equal(a.completion_s, b.completion_s)
    np.testing.assert_array_equal(a.latency_ms, b.latency_ms)


@pytest.mark.parametrize("one_by_one", [True, False])
@pytest.mark.parametrize("marginal", [True, False])
@pytest.mark.parametrize("k", [0, 1, 2])
def test_whole_runs_decide_as_the_reference(
    marginal: bool, k: int, one_by_one: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not one_by_one:
        monkeypatch.setattr(oracle, "_ONE_BY_ONE", 0)
    sc = _scenarios()[k]
    ref = ReferenceOracle(marginal)
    want = simulator_for(ref, sc, 2).run(PolicyChooser(ref))
    fast = GreedyOraclePolicy(marginal)
    _same_results(simulator_for(fast, sc, 2).run(PolicyChooser(fast)), want)
    # and every decision's scores on the way
    sim = Simulator(sc, 2)
    fast.bind(sim)
    ref.bind(sim)
    chooser = CheckingChooser(fast, ref)
    _same_results(sim.run(chooser), want)
    assert chooser.checked == want.decisions > 100
    assert chooser.ties > 10
