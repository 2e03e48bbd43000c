"""Scenario fields for fidelity: validation names the dotted path and the rule; generation
of explicit links, several hubs, per-site overrides, per-class arrivals and sources, and link
and site failures, checked by hand; old streams stay untouched by new fields."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scenario_edits import assert_refused, with_changes

from edge_allocator.policy.registry import get_policy
from edge_allocator.sim.engine import PolicyChooser, Simulator, run_policy
from edge_allocator.sim.generate import (
    _arrival_times,
    build_cluster,
    build_failures,
    build_link_failures,
    build_site_failures,
    build_tasks,
    rng_for,
)
from edge_allocator.sim.scenario import load_scenario, parse_scenario

BASE: dict[str, Any] = {
    "name": "fields",
    "family": "fields",
    "topology": {
        "nodes": 24,
        "nodes_per_site": [3, 3],
        "shape": "line",
        "link_latency_ms": [5, 5],
        "link_bandwidth_mbps": [100, 100],
        "node_classes": [
            {"name": "small", "cpu_m": 2000, "mem_mib": 4096, "at": "edge"},
            {"name": "big", "cpu_m": 8000, "mem_mib": 16384},
        ],
    },
    "workload": {
        "tasks": 400,
        "load": 0.4,
        "task_classes": [
            {
                "name": "a",
                "cpu_request_m": [250, 500],
                "mem_request_mib": [64, 128],
                "work_cpu_s": 1.0,
                "input_mb": [1, 2],
            },
            {
                "name": "b",
                "weight": 2,
                "cpu_request_m": [250, 500],
                "mem_request_mib": [64, 128],
                "work_cpu_s": 2.0,
            },
        ],
    },
}


def _with(**changes: Any) -> dict[str, Any]:
    return with_changes(BASE, **changes)


# -- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"workload__task_classes__0__output_mb": [-1, 2]},
            "workload.task_classes.0: Value error, output_mb: must be >= 0",
        ),
        (
            {"workload__task_classes__0__arrivals": {"process": "weekly"}},
            "workload.task_classes.0.arrivals",
        ),
        (
            {"workload__task_classes__1__sources": {"distribution": "pareto"}},
            "workload.task_classes.1.sources.distribution",
        ),
        ({"topology__node_classes__0__cpu_speed": 0}, "topology.node_classes.0.cpu_speed"),
        ({"topology__intra_bandwidth_mbps": 0}, "topology.intra_bandwidth_mbps"),
        ({"topology__hub_sites": ["x"]}, "hub_sites: only with explicit links"),
        (
            {"topology__links": [{"a": "x", "b": "x"}]},
            "topology.links.0: Value error, b: a link joins two different sites",
        ),
        (
            {"topology__links": [{"a": "x", "b": "y", "bandwidth_mbps": [0, 10]}]},
            "topology.links.0: Value error, bandwidth_mbps: must be positive",
        ),
        (
            {"topology__links": [{"a": "x", "b": "y"}, {"a": "y", "b": "x"}]},
            "links.1: a second link between x and y",
        ),
        (
            {"topology__links": [{"a": "x", "b": "y"}], "topology__hub_sites": ["z"]},
            "hub_sites.0: 'z' is not a site of any link",
        ),
        (
            {"topology__links": [{"a": "x", "b": "y"}], "topology__hubs": 2},
            "hubs: with explicit links, name the hub sites in hub_sites",
        ),
        (
            {"topology__links": [{"a": "x", "b": "y"}], "topology__nodes": 1},
            "nodes: 1 edge nodes cannot fill 2 edge sites",
        ),
        ({"topology__hubs": 0}, "topology.hubs: Input should be greater than or equal to 1"),
        ({"sites": [{"site": "site-x"}]}, "sites.0.site: 'site-x' is not site-NNN, hub or hub-N"),
        ({"sites": [{"site": 1}, {"site": 1}]}, "sites.1.site: 1 has an override already"),
        (
            {"sites": [{"site": 0, "node_classes": {"huge": 1}}]},
            "sites.0.node_classes.huge: not a topology.node_classes name",
        ),
        (
            {"topology__hub_nodes": 2, "sites": [{"site": "hub", "node_classes": {"small": 1}}]},
            "sites.0.node_classes.small: class is not for a hub",
        ),
        ({"sites": [{"site": 0, "node_classes": {"small": 0}}]}, "need a class with a positive"),
        ({"sites": [{"site": 0, "background_mean": 1.5}]}, "sites.0.background_mean"),
        ({"sites": [{"site": 0, "source_weight": -1}]}, "sites.0.source_weight"),
        ({"sites": [{"site": 0, "node_mtbf_s": 100}]}, "sites.0.node_mtbf_s: needs dynamics"),
        (
            {"sites": [{"site": 0, "site_failures_per_hour": 1}]},
            "sites.0.site_failures_per_hour: needs dynamics.failures.sites",
        ),
        (
            {"dynamics__failures": {"mtbf_s": 100}},
            "dynamics.failures: Value error, mttr_s: node failures need both",
        ),
        ({"dynamics__failures": {}}, "dynamics.failures: Value error, mtbf_s: give node"),
        (
            {"dynamics__failures": {"links": {"rate_per_hour": 0, "mean_down_s": 5}}},
            "dynamics.failures.links.rate_per_hour: Input should be greater than 0",
        ),
    ],
)
def test_invalid_new_fields_name_the_path_and_the_rule(
    changes: dict[str, Any], message: str
) -> None:
    assert_refused(_with(**changes), message)


def test_scalars_are_ranges_and_old_defaults_hold() -> None:
    sc = parse_scenario(
        _with(
            workload__task_classes__0__output_mb=2,
            topology__links=[{"a": "x", "b": "y", "latency_ms": 3, "bandwidth_mbps": 50}],
        )
    )
    assert sc.workload.task_classes[0].output_mb == (2, 2)
    assert sc.topology.links is not None and sc.topology.links[0].latency_ms == (3, 3)
    old = parse_scenario(BASE)
    assert old.topology.intra_bandwidth_mbps is None and old.topology.hubs == 1
    assert old.workload.task_classes[0].output_mb == (0, 0) and old.sites == []
    assert all(c.cpu_speed == 1.0 for c in old.topology.node_classes)


# -- topology ---------------------------------------------------------------------------------


def test_explicit_links_and_hub_sites() -> None:
    """x - y - z with y the hub (2 hub nodes): edge nodes split evenly over x and z (5 and
    5), fixed values taken as they are, a range drawn inside it, a missing one from the
    topology's link ranges."""
    links = [
        {"a": "x", "b": "y", "latency_ms": 2, "bandwidth_mbps": 300},
        {"a": "y", "b": "z", "latency_ms": [1, 4]},
    ]
    sc = parse_scenario(
        _with(
            topology__links=links,
            topology__hub_sites=["y"],
            topology__nodes=12,
            topology__hub_nodes=2,
        )
    )
    cl = build_cluster(sc, 3)
    assert [s.name for s in cl.sites] == ["y", "x", "z"]
    assert [sum(n.site == s for n in cl.nodes) for s in "yxz"] == [2, 5, 5]
    assert [cl.nodes[i].site for i in cl.edge_nodes] == ["x"] * 5 + ["z"] * 5
    xy, yz = cl.links
    assert (xy.a, xy.b, xy.latency_ms, xy.bandwidth_mbps) == ("x", "y", 2.0, 300.0)
    assert 1 <= yz.latency_ms <= 4 and yz.bandwidth_mbps == 100.0
    assert Simulator(sc, 3).base.site_latency_ms("x", "z") == pytest.approx(2 + yz.latency_ms)


