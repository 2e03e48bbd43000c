"""Links shared by concurrent transfers (max-min fair share), checked against hand arithmetic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec
from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import Simulator, run_policy
from edge_allocator.sim.generate import Cluster, Tasks
from edge_allocator.sim.network import Transfers, max_min_rates
from edge_allocator.sim.scenario import ScenarioError, load_scenario, parse_scenario


@pytest.mark.parametrize(
    ("paths", "capacity", "rates"),
    [
        ([[0, 1]], [100, 50], [50]),  # alone: the path's bottleneck
        ([[0], [0]], [100], [50, 50]),  # two on one link: half each
        # link 0 (10) carries f0 and f1, link 1 (20) carries f1 and f2: link 0 saturates
        # first at 5 each, f2 gets what f1 leaves on link 1: 20 - 5
        ([[0], [0, 1], [1]], [10, 20], [5, 5, 15]),
        # parking lot: one long flow over three unit links, one short flow per link
        ([[0, 1, 2], [0], [1], [2]], [1, 1, 1], [0.5, 0.5, 0.5, 0.5]),
        # a flow limited elsewhere leaves the rest of a shared link to the other
        ([[0, 1], [1]], [2, 10], [2, 8]),
        ([[]], [5], [math.inf]),  # no link crossed (within a site): not limited
    ],
)
def test_max_min_rates_by_hand(
    paths: list[list[int]], capacity: list[float], rates: list[float]
) -> None:
    assert max_min_rates(paths, capacity) == pytest.approx(rates)


def test_fair_share_properties_on_random_flows() -> None:
    """Feasible (no link over capacity) and max-min: every flow crosses a saturated link on
    which no other flow gets more than it."""
    rng = np.random.default_rng(7)
    for _ in range(50):
        links = int(rng.integers(1, 6))
        cap = rng.uniform(1, 100, links).tolist()
        paths = [
            sorted(set(rng.integers(0, links, int(rng.integers(1, links + 1))).tolist()))
            for _ in range(int(rng.integers(1, 8)))
        ]
        rates = max_min_rates(paths, cap)
        load = [sum(r for r, p in zip(rates, paths, strict=True) if k in p) for k in range(links)]
        assert all(u <= c + 1e-9 for u, c in zip(load, cap, strict=True))
        for f, path in enumerate(paths):
            assert any(
                load[k] >= cap[k] - 1e-9
                and all(rates[g] <= rates[f] + 1e-9 for g, q in enumerate(paths) if k in q)
                for k in path
            )


def _filling_flow_by_flow(paths: Sequence[Sequence[int]], capacity: Sequence[float]) -> list[float]:
    """Progressive filling as the definition reads: each step scans every link for the
    smallest fair share and freezes its flows one by one (the specification
    ``max_min_rates`` must equal)."""
    rates = [math.inf] * len(paths)
    left = [float(c) for c in capacity]
    users: dict[int, set[int]] = {}
    for f, path in enumerate(paths):
        for link in set(path):
            users.setdefault(link, set()).add(f)
    while users:
        link, share = min(
            ((lk, left[lk] / len(fs)) for lk, fs in users.items()), key=lambda x: (x[1], x[0])
        )
        for f in users.pop(link):
            rates[f] = max(share, 0.0)
            for other in set(paths[f]):
                if other == link or other not in users:
                    continue
                left[other] -= rates[f]
                users[other].discard(f)
                if not users[other]:
                    del users[other]
    return rates


def test_max_min_rates_equal_flow_by_flow_filling_exactly() -> None:
    """Classes of flows over the same links, a heap of fair shares: the same floats as the
    flow-by-flow definition, on many flows sharing paths (either direction) and on ties."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        links = int(rng.integers(1, 30))
        # integer capacities make exact ties between links' shares common
        cap = (
            rng.integers(1, 8, links).astype(float).tolist()
            if trial % 2
            else rng.uniform(1, 1000, links).tolist()
        )
        shapes = [
            rng.choice(links, int(rng.integers(1, min(links, 6) + 1)), replace=False).tolist()
            for _ in range(int(rng.integers(1, 12)))
        ]
        paths: list[list[int]] = []
        for _ in range(int(rng.integers(1, 200))):
            path = list(shapes[int(rng.integers(0, len(shapes)))])
            paths.append(path[::-1] if rng.random() < 0.5 else path)  # results flow back
        if trial % 5 == 0:
            paths.append([])
        assert max_min_rates(paths, cap) == _filling_flow_by_flow(paths, cap)


