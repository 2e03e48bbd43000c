"""The simulator applies the production latency-budget rule exactly (issue 10, item 1).

kube-scheduler enforces the budget as a required node affinity and never relaxes it, so in the
simulator a task whose in-budget nodes are full waits for one of them, and a task no in-budget
node could ever hold never runs. The rule itself lives in :mod:`edge_allocator.cluster.budget`;
the parity test checks the simulator's filter against it node by node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from edge_allocator.cluster.budget import node_within_budget
from edge_allocator.cluster.features import BURST_FACTOR
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec
from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import Simulator, run_policy
from edge_allocator.sim.generate import Cluster, Tasks
from edge_allocator.sim.oracle import GreedyOraclePolicy
from edge_allocator.sim.scenario import Scenario, load_scenario, parse_scenario

# dynamics only: no background load, exact usage, no failures; nodes and tasks are hand-built
QUIET = parse_scenario(
    {
        "name": "hand-built",
        "family": "hand-built",
        "topology": {"nodes": 3, "node_classes": [{"name": "box", "cpu_m": 2000, "mem_mib": 4096}]},
        "workload": {
            "tasks": 1,
            "load": 0.1,
            "task_classes": [
                {
                    "name": "t",
                    "cpu_request_m": [100, 100],
                    "mem_request_mib": [64, 64],
                    "work_cpu_s": 1,
                }
            ],
        },
        "dynamics": {
            "background": {"mean": 0.0, "heterogeneity": 0.0, "volatility": 0.0},
            "metrics": {"interval_s": 0},
        },
    }
)


def _node(name: str, site: str, cpu_m: int = 2000) -> NodeState:
    return NodeState(name, site, "box", cpu_m, 4096, cpu_m, 4096)


def _line_cluster(cpu_a: int = 2000) -> Cluster:
    """Three sites in a line, one node each: a --5 ms-- b --5 ms-- c (intra-site 0.5 ms)."""
    sites = (Site("a", 0.5), Site("b", 0.5), Site("c", 0.5))
    links = (Link("a", "b", 5.0, 1000.0), Link("b", "c", 5.0, 1000.0))
    nodes = (_node("a0", "a", cpu_a), _node("b0", "b"), _node("c0", "c"))
    return Cluster(sites, links, nodes, (0, 1, 2))


def _tasks(rows: Sequence[tuple[float, int, float, int, float]]) -> Tasks:
    """(arrival s, cpu request m, work cpu-s, source node, budget ms or nan) per task."""
    n = len(rows)
    col = list(zip(*rows, strict=True))
    return Tasks(
        arrival_s=np.array(col[0], dtype=float),
        cpu_request_m=np.array(col[1], dtype=np.int64),
        mem_request_mib=np.full(n, 64, dtype=np.int64),
        work_cpu_s=np.array(col[2], dtype=float),
        input_mb=np.zeros(n),
        source_node=np.array(col[3], dtype=np.int64),
        latency_budget_ms=np.array(col[4], dtype=float),
        deadline_s=np.full(n, np.nan),
        task_class=np.zeros(n, dtype=np.int64),
    )


class Scripted:
    """Places each task on the node named for it when that node is a candidate (else the
    first candidate) and records every decision's time and candidates."""

    def __init__(self, want: dict[int, str]) -> None:
        self.want = want
        self.seen: dict[int, tuple[float, list[str]]] = {}

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        self.seen[task_id] = (snapshot.taken_at, list(candidates))
        want = self.want.get(task_id)
        return candidates.index(want) if want in candidates else 0


NAN = math.nan


def test_a_task_whose_only_in_budget_node_is_full_waits_for_it() -> None:
    """Task 1 may only run on a0 (1 ms from its data in site a; b0 and c0 are 5 and 10 ms
    away and idle). a0 is full with task 0, so task 1 waits and starts on a0 the moment
    task 0 ends, never off budget. The old simulator placed it on b0 at once."""
    tasks = _tasks(
        [
            (0.0, 1900, 3.8, 0, 1.0),  # fills a0 for 3.8 / min(1.9 * BURST, 2 cores) s
            (0.1, 1000, 1.0, 0, 1.0),  # budget 1 ms: a0 only
        ]
    )
    sim = Simulator(QUIET, 1, cluster=_line_cluster(), tasks=tasks)
    assert list(sim.within_budget(1)) == [0]
    chooser = Scripted({})
    res = sim.run(chooser)
    t0_end = 3.8 / min(1.9 * BURST_FACTOR, 2.0)
    start, cands = chooser.seen[1]
    assert cands == ["a0"]
    assert start == pytest.approx(t0_end)
    assert res.latency_ms[1] == 0.0  # on its data's own node
    assert res.completion_s[1] == pytest.approx(t0_end - 0.1 + 1.0 / min(BURST_FACTOR, 2.0))
    assert res.unplaceable == [] and not res.violated.any()