def test_several_hubs_share_the_hub_nodes_and_a_backbone() -> None:
    sc = parse_scenario(_with(topology__hub_nodes=5, topology__hubs=3))
    cl = build_cluster(sc, 1)
    hubs = ["hub", "hub-1", "hub-2"]
    assert [s.name for s in cl.sites[:3]] == hubs
    assert [sum(n.site == h for n in cl.nodes) for h in hubs] == [2, 2, 1]
    pairs = {frozenset((lk.a, lk.b)) for lk in cl.links}
    assert {frozenset(p) for p in [("hub", "hub-1"), ("hub", "hub-2"), ("hub-1", "hub-2")]} <= (
        pairs
    )
    for h in hubs:  # every hub reaches the edge through a gateway of its own
        assert any(h in p and any(s.startswith("site-") for s in p) for p in pairs)
    # one hub: the single hub site of old files, same links
    one = build_cluster(parse_scenario(_with(topology__hub_nodes=5)), 1)
    assert [s.name for s in one.sites].count("hub") == 1 and len(one.sites) == len(cl.sites) - 2


def test_site_overrides_set_class_mix_background_and_sources() -> None:
    sc = parse_scenario(
        _with(
            sites=[
                {"site": 0, "node_classes": {"big": 1}, "background_mean": 0.5},
                {"site": "site-001", "source_weight": 0},
                {"site": "site-002", "source_weight": 50},
                {"site": 40, "background_mean": 0.3},  # no such site at this size: no effect
            ],
            dynamics={"background": {"mean": 0.1, "heterogeneity": 0.0}},
        )
    )
    sim = Simulator(sc, 2)
    sim._reset()
    for i, nd in enumerate(sim.cluster.nodes):
        if nd.site == "site-000":
            assert nd.node_class == "big" and sim.bg_mu[i] == pytest.approx(0.5)
        else:
            assert sim.bg_mu[i] == pytest.approx(0.1)
    sites = [sim.cluster.nodes[s].site for s in sim.tasks.source_node]
    assert "site-001" not in sites
    # 8 sites of 3 nodes: site-002 weighs 50 of 6 * 1 + 50 = 56 (site-001 weighs nothing)
    assert sites.count("site-002") / len(sites) == pytest.approx(50 / 56, abs=0.05)
    # the other sites draw their classes as before: the override takes no random draws
    old = build_cluster(parse_scenario(BASE), 2)
    for a, b in zip(old.nodes, sim.cluster.nodes, strict=True):
        assert (a.site != "site-000" and a.node_class == b.node_class) or a.site == "site-000"