def test_transfers_over_time_by_hand() -> None:
    """One 100 Mbps link. f0 sends 100 Mb from t=0, f1 25 Mb from t=0.5. Alone, f0 sends
    50 Mb by 0.5 s; then both get 50 Mbps: f1 is done at 1.0 s, f0 has 25 Mb left and ends
    at full speed at 1.25 s."""
    tr = Transfers([100.0])
    tr.add(0.0, 0, (0,), 100.0)
    assert tr.next_end() == pytest.approx(1.0)
    tr.add(0.5, 1, (0,), 25.0)
    assert (tr.rate_of(0), tr.rate_of(1)) == pytest.approx((50.0, 50.0))
    assert tr.next_end() == pytest.approx(1.0)
    tr.advance(1.0)
    assert tr.done() == [1]
    tr.remove(1.0, 1)
    assert tr.left_of(0) == pytest.approx(25.0) and tr.rate_of(0) == pytest.approx(100.0)
    assert tr.next_end() == pytest.approx(1.25)


def test_link_paths_follow_the_snapshot_shortest_paths() -> None:
    """Same path as the snapshot's latency and bottleneck: a 2-hop detour (2 + 2 ms) beats
    the direct 5 ms link; latencies and bottlenecks summed along the links agree."""
    sites = (Site("a"), Site("b"), Site("c"))
    links = (Link("a", "c", 5.0, 1000.0), Link("a", "b", 2.0, 100.0), Link("b", "c", 2.0, 50.0))
    paths, capacity = ClusterSnapshot((), sites, links).transfer_links()
    assert capacity[:3] == [1000.0, 100.0, 50.0] and capacity[3:] == [math.inf] * 3
    assert paths[0][2] == (1, 2) and paths[2][0] == (2, 1) and paths[1][1] == ()
    for fam in ("smart-city", "rural", "campus"):
        sim = Simulator(load_scenario(fam).resized(60, 10), 3)
        lp, _ = sim.base.transfer_links()
        names = [s.name for s in sim.cluster.sites]
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                if i == j:
                    continue
                ls = [sim.cluster.links[k] for k in lp[i][j]]
                assert sum(lk.latency_ms for lk in ls) == pytest.approx(
                    sim.base.site_latency_ms(a, b)
                )
                assert min(lk.bandwidth_mbps for lk in ls) == sim.base.site_bandwidth_mbps(a, b)