def test_waiting_tasks_do_not_block_tasks_that_fit_elsewhere() -> None:
    """Head-of-line: while 20 tasks wait for a0 (their budget), task 23 (no budget) waits
    for any room; when b0 frees up, task 23 must take it although the 20 are ahead in the
    queue, as kube-scheduler retries every unschedulable pod after a cluster event (the old
    queue gave up after 16 misses and left the rest untried)."""
    waiting = [(0.1 + 0.001 * k, 1000 - 10 * k, 0.1, 0, 1.0) for k in range(20)]
    tasks = _tasks(
        [
            (0.0, 1900, 20.0, 0, NAN),  # a0 busy for 10 s (2 cores: the limit is capped)
            (0.0, 1900, 2.0, 1, NAN),  # b0 busy for 1 s
            (0.0, 1900, 20.0, 2, NAN),  # c0 busy for 10 s
            *waiting,  # tasks 3..22, budget 1 ms: a0 only -> wait until 10 s
            (0.3, 1500, 1.0, 2, NAN),  # task 23, anywhere -> b0 at 1 s
        ]
    )
    sim = Simulator(QUIET, 1, cluster=_line_cluster(), tasks=tasks)
    chooser = Scripted({0: "a0", 1: "b0", 2: "c0"})
    res = sim.run(chooser)
    assert chooser.seen[23][0] == pytest.approx(1.0) and chooser.seen[23][1] == ["b0"]
    for tid in range(3, 23):
        start, cands = chooser.seen[tid]
        assert start >= 10.0 - 1e-9 and cands == ["a0"]
        assert res.latency_ms[tid] == 0.0
    assert res.summary()["unfinished"] == 0 and res.unplaceable == []


def test_a_task_no_in_budget_node_can_hold_is_never_placed() -> None:
    """a0 is too small for tasks 1 and 2. Task 1's budget (0.2 ms) is below every site's
    latency, even its own site's (0.5 ms), so only its data's node a0 is within it; task 2's
    budget (3 ms) allows site a only. Both are unplaceable: never run, counted, SLO
    violations, and the run still ends with everything else done."""
    tasks = _tasks(
        [
            (0.0, 500, 1.0, 0, 1.0),  # fits a0
            (0.1, 1500, 1.0, 0, 0.2),  # a0 too small; no site within 0.2 ms
            (0.2, 1500, 1.0, 0, 3.0),  # a0 too small; b0 (5 ms) is beyond the budget
            (0.3, 1500, 1.0, 0, NAN),  # no budget: b0 or c0
        ]
    )
    sim = Simulator(QUIET, 1, cluster=_line_cluster(cpu_a=1000), tasks=tasks)
    assert [sim.placeable(t) for t in range(4)] == [True, False, False, True]
    chooser = Scripted({})
    res = sim.run(chooser)
    assert res.unplaceable == [1, 2]
    assert set(chooser.seen) == {0, 3}  # never offered to the policy
    assert np.isnan(res.completion_s[[1, 2]]).all() and res.violated[[1, 2]].all()
    assert not np.isnan(res.completion_s[[0, 3]]).any()
    summary = res.summary()
    assert summary["unplaceable"] == 2 and summary["unfinished"] == 2
    assert summary["slo_violation_rate"] == 0.5
    # the contention-free bound agrees: no policy can run them either
    bounds = sim.contention_free_bounds_s()
    assert np.isnan(bounds[[1, 2]]).all() and not np.isnan(bounds[[0, 3]]).any()