# -- workload ---------------------------------------------------------------------------------


def test_a_class_with_its_own_arrivals_leaves_the_others_on_the_workload_process() -> None:
    """Class a (weight 1 of 3) arrives by its own diurnal process at a third of the rate;
    class b keeps the workload's Poisson stream at two thirds: each part is exactly what
    its process draws for its count, and the merge is in time order."""
    sc = parse_scenario(
        _with(workload__task_classes__0__arrivals={"process": "diurnal", "period_s": 60})
    )
    cl = build_cluster(sc, 4)
    tk = build_tasks(sc, cl, 4)
    old = build_tasks(parse_scenario(BASE), cl, 4)
    rate = 0.4 * sum(n.cpu_allocatable_m for n in cl.nodes) / 1000 / (1 / 3 + 2 * 2 / 3)
    assert np.all(np.diff(tk.arrival_s) >= 0)
    k_a, k_b = int((tk.task_class == 0).sum()), int((tk.task_class == 1).sum())
    assert (k_a, k_b) == (int((old.task_class == 0).sum()), int((old.task_class == 1).sum()))
    wl = sc.workload
    want_b = _arrival_times(wl.arrivals, rate * 2 / 3, k_b, rng_for(4, "arrivals"))
    arr_a = wl.task_classes[0].arrivals
    assert arr_a is not None
    want_a = _arrival_times(arr_a, rate / 3, k_a, rng_for(4, "arrivals:0"))
    np.testing.assert_allclose(tk.arrival_s[tk.task_class == 1], want_b)
    np.testing.assert_allclose(tk.arrival_s[tk.task_class == 0], want_a)


def test_a_class_with_its_own_sources() -> None:
    """Class b takes its data by Zipf rank from every node, hubs included; class a keeps
    exactly the sources it had (and nothing else about the tasks moves)."""
    sc = parse_scenario(
        _with(
            workload__task_classes__1__sources={"distribution": "zipf", "edge_only": False},
            topology__hub_nodes=4,
        )
    )
    cl = build_cluster(sc, 6)
    hub = {i for i, n in enumerate(cl.nodes) if n.site == "hub"}
    tk = build_tasks(sc, cl, 6)
    old = build_tasks(parse_scenario(_with(topology__hub_nodes=4)), cl, 6)
    a = tk.task_class == 0
    assert not hub & set(tk.source_node[a].tolist())
    assert hub & set(tk.source_node[~a].tolist())
    np.testing.assert_array_equal(tk.source_node[a], old.source_node[a])
    assert not np.array_equal(tk.source_node[~a], old.source_node[~a])
    np.testing.assert_array_equal(tk.arrival_s, old.arrival_s)
    np.testing.assert_array_equal(tk.work_cpu_s, old.work_cpu_s)


def test_output_sizes_come_from_their_own_stream() -> None:
    sc = parse_scenario(_with(workload__task_classes__1__output_mb=[1, 3]))
    cl = build_cluster(sc, 5)
    tk, old = build_tasks(sc, cl, 5), build_tasks(parse_scenario(BASE), cl, 5)
    b = tk.task_class == 1
    assert np.all((tk.output_mb[b] >= 1) & (tk.output_mb[b] <= 3)) and np.all(tk.output_mb[~b] == 0)
    np.testing.assert_array_equal(tk.input_mb, old.input_mb)
    np.testing.assert_array_equal(old.output_mb, np.zeros(len(old)))


