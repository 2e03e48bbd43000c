"""Result transfers, intra-site bandwidth, link and site failures and CPU speed in the engine,
each checked against hand arithmetic on a two- or three-node cluster.

Every node has 2 cores and no background load; every task requests 500 m (a 1-core limit
with burst 2), so it runs 1 CPU-second in 1 s and tasks never contend for CPU. Site ``a``
and site ``b`` are joined by one 5 ms, 100 Mbps link (1 MB = 8 Mb takes 80 ms on it alone).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from edge_allocator.cluster.inflight import TransferStart, replay
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec
from edge_allocator.sim.engine import Simulator
from edge_allocator.sim.generate import Cluster, Tasks
from edge_allocator.sim.scenario import load_scenario, parse_scenario


def _scenario(sharing: str = "none", intra_bandwidth_mbps: float | None = None) -> Any:
    topology: dict[str, Any] = {
        "nodes": 2,
        "node_classes": [{"name": "b", "cpu_m": 2000, "mem_mib": 4096}],
    }
    if intra_bandwidth_mbps is not None:
        topology["intra_bandwidth_mbps"] = intra_bandwidth_mbps
    return parse_scenario(
        {
            "name": "hand",
            "family": "hand",
            "topology": topology,
            "workload": {
                "tasks": 1,
                "load": 0.1,
                "task_classes": [
                    {
                        "name": "t",
                        "cpu_request_m": [500, 500],
                        "mem_request_mib": [64, 64],
                        "work_cpu_s": 1,
                    }
                ],
            },
            "dynamics": {
                "background": {"mean": 0.0, "heterogeneity": 0.0, "volatility": 0.0},
                "metrics": {"interval_s": 0},
                "network": {"sharing": sharing},
            },
        }
    )


def _node(name: str, site: str, mem: int = 4096) -> NodeState:
    return NodeState(name, site, "b", 2000, mem, 2000, mem)


def _cluster(*nodes: NodeState, speed: tuple[float, ...] = ()) -> Cluster:
    """Sites a and b (one link); a0 (the data's node) first."""
    nodes = nodes or (_node("a0", "a"), _node("b0", "b"))
    edge = tuple(range(len(nodes)))
    return Cluster((Site("a"), Site("b")), (Link("a", "b", 5.0, 100.0),), nodes, edge, speed)


def _tasks(
    arrivals: Sequence[float],
    input_mb: Sequence[float],
    output_mb: Sequence[float] | None = None,
    work: float = 1.0,
) -> Tasks:
    n = len(arrivals)
    return Tasks(
        arrival_s=np.array(arrivals, dtype=float),
        cpu_request_m=np.full(n, 500, dtype=np.int64),
        mem_request_mib=np.full(n, 64, dtype=np.int64),
        work_cpu_s=np.full(n, work),
        input_mb=np.array(input_mb, dtype=float),
        source_node=np.zeros(n, dtype=np.int64),
        latency_budget_ms=np.full(n, np.nan),
        deadline_s=np.full(n, np.nan),
        task_class=np.zeros(n, dtype=np.int64),
        output_mb=np.array(output_mb if output_mb is not None else [0.0] * n, dtype=float),
    )


class Prefer:
    """Picks the first preferred node among the candidates (else the first candidate) and
    records every decision as (task, node name, snapshot)."""

    def __init__(self, *names: str) -> None:
        self.names = names
        self.seen: list[tuple[int, str, ClusterSnapshot]] = []

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        k = next((list(candidates).index(n) for n in self.names if n in candidates), 0)
        self.seen.append((task_id, candidates[k], snapshot))
        return k


# -- results sent back -----------------------------------------------------------------------


def test_result_time_is_added_without_link_sharing() -> None:
    """100 Mb in (1 s + 5 ms), 1 s of work, 50 Mb back over the same path (0.5 s + 5 ms):
    completion 2.51 s; the node is free again when the CPU work ends (the input did not hold
    it either in this model)."""
    tasks = _tasks([0.0], [100 / 8], [50 / 8])
    res = Simulator(_scenario(), 1, cluster=_cluster(), tasks=tasks).run(Prefer("b0"))
    assert res.completion_s == pytest.approx([2.51])
    assert res.network_ms == pytest.approx([1005 + 505])
    assert res.latency_ms == pytest.approx([5.0])  # one way: what the budget bounds


def test_results_share_the_link_with_inputs() -> None:
    """Task 0: 100 Mb in over 0..1 s, work 1..2 s, then 50 Mb back from 2 s. Task 1 arrives at
    2 s with 25 Mb in: both flows get 50 Mbps, task 1's input is in at 2.5 s (it runs to
    3.5 s), task 0's result has 25 Mb left and ends alone at 2.75 s. Each direction adds its
    5 ms latency; task 0 holds its requests on b0 while its result is on its way."""
    tasks = _tasks([0.0, 2.0], [100 / 8, 25 / 8], [50 / 8, 0.0])
    chooser = Prefer("b0")
    res = Simulator(_scenario("max-min"), 1, cluster=_cluster(), tasks=tasks).run(chooser)
    assert res.completion_s == pytest.approx([2.75 + 0.010, 1.5 + 0.005])
    assert res.network_ms == pytest.approx([5 + 1000 + 5 + 750, 5 + 500])
    (_, _, snap) = chooser.seen[1]
    b0 = snap.nodes[snap.index_of("b0")]
    assert b0.cpu_requested_m == 500 and b0.running_tasks == 1  # task 0, sending


def test_no_output_is_the_old_model() -> None:
    tasks = _tasks([0.0], [100 / 8])
    for sharing in ("none", "max-min"):
        res = Simulator(_scenario(sharing), 1, cluster=_cluster(), tasks=tasks).run(Prefer("b0"))
        assert res.completion_s == pytest.approx([2.005])


def test_a_result_on_its_source_node_costs_nothing() -> None:
    tasks = _tasks([0.0], [100 / 8], [50 / 8])
    res = Simulator(_scenario("max-min"), 1, cluster=_cluster(), tasks=tasks).run(Prefer("a0"))
    assert res.completion_s == pytest.approx([1.0]) and res.network_ms == pytest.approx([0.0])


# -- intra-site bandwidth ---------------------------------------------------------------------


def _one_site() -> Cluster:
    nodes = (_node("a0", "a"), _node("a1", "a"))
    return Cluster((Site("a", 0.5),), (), nodes, (0, 1))


@pytest.mark.parametrize(
    ("intra", "sharing", "completion"),
    [
        # free inside a site, as before: 0.5 ms latency + 1 s of work
        (None, "none", [1.0005, 1.0005]),
        (None, "max-min", [1.0005, 1.0005]),
        # 80 Mb each at 80 Mbps: 1 s each when each has the LAN to itself
        (80.0, "none", [2.0005, 2.0005]),
        # both share the site's 80 Mbps from t=0: 40 Mbps each, both in at 2 s, done at 3 s
        (80.0, "max-min", [3.0005, 3.0005]),
    ],
)
def test_intra_site_transfers_cost_the_site_bandwidth(
    intra: float | None, sharing: str, completion: list[float]
) -> None:
    tasks = _tasks([0.0, 0.0], [10.0, 10.0])
    sim = Simulator(_scenario(sharing, intra), 1, cluster=_one_site(), tasks=tasks)
    res = sim.run(Prefer("a1"))
    assert res.completion_s == pytest.approx(completion)
    assert len(sim.transfers) == 0


def test_policies_see_the_intra_site_bandwidth_the_simulator_charges() -> None:
    """A generated fleet's snapshot declares the scenario's intra-site bandwidth on every
    site, so the features price a site-mate's transfer as the engine does."""
    scenario = _scenario("max-min", 300.0)
    sim = Simulator(scenario, 1)
    assert sim.cluster.sites
    for i, site in enumerate(sim.cluster.sites):
        assert site.intra_bandwidth_mbps == 300.0
        assert sim.base.site_bandwidth_mbps(site.name, site.name) == 300.0
        assert sim.site_bw[i][i] == 300.0
    unset = Simulator(_scenario("max-min"), 1)
    assert all(s.intra_bandwidth_mbps is None for s in unset.cluster.sites)


class Spread:
    """Picks a pseudo-random candidate (so inputs cross links) and records each decision."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(5)
        self.seen: list[tuple[int, TaskSpec, str, ClusterSnapshot]] = []

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        k = int(self.rng.integers(len(candidates)))
        self.seen.append((task_id, task, candidates[k], snapshot))
        return k


def test_policies_see_the_transfers_in_flight_the_extender_would_estimate() -> None:
    """With shared links, each decision's snapshot counts the inputs in flight as the extender
    reconstructs them from the placements before it (cluster.inflight.replay); some decisions
    see links in use. Without sharing, none is ever counted."""
    scenario = load_scenario("metro-mesh").resized(30, 300)
    sim = Simulator(scenario, 2)
    chooser = Spread()
    sim.run(chooser)
    tids = [tid for tid, *_ in chooser.seen]
    assert len(set(tids)) == len(tids)  # each placed once: placed_at is its decision time
    starts: list[TransferStart] = []
    busy = 0
    for tid, task, node, snap in chooser.seen:
        now = sim.placed_at[tid]
        counts, _ = replay(snap, starts, now)
        assert snap.inflight == counts, tid
        busy += bool(counts)
        starts.append(
            TransferStart(
                now,
                f"{len(starts):06d}",
                task.data_source_site,
                task.data_source_node,
                task.input_mb,
                node,
            )
        )
    assert busy > len(tids) // 4
    calm = Simulator(scenario.model_copy(update={"dynamics": _no_sharing(scenario)}), 2)
    quiet = Spread()
    calm.run(quiet)
    assert all(snap.inflight == () for *_, snap in quiet.seen)


def _no_sharing(scenario: Any) -> Any:
    net = scenario.dynamics.network.model_copy(update={"sharing": "none"})
    return scenario.dynamics.model_copy(update={"network": net})


# -- CPU speed --------------------------------------------------------------------------------


def test_cpu_speed_scales_the_work() -> None:
    """2 CPU-s of work: 1 s on a node twice as fast, 2 s at speed 1; the bound agrees."""
    tasks = _tasks([0.0, 0.0], [0.0, 0.0], work=2.0)
    fast = _cluster(speed=(1.0, 2.0))
    sim = Simulator(_scenario(), 1, cluster=fast, tasks=tasks)
    res = sim.run(Prefer("b0"))
    assert res.completion_s == pytest.approx([1.005, 1.005])
    assert sim.contention_free_bounds_s() == pytest.approx([1.005, 1.005])
    slow = Simulator(_scenario(), 1, cluster=_cluster(), tasks=tasks).run(Prefer("b0"))
    assert slow.completion_s == pytest.approx([2.005, 2.005])


# -- link and site failures -------------------------------------------------------------------


def _small_a0() -> Cluster:
    """a0 is too small for any task (32 MiB), so a task waits for b0 when b0 is cut off."""
    return _cluster(_node("a0", "a", mem=32), _node("b0", "b"))


def test_a_failed_link_cuts_a_transfer_and_the_task_waits_for_it() -> None:
    """100 Mb to b0 from 0 s; the link fails at 0.5 s for 1 s. The transfer is lost (a
    restart, as on a failed node), b0 is no candidate while its path is down, so the task
    waits and is placed again at 1.5 s: input 1.5..2.5 s, work to 3.5 s."""
    tasks = _tasks([0.0], [100 / 8])
    sim = Simulator(_scenario("max-min"), 1, cluster=_small_a0(), tasks=tasks)
    sim.link_failures = [(0.5, 0, 1.0)]
    chooser = Prefer("b0")
    res = sim.run(chooser)
    assert res.restarts == 1
    assert [(tid, node) for tid, node, _ in chooser.seen] == [(0, "b0"), (0, "b0")]
    assert chooser.seen[1][2].taken_at == pytest.approx(1.5)
    assert res.completion_s == pytest.approx([3.5 + 0.005])
    assert res.network_ms == pytest.approx([1005.0])
    assert len(sim.transfers) == 0 and not any(sim.arriving)


def test_a_failed_link_reroutes_to_a_reachable_node() -> None:
    """Same cut, but a0 can hold the task: at 0.5 s it runs on its own data's node."""
    tasks = _tasks([0.0], [100 / 8])
    sim = Simulator(_scenario("max-min"), 1, cluster=_cluster(), tasks=tasks)
    sim.link_failures = [(0.5, 0, 1.0)]
    res = sim.run(Prefer("b0"))
    assert res.restarts == 1
    assert res.completion_s == pytest.approx([1.5]) and res.network_ms == pytest.approx([0.0])


def test_without_sharing_a_failed_link_only_blocks_placement() -> None:
    """The link is down from 0 s to 10 s: the task waits, then runs on b0 (input time
    added, 1 s + 5 ms): 10 + 1 + 1.005."""
    tasks = _tasks([0.0], [100 / 8])
    sim = Simulator(_scenario(), 1, cluster=_small_a0(), tasks=tasks)
    sim.link_failures = [(0.0, 0, 10.0)]
    res = sim.run(Prefer("b0"))
    assert res.restarts == 0
    assert res.completion_s == pytest.approx([12.005])


@pytest.mark.parametrize("sharing", ["none", "max-min"])
def test_a_result_that_cannot_go_back_is_lost(sharing: str) -> None:
    """Work 0..1 s on b0; the link is down 0.5..1.5 s, so at 1 s the result cannot go back:
    the task runs again (a restart) when b0 is reachable at 1.5 s, until 2.5 s, and sends
    50 Mb back (0.5 s + 5 ms): completion 3.0 s + 5 ms (input latency) + 5 ms."""
    tasks = _tasks([0.0], [0.0], [50 / 8])
    sim = Simulator(_scenario(sharing), 1, cluster=_small_a0(), tasks=tasks)
    sim.link_failures = [(0.5, 0, 1.0)]
    res = sim.run(Prefer("b0"))
    assert res.restarts == 1
    assert res.completion_s == pytest.approx([3.01])


def test_site_failure_takes_every_node_and_overlaps_a_node_failure() -> None:
    """Site b (b0, b1) fails at 0.5 s for 1 s; b0 also fails on its own at 1 s for 2 s. The
    task (2 CPU-s, no input) on b0 is lost at 0.5 s, waits (a0 is too small), and at 1.5 s
    only b1 is back (b0 stays down until 3 s): it runs there 1.5..3.5 s."""
    nodes = (_node("a0", "a", mem=32), _node("b0", "b"), _node("b1", "b"))
    tasks = _tasks([0.0], [0.0], work=2.0)
    sim = Simulator(_scenario(), 1, cluster=_cluster(*nodes), tasks=tasks)
    sim.site_failures = [(0.5, 1, 1.0)]
    sim.failures = [(1.0, 1, 2.0)]
    chooser = Prefer("b0", "b1")
    res = sim.run(chooser)
    assert [(tid, node) for tid, node, _ in chooser.seen] == [(0, "b0"), (0, "b1")]
    assert res.restarts == 1
    assert res.completion_s == pytest.approx([3.505])
    assert sim.down == [0, 0, 0] and all(sim.ready)


def test_a_result_cut_on_its_way_back_is_lost() -> None:
    """Work 0..1 s on b0, then 100 Mb back (1..2 s alone); the link fails at 1.5 s for 1 s:
    the result is lost, the task restarts on b0 at 2.5 s, works to 3.5 s and sends its
    result by 4.5 s; both directions add 5 ms."""
    tasks = _tasks([0.0], [0.0], [100 / 8])
    sim = Simulator(_scenario("max-min"), 1, cluster=_small_a0(), tasks=tasks)
    sim.link_failures = [(1.5, 0, 1.0)]
    res = sim.run(Prefer("b0"))
    assert res.restarts == 1
    assert res.completion_s == pytest.approx([4.51])
    assert res.network_ms == pytest.approx([5 + 5 + 1000])
    assert len(sim.transfers) == 0 and not any(sim.sending)