def _scenario(sharing: str) -> Any:
    return parse_scenario(
        {
            "name": "two-sites",
            "family": "two-sites",
            "topology": {
                "nodes": 2,
                "node_classes": [{"name": "b", "cpu_m": 2000, "mem_mib": 4096}],
            },
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


def _cluster() -> Cluster:
    nodes = (
        NodeState("a0", "a", "b", 2000, 4096, 2000, 4096),
        NodeState("b0", "b", "b", 2000, 4096, 2000, 4096),
    )
    return Cluster((Site("a"), Site("b")), (Link("a", "b", 5.0, 100.0),), nodes, (0, 1))


def _tasks(arrivals: Sequence[float], input_mb: Sequence[float]) -> Tasks:
    n = len(arrivals)
    return Tasks(
        arrival_s=np.array(arrivals, dtype=float),
        cpu_request_m=np.full(n, 500, dtype=np.int64),
        mem_request_mib=np.full(n, 64, dtype=np.int64),
        work_cpu_s=np.full(n, 1.0),
        input_mb=np.array(input_mb, dtype=float),
        source_node=np.zeros(n, dtype=np.int64),
        latency_budget_ms=np.full(n, np.nan),
        deadline_s=np.full(n, np.nan),
        task_class=np.zeros(n, dtype=np.int64),
    )


class OnB:
    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        return list(candidates).index("b0")


def test_concurrent_transfers_share_the_link_and_delay_the_start() -> None:
    """Data in a0, both tasks on b0 over one 100 Mbps, 5 ms link; 1 CPU-s of work at 1 core
    each (500 m x burst 2), so no CPU contention. Task 0 brings 100 Mb from t=0, task 1 25 Mb
    from t=0.5: task 1's input is in at 1.0 s, task 0's at 1.25 s (see the Transfers case);
    each then runs 1 s. Completion = finish - arrival + 5 ms latency."""
    tasks = _tasks([0.0, 0.5], [100 / 8, 25 / 8])
    res = Simulator(_scenario("max-min"), 1, cluster=_cluster(), tasks=tasks).run(OnB())
    assert res.completion_s == pytest.approx([2.25 + 0.005, 1.5 + 0.005])
    assert res.network_ms == pytest.approx([5 + 1250, 5 + 500])
    # without sharing each gets the full 100 Mbps and starts at once (the old model)
    old = Simulator(_scenario("none"), 1, cluster=_cluster(), tasks=tasks).run(OnB())
    assert old.completion_s == pytest.approx([1.0 + 1.005, 1.0 + 0.255])


def test_shared_links_with_failures_finish_everything() -> None:
    """A whole run with link sharing and node failures mid-transfer: every task finishes,
    no transfer is left in flight, and sharing only ever slows the network part."""
    sc = load_scenario("smart-city").resized(30, 300)
    data = sc.model_dump()
    data["dynamics"]["failures"] = {"mtbf_s": 40.0, "mttr_s": 5.0}
    data["dynamics"]["network"] = {"sharing": "max-min"}
    shared = parse_scenario(data)
    sim = Simulator(shared, 2)
    where: dict[int, int] = {}

    class First:
        def choose(
            self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], tid: int
        ) -> int:
            where[tid] = snapshot.index_of(candidates[0])  # the last decision is final
            return 0

    res = sim.run(First())
    assert res.restarts > 0 and res.summary()["unfinished"] == 0
    assert len(sim.transfers) == 0 and not any(sim.arriving)
    crossed = 0
    for tid, i in where.items():
        alone_ms = sim.path(tid, i)[1]  # the whole path to itself
        assert res.network_ms[tid] >= alone_ms - 1e-6
        crossed += res.network_ms[tid] > alone_ms + 1e-6
    assert crossed > 0  # some transfers did share a link
    assert run_policy(shared, 2, get_policy("kube-default")).summary()["unfinished"] == 0


def test_an_unknown_sharing_model_names_the_field() -> None:
    data = _scenario("none").model_dump()
    data["dynamics"]["network"] = {"sharing": "fifo"}
    with pytest.raises(ScenarioError, match=r"dynamics\.network\.sharing: Input should be"):
        parse_scenario(data, "fleet.yaml")
    assert Simulator(_scenario("none"), 1).shared_links is False  # old files: the old model


def test_transfers_without_links_and_bad_links() -> None:
    """A flow over no link is unlimited (it ends at once); a link outside the capacity list is
    refused with its number, never read."""
    tr = Transfers([1.0])
    tr.add(0.0, 1, (), 5.0)
    assert tr.next_end() == 0.0 and tr.rate_of(1) == math.inf
    with pytest.raises(ValueError, match=r"links are numbered 0\.\.0"):
        tr.add(0.0, 2, (3,), 5.0)
    assert len(tr) == 1 and tr.next_end() == 0.0  # nothing of the refused flow is kept
    with pytest.raises(ValueError, match="links are numbered"):
        max_min_rates([[0, -1]], [1.0, 2.0])
