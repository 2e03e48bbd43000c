"""The planning oracle: its pressure is the coming latency-bound work per core, summed task by
task; at weight 0 it is the greedy oracle; the penalty moves a task without a budget off the
nodes bound work will need, and a bound task is placed as the greedy oracle places it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.sim.engine import PolicyChooser, Simulator
from edge_allocator.sim.oracle import F64, I64, GreedyOraclePolicy
from edge_allocator.sim.planning import PlanningOraclePolicy
from edge_allocator.sim.scenario import load_scenario


def _pressure_by_task(sim: Simulator, now: float, window: float) -> np.ndarray:
    """The definition, one task at a time."""
    tk = sim.tasks
    out = np.zeros(len(sim.cluster.nodes))
    for tid in range(len(tk)):
        if not now < tk.arrival_s[tid] <= now + window:
            continue
        if math.isnan(tk.latency_budget_ms[tid]):
            continue
        nodes = list(sim.within_budget(tid))
        for n in nodes:
            cores = sim.cluster.nodes[n].cpu_allocatable_m / 1000.0
            out[n] += tk.work_cpu_s[tid] / len(nodes) / (cores * window)
    return out


def test_pressure_is_the_coming_bound_work_per_core() -> None:
    sim = Simulator(load_scenario("smart-city").resized(30, 400), 2)
    planner = PlanningOraclePolicy(window_s=5.0)
    planner.bind(sim)
    arrivals = np.sort(sim.tasks.arrival_s)
    assert np.isfinite(sim.tasks.latency_budget_ms).any()  # the case has bound work
    for now in (0.0, float(arrivals[40]), float(arrivals[41]) + 1e-6, float(arrivals[200])):
        got = planner.pressure(now)
        assert got == pytest.approx(_pressure_by_task(sim, now, 5.0), abs=1e-12)
        assert got.max() > 0


def test_at_weight_zero_it_decides_as_the_greedy_oracle() -> None:
    sc = load_scenario("smart-city").resized(16, 300)
    planner = PlanningOraclePolicy(weight=0.0)
    sim = Simulator(sc, 1)
    planner.bind(sim)
    planned = sim.run(PolicyChooser(planner), planner.name)
    greedy = GreedyOraclePolicy()
    sim = Simulator(sc, 1)
    greedy.bind(sim)
    ref = sim.run(PolicyChooser(greedy), greedy.name)
    assert np.array_equal(planned.completion_s, ref.completion_s, equal_nan=True)


class _Both(PlanningOraclePolicy):
    """The planner, checking each decision against the greedy oracle on the same state."""

    def __init__(self) -> None:
        super().__init__(window_s=10.0, weight=3.0)
        self.greedy = GreedyOraclePolicy()
        self.moved: list[tuple[float, float]] = []  # (pressure at planner's, at greedy's)

    def bind(self, sim: Simulator) -> None:
        super().bind(sim)
        self.greedy.bind(sim)

    def score_indices(self, snapshot: ClusterSnapshot, task: TaskSpec, nodes: I64) -> F64:
        planned = super().score_indices(snapshot, task, nodes)
        greedy = self.greedy.score_indices(snapshot, task, nodes)
        pressure = self.pressure(snapshot.taken_at)[nodes]
        if task.latency_budget_ms is None:
            assert planned == pytest.approx(greedy - 3.0 * -greedy * pressure, rel=1e-12)
        else:  # room is kept for it, not from it
            assert np.array_equal(planned, greedy)
        a, b = int(np.argmax(planned)), int(np.argmax(greedy))
        if a != b:
            self.moved.append((float(pressure[a]), float(pressure[b])))
        return planned


def test_the_penalty_moves_tasks_to_nodes_under_less_pressure() -> None:
    sc = load_scenario("smart-city").resized(30, 600)
    both = _Both()
    sim = Simulator(sc, 2)
    both.bind(sim)
    sim.run(PolicyChooser(both), both.name)
    assert both.moved  # it plans somewhere
    assert all(mine < theirs for mine, theirs in both.moved)