def test_node_class_cpu_speed_reaches_the_cluster() -> None:
    sc = parse_scenario(_with(topology__node_classes__1__cpu_speed=2.5))
    cl = build_cluster(sc, 1)
    assert [cl.speed(i) for i in range(len(cl.nodes))] == [
        2.5 if n.node_class == "big" else 1.0 for n in cl.nodes
    ]
    assert build_cluster(parse_scenario(BASE), 1).cpu_speed == ()  # all 1.0: nothing stored


# -- failures ---------------------------------------------------------------------------------


def test_link_and_site_failures_have_their_own_streams_and_rates() -> None:
    failures = {
        "mtbf_s": 500,
        "mttr_s": 10,
        "links": {"rate_per_hour": 6, "mean_down_s": 30},
        "sites": {"rate_per_hour": 3, "mean_down_s": 60},
    }
    sc = parse_scenario(
        _with(
            dynamics={"failures": failures},
            sites=[
                {"site": 0, "site_failures_per_hour": 0},
                {"site": 1, "node_mtbf_s": 1e9},
            ],
        )
    )
    cl = build_cluster(sc, 9)
    horizon = 3600.0
    links = build_link_failures(sc, cl, 9, horizon)
    sites = build_site_failures(sc, cl, 9, horizon)
    nodes = build_failures(sc, cl, 9, horizon)
    assert links and sites and nodes
    assert {s for _, s, _ in sites} <= set(range(1, len(cl.sites)))  # site 0 never fails
    assert not any(cl.nodes[i].site == "site-001" for _, i, _ in nodes)
    # up times at 6/h and 3/h: about 6 per link and 3 per site in an hour
    assert len(links) / len(cl.links) == pytest.approx(6, rel=0.35)
    assert len(sites) / (len(cl.sites) - 1) == pytest.approx(3, rel=0.5)
    for events in (links, sites):
        assert events == sorted(events)
        by: dict[int, float] = {}
        for t, k, down in events:  # one element is never down twice at once
            assert t >= by.get(k, 0.0)
            by[k] = t + down
    # node failures keep their stream: links and sites failing changes none of them
    nodes_only = _with(
        dynamics={"failures": {"mtbf_s": 500, "mttr_s": 10}},
        sites=[{"site": 1, "node_mtbf_s": 1e9}],
    )
    assert build_failures(parse_scenario(nodes_only), cl, 9, horizon) == nodes


def test_a_run_with_every_failure_kind_and_output_finishes_everything() -> None:
    data = _with(
        dynamics={
            "failures": {
                "mtbf_s": 300,
                "mttr_s": 10,
                "links": {"rate_per_hour": 20, "mean_down_s": 20},
                "sites": {"rate_per_hour": 5, "mean_down_s": 15},
            },
            "network": {"sharing": "max-min"},
        },
        workload__task_classes__0__output_mb=[1, 4],
        topology__intra_bandwidth_mbps=400,
    )
    sim = Simulator(parse_scenario(data), 2)
    res = sim.run(PolicyChooser(get_policy("kube-default")))
    assert res.restarts > 0 and res.summary()["unfinished"] == 0
    assert len(sim.transfers) == 0 and not any(sim.arriving) and not any(sim.sending)
    assert sim.links_down == 0 and not any(sim.down)
    bound = sim.contention_free_bounds_s()
    assert np.all(res.completion_s >= bound - 1e-9)


def test_the_example_scenario_uses_the_new_fields_and_runs() -> None:
    sc = load_scenario("src/edge_allocator/sim/scenarios/examples/fidelity.yaml")
    assert sc.sites and sc.topology.links and sc.topology.intra_bandwidth_mbps
    assert any(c.output_mb[1] > 0 for c in sc.workload.task_classes)
    assert any(c.arrivals for c in sc.workload.task_classes)
    assert any(c.sources for c in sc.workload.task_classes)
    assert any(c.cpu_speed != 1.0 for c in sc.topology.node_classes)
    assert sc.dynamics.failures and sc.dynamics.failures.links and sc.dynamics.failures.sites
    small = sc.model_copy(update={"workload": sc.workload.model_copy(update={"tasks": 200})})
    assert run_policy(small, 1, get_policy("kube-default")).summary()["unfinished"] == 0