def test_the_contention_free_bound_only_uses_in_budget_nodes() -> None:
    """Task 0 needs 1.5 cores: a0 (1 core) is slow, b0 (2 cores) fast but 5 ms away and
    beyond the 1 ms budget, so the bound is a0's time, not b0's."""
    tasks = _tasks([(0.0, 800, 3.0, 0, 1.0), (0.0, 800, 3.0, 0, NAN)])
    sim = Simulator(QUIET, 1, cluster=_line_cluster(cpu_a=1000), tasks=tasks)
    bounds = sim.contention_free_bounds_s()
    assert bounds[0] == pytest.approx(3.0 / 1.0)
    assert bounds[1] == pytest.approx(0.005 + 3.0 / min(0.8 * BURST_FACTOR, 2.0))


def _random_scenario(rng: np.random.Generator) -> tuple[Scenario, int]:
    base = load_scenario(["factory-floor", "smart-city", "rural", "campus"][rng.integers(4)])
    return base.resized(int(rng.integers(6, 60)), 80), int(rng.integers(1, 10_000))


def _budgets(sim: Simulator, rng: np.random.Generator) -> Tasks:
    """The same tasks with budgets drawn around the real site latencies, exact ties included."""
    lats = sorted({x for row in sim.site_lat for x in row if math.isfinite(x)})
    n = len(sim.tasks)
    pick = rng.choice(lats, size=n) * rng.choice([0.5, 1.0, 1.0, 1.5], size=n)
    budget = np.where(rng.random(n) < 0.15, np.nan, pick)
    tk = sim.tasks
    return Tasks(
        tk.arrival_s,
        tk.cpu_request_m,
        tk.mem_request_mib,
        tk.work_cpu_s,
        tk.input_mb,
        tk.source_node,
        budget,
        tk.deadline_s,
        tk.task_class,
    )


@pytest.mark.parametrize("case", range(12))
def test_sim_filter_matches_the_budget_rule_node_by_node(case: int) -> None:
    """For random clusters, loads and tasks: the simulator's in-budget set and candidate
    list are exactly the nodes ``cluster.budget.node_within_budget`` allows (and that are
    ready and have room)."""
    rng = np.random.default_rng(case)
    sc, seed = _random_scenario(rng)
    probe = Simulator(sc, seed)
    sim = Simulator(sc, seed, cluster=probe.cluster, tasks=_budgets(probe, rng))
    sim._reset()
    n = len(sim.cluster.nodes)
    for i in range(n):  # a random load state
        sim.cpu_req[i] = int(rng.integers(0, sim.cpu_alloc[i] + 1))
        sim.mem_req[i] = int(rng.integers(0, sim.mem_alloc[i] + 1))
        sim.ready[i] = bool(rng.random() > 0.1)
    names = [nd.name for nd in sim.cluster.nodes]
    checked = 0
    for tid in range(len(sim.tasks)):
        spec = sim.task_spec(tid)
        rule = [node_within_budget(sim.base, spec, name) for name in names]
        assert [i in set(sim.within_budget(tid)) for i in range(n)] == rule
        cpu, mem = spec.cpu_request_m, spec.mem_request_mib
        fits = [
            sim.ready[i]
            and sim.cpu_req[i] + cpu <= sim.cpu_alloc[i]
            and sim.mem_req[i] + mem <= sim.mem_alloc[i]
            for i in range(n)
        ]
        assert sim.candidates(tid) == [i for i in range(n) if rule[i] and fits[i]]
        checked += sum(rule)
    assert checked > 0


@pytest.mark.parametrize("policy", ["kube-default", "latency", "random", "greedy-oracle"])
def test_no_policy_ever_runs_a_task_beyond_its_budget(policy: str) -> None:
    """Whole runs, tight budgets, failures: every placed task sits within its budget, and
    every task either finishes or is unplaceable (no task is stuck in the queue)."""
    sc = load_scenario("factory-floor").resized(30, 400)
    data: dict[str, Any] = sc.model_dump()
    data["dynamics"]["failures"] = {"mtbf_s": 60.0, "mttr_s": 5.0}
    data["workload"]["load"] = 0.9
    sc = parse_scenario(data)
    pol = GreedyOraclePolicy() if policy == "greedy-oracle" else get_policy(policy)
    res = run_policy(sc, 3, pol)
    sim = Simulator(sc, 3)
    b = sim.tasks.latency_budget_ms
    placed = ~np.isnan(res.latency_ms)
    assert np.all(np.isnan(b[placed]) | (res.latency_ms[placed] <= b[placed]))
    assert np.isnan(res.completion_s).sum() == len(res.unplaceable)
    for tid in res.unplaceable:
        assert not sim.placeable(tid)
