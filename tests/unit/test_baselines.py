"""Heuristic baselines: the formulas written out, table-driven, plus ranking behaviour."""

from __future__ import annotations

import pytest

from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec
from edge_allocator.policy.baselines import (
    EstimatedCompletionPolicy,
    KubeDefaultPolicy,
    LowestLatencyPolicy,
    NetworkOverheadPolicy,
    RandomPolicy,
    RoundRobinPolicy,
    TargetLoadPackingPolicy,
)
from edge_allocator.policy.baselines.kube_default import balanced_allocation, least_allocated
from edge_allocator.policy.baselines.trimaran import target_load_packing


def _node(name: str, site: str = "a", **kw: int | None) -> NodeState:
    base: dict[str, int | None] = {"cpu": 4000, "mem": 8000}
    base.update(kw)
    cpu, mem = int(base.pop("cpu") or 0), int(base.pop("mem") or 0)
    return NodeState(name, site, "x", cpu, mem, cpu, mem, **base)  # type: ignore[arg-type]


def _snap(*nodes: NodeState) -> ClusterSnapshot:
    sites = (Site("a", 1.0), Site("b", 1.0), Site("c", 1.0))
    links = (Link("a", "b", 10.0, 1000.0), Link("b", "c", 30.0, 10.0))
    return ClusterSnapshot(tuple(nodes), sites, links, revision=3)


TASK = TaskSpec(cpu_request_m=1000, mem_request_mib=2000, data_source_site="a")


@pytest.mark.parametrize(
    ("cpu_req", "mem_req", "least", "balanced"),
    [
        # cpu (4000-0-1000)/4000 = 75, mem (8000-0-2000)/8000 = 75 -> 75; fractions equal -> 100
        (0, 0, 75.0, 100.0),
        # cpu (4000-2000-1000)/4000 = 25, mem 75 -> 50; f = 0.75, 0.25 -> (1 - 0.25) * 100
        (2000, 0, 50.0, 75.0),
        # over-requested cpu scores 0 and its fraction caps at 1: f = 1, 0.25
        (4000, 0, 37.5, 62.5),
    ],
)
def test_kube_default_arithmetic(cpu_req: int, mem_req: int, least: float, balanced: float) -> None:
    node = _node("n", cpu_requested_m=cpu_req, mem_requested_mib=mem_req)
    assert least_allocated(node, TASK) == pytest.approx(least)
    assert balanced_allocation(node, TASK) == pytest.approx(balanced)
    assert KubeDefaultPolicy().score(_snap(node), TASK, ["n"]) == [pytest.approx(least + balanced)]


@pytest.mark.parametrize(
    ("u", "x", "expected"),
    [
        (0.0, 40.0, 40.0),
        (20.0, 40.0, 70.0),
        (40.0, 40.0, 100.0),
        (70.0, 40.0, 20.0),
        (100.0, 40.0, 0.0),
        (130.0, 40.0, 0.0),
    ],
)
def test_target_load_packing_formula(u: float, x: float, expected: float) -> None:
    assert target_load_packing(u, x) == pytest.approx(expected)


def test_trimaran_packs_towards_target_and_falls_back_without_metrics() -> None:
    idle = _node("idle", cpu_usage_m=0)  # U = 25 %
    warm = _node("warm", cpu_usage_m=600)  # U = 40 %: the target
    hot = _node("hot", cpu_usage_m=3000)  # U = 100 %
    scores = TargetLoadPackingPolicy().score(_snap(idle, warm, hot), TASK, ["idle", "warm", "hot"])
    assert scores[1] > scores[0] > scores[2]
    blind = _node("blind", cpu_requested_m=1000)  # no metrics: best fit on requests = 50
    assert TargetLoadPackingPolicy().score(_snap(blind), TASK, ["blind"]) == [pytest.approx(50.0)]
    with pytest.raises(ValueError, match="target_pct"):
        TargetLoadPackingPolicy(target_pct=100.0)


def test_latency_prefers_the_source_then_the_near_site() -> None:
    snap = _snap(_node("far", "c"), _node("near", "b"), _node("home", "a"), _node("src", "a"))
    task = TaskSpec(1000, 2000, "a", data_source_node="src")
    s = LowestLatencyPolicy().score(snap, task, ["far", "near", "home", "src"])
    assert s[3] > s[2] > s[1] > s[0]
    assert s[1] == pytest.approx(-10.0, abs=0.02)


def test_network_overhead_normalises_costs() -> None:
    snap = _snap(_node("far", "c"), _node("near", "b"), _node("home", "a"))
    s = NetworkOverheadPolicy().score(snap, TASK, ["far", "near", "home"])
    # costs 40, 10, 1 ms -> network scores 0, 76.9, 100; balance 100 for all idle nodes
    assert s[0] == pytest.approx(100.0)
    assert s[1] == pytest.approx(5 * 100 * 30 / 39 + 100)
    assert s[2] == pytest.approx(600.0)


def test_estimated_completion_trades_network_for_free_cpu() -> None:
    busy_home = _node("busy", "a", cpu_usage_m=3900)  # 0.1 core free
    idle_near = _node("idle", "b", cpu_usage_m=0)
    task = TaskSpec(1000, 2000, "a", input_mb=1.0, work_cpu_s=4.0)
    s = EstimatedCompletionPolicy().score(_snap(busy_home, idle_near), task, ["busy", "idle"])
    # busy: 1 ms + 4 cpu-s at the 0.11-core floor; idle: 10 ms + 8 ms transfer + 4 s / 2 cores
    assert s[0] == pytest.approx(-(0.001 + 4.0 / 0.11))
    assert s[1] == pytest.approx(-(0.018 + 2.0))


def test_random_and_round_robin_are_pure_functions_of_their_inputs() -> None:
    snap = _snap(*(_node(f"n{i}") for i in range(5)))
    names = [f"n{i}" for i in range(5)]
    r = RandomPolicy(seed=1)
    assert r.score(snap, TASK, names) == r.score(snap, TASK, names)
    assert r.score(snap, TASK, names) != RandomPolicy(seed=2).score(snap, TASK, names)
    assert all(0.0 <= x < 1.0 for x in r.score(snap, TASK, names))
    rr = RoundRobinPolicy().score(snap, TASK, names)
    assert max(range(5), key=rr.__getitem__) == 3 % 5
    later = snap.with_nodes(snap.nodes, revision=4, taken_at=0.0)
    rr2 = RoundRobinPolicy().score(later, TASK, names)
    assert max(range(5), key=rr2.__getitem__) == 4
