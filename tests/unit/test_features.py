"""The feature builder: shapes, units and the scale-free encodings the policy relies on."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edge_allocator.cluster.features import (
    CAND_DIM,
    CANDIDATE_FEATURES,
    EDGE_DIM,
    NODE_DIM,
    NODE_FEATURES,
    TASK_DIM,
    build_features,
    candidate_arrays,
    node_arrays,
    topology_arrays,
)
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec


def _snapshot() -> ClusterSnapshot:
    sites = (Site("a", 0.5), Site("b", 1.0), Site("c", 2.0))
    links = (Link("a", "b", 10.0, 100.0), Link("b", "c", 5.0, 10.0))
    nodes = (
        NodeState("n1", "a", "gw", 2000, 4096, 2000, 4096, cpu_requested_m=1000, cpu_usage_m=1500),
        NodeState("n2", "b", "srv", 8000, 16384, 8000, 16384, mem_requested_mib=8192),
        NodeState("n3", "c", "srv", 8000, 16384, 8000, 16384, ready=False, running_tasks=8),
    )
    return ClusterSnapshot(nodes, sites, links, revision=7)


def _col(name: str) -> int:
    return CANDIDATE_FEATURES.index(name)


def test_shapes_and_graph_wiring() -> None:
    snap = _snapshot()
    topo, nodes, cand = build_features(snap, TaskSpec(500, 256, "a"), ["n1", "n2", "n3"])
    assert nodes.node_x.shape == (3, NODE_DIM)
    assert cand.cand_x.shape == (3, CAND_DIM)
    assert cand.task_x.shape == (TASK_DIM,)
    # every node wired to its site both ways, every link both ways
    assert topo.edge_index.shape == (2, 2 * 3 + 2 * 2)
    assert topo.edge_attr.shape == (10, EDGE_DIM)
    assert list(topo.node_site) == [0, 1, 2]
    # vertices: nodes 0..2, sites 3..5; n2 (vertex 1) -> site b (vertex 4)
    pairs = set(zip(topo.edge_index[0].tolist(), topo.edge_index[1].tolist(), strict=True))
    assert (1, 4) in pairs and (4, 1) in pairs and (3, 4) in pairs and (5, 4) in pairs


def test_path_latency_and_transfer_time() -> None:
    snap = _snapshot()
    task = TaskSpec(500, 256, "a", input_mb=10.0)
    cand = candidate_arrays(snap, task, ["n1", "n2", "n3"])
    # n1 same site: intra latency only; n2: 10 ms + 10 MB over 100 Mbps = 800 ms;
    # n3: 15 ms + 10 MB over the 10 Mbps bottleneck = 8000 ms
    np.testing.assert_allclose(cand.network_ms, [0.5, 810.0, 8015.0], rtol=1e-5)
    assert cand.cand_x[0, _col("same_site")] == 1.0
    assert cand.cand_x[2, _col("rel_network")] == pytest.approx(1.0)
    assert cand.cand_x[0, _col("rel_network")] == pytest.approx(0.0)


def test_source_node_pays_no_network() -> None:
    snap = _snapshot()
    cand = candidate_arrays(snap, TaskSpec(500, 256, "b", "n2", input_mb=50.0), ["n2", "n1"])
    assert cand.network_ms[0] == 0.0
    assert cand.cand_x[0, _col("is_source_node")] == 1.0
    assert cand.network_ms[1] > 10.0


def test_the_source_nodes_site_mates_pay_the_sites_network_and_it_does_not() -> None:
    """Network columns are computed per site and gathered: the source node alone is corrected
    (no latency, no transfer, within any budget), its site-mates keep the site's figures."""
    base = _snapshot()
    mate = NodeState("n4", "b", "srv", 8000, 16384, 8000, 16384)
    snap = ClusterSnapshot((*base.nodes, mate), base.sites, base.links, revision=8)
    task = TaskSpec(500, 256, "b", "n2", input_mb=5.0, latency_budget_ms=0.5)
    cand = candidate_arrays(snap, task, ["n4", "n2", "n1"])
    assert cand.network_ms.tolist() == pytest.approx([1.0, 0.0, 410.0])  # intra-site 1 ms
    assert cand.cand_x[:, _col("is_source_node")].tolist() == [0.0, 1.0, 0.0]
    assert cand.cand_x[:, _col("same_site")].tolist() == [1.0, 1.0, 0.0]
    assert cand.cand_x[:, _col("within_budget")].tolist() == [0.0, 1.0, 0.0]
    for col in ("log_latency", "log_transfer", "log_network"):
        assert cand.cand_x[1, _col(col)] == 0.0 and cand.cand_x[2, _col(col)] > 0.0
    assert cand.cand_x[0, _col("log_latency")] > 0.0


def test_a_sites_intra_bandwidth_prices_transfers_between_its_nodes() -> None:
    """Declared intra-site bandwidth: a site-mate pays latency plus the input over the site's
    network (the source node itself still pays nothing); unset, a site-mate pays latency only."""
    base = _snapshot()
    mate = NodeState("n4", "b", "srv", 8000, 16384, 8000, 16384)
    sites = (Site("a", 0.5), Site("b", 1.0, intra_bandwidth_mbps=200.0), Site("c", 2.0))
    snap = ClusterSnapshot((*base.nodes, mate), sites, base.links, revision=9)
    task = TaskSpec(500, 256, "b", "n2", input_mb=5.0)
    cand = candidate_arrays(snap, task, ["n4", "n2", "n1"])
    # n4: 1 ms + 5 MB over 200 Mbps = 200 ms; n1 (site a): 10 ms + 5 MB over 100 Mbps
    assert cand.network_ms.tolist() == pytest.approx([201.0, 0.0, 410.0])
    assert cand.cand_x[0, _col("log_transfer")] == pytest.approx(
        math.log1p(200.0) / math.log1p(1e4)
    )
    assert cand.cand_x[1, _col("log_transfer")] == 0.0
    assert snap.site_bandwidth_mbps("b", "b") == 200.0
    assert snap.site_bandwidth_mbps("a", "a") == math.inf


def test_load_fractions_use_measured_usage_when_present() -> None:
    snap = _snapshot()
    na = node_arrays(snap)
    used = NODE_FEATURES.index("cpu_used_frac")
    unreq = NODE_FEATURES.index("unrequested_load")
    assert na.node_x[0, used] == pytest.approx(0.75)  # measured 1500 / 2000
    assert na.node_x[0, unreq] == pytest.approx(0.25)  # 500m of load requests do not show
    assert na.node_x[1, used] == pytest.approx(0.0)  # no metrics: falls back to requests
    assert na.node_x[2, NODE_FEATURES.index("ready")] == 0.0
    task = TaskSpec(500, 256, "a")
    cand = candidate_arrays(snap, task, ["n1", "n2"])
    assert cand.cand_x[0, _col("proj_cpu_req_frac")] == pytest.approx(0.75)
    assert cand.cand_x[1, _col("proj_mem_req_frac")] == pytest.approx((8192 + 256) / 16384)
    # free measured CPU on n1 is 0.5 core < the 1-core limit, so it is the slower node
    assert cand.exec_s[0] == pytest.approx(1.0 / 0.5)
    assert cand.exec_s[1] == pytest.approx(1.0 / 1.0)


def test_budget_flag_and_task_vector() -> None:
    snap = _snapshot()
    task = TaskSpec(1000, 1024, "a", input_mb=0.0, work_cpu_s=3.0, latency_budget_ms=12.0)
    cand = candidate_arrays(snap, task, ["n1", "n2", "n3"])
    assert cand.cand_x[:, _col("within_budget")].tolist() == [1.0, 1.0, 0.0]
    assert cand.task_x[0] == pytest.approx(math.log1p(1.0))
    assert cand.task_x[4] == 1.0 and cand.task_x[6] == 1.0


def test_topology_is_computed_once_per_family_and_nodes_per_snapshot() -> None:
    snap = _snapshot()
    later = snap.with_nodes(snap.nodes, revision=8, taken_at=1.0)
    assert topology_arrays(later) is topology_arrays(snap)
    assert node_arrays(later) is not node_arrays(snap)
    np.testing.assert_array_equal(node_arrays(later).node_x, node_arrays(snap).node_x)


def test_features_are_finite_for_extreme_inputs() -> None:
    sites = (Site("a"), Site("island"))
    nodes = (
        NodeState("n1", "a", "x", 1, 1, 0, 0, cpu_requested_m=10**6),
        NodeState("n2", "island", "x", 10**6, 10**7, 10**6, 10**7),
    )
    snap = ClusterSnapshot(nodes, sites, ())
    cand = candidate_arrays(snap, TaskSpec(10**5, 10**5, "a", input_mb=1e6), ["n1", "n2"])
    assert np.isfinite(cand.cand_x).all()
    assert np.isfinite(node_arrays(snap).node_x).all()


def test_incremental_node_arrays_equal_a_full_rebuild() -> None:
    snap = _snapshot()
    node_arrays(snap)  # the parent's arrays exist, so the child updates rows
    busier = (
        snap.nodes[0],
        dataclasses.replace(snap.nodes[1], cpu_requested_m=4000, running_tasks=3),
        snap.nodes[2],
    )
    child = snap.with_nodes(busier, revision=8, taken_at=1.0, changed=[1])
    fresh = ClusterSnapshot(busier, snap.sites, snap.links, revision=8)
    for field in dataclasses.fields(node_arrays(fresh)):  # only row 1 was redone in child
        got, want = getattr(node_arrays(child), field.name), getattr(node_arrays(fresh), field.name)
        np.testing.assert_array_equal(got, want, err_msg=field.name)
    assert node_arrays(child).node_x[1, 2] == pytest.approx(0.5)
    assert node_arrays(snap).node_x[1, 2] == 0.0  # the parent's arrays are left as they were


def test_indexed_candidates_skip_the_lookup_only_for_their_node_order() -> None:
    """IndexedNames carry node indices for the snapshots of one node order: the features from
    them equal the plain names' features; a snapshot with another node order looks the names
    up itself instead of trusting indices that point at other nodes."""
    snap = _snapshot()
    task = TaskSpec(500, 256, "a", input_mb=4.0, work_cpu_s=1.0, latency_budget_ms=50.0)
    names = ["n3", "n1"]
    indexed = snap.indexed(names)
    assert indexed is not None and indexed == names
    assert indexed.nodes.tolist() == [2, 0]
    assert snap.indexed(["n1", "gone"]) is None
    plain = candidate_arrays(snap, task, names)
    fast = candidate_arrays(snap, task, indexed)
    assert np.array_equal(plain.cand_x, fast.cand_x) and np.array_equal(plain.index, fast.index)
    # same nodes, same order (with_nodes): the indices hold
    later = snap.with_nodes(snap.nodes, revision=8, taken_at=1.0)
    assert later.node_order is snap.node_order
    # a rebuilt snapshot with the nodes in another order: its own lookup, not the stale indices
    reordered = ClusterSnapshot(tuple(reversed(snap.nodes)), snap.sites, snap.links)
    assert reordered.node_order is not snap.node_order
    got = candidate_arrays(reordered, task, indexed)
    assert got.index.tolist() == [0, 2]
    assert np.array_equal(got.cand_x, candidate_arrays(reordered, task, names).cand_x)


def test_site_matrices_equal_the_per_pair_lookups() -> None:
    """The topology's latency and bandwidth matrices are taken whole from the snapshot's path
    matrices: the same numbers as asking pair by pair, an unreachable site included (and, with
    nothing in flight, the bandwidth available is the declared bottleneck)."""
    from edge_allocator.policy.baselines.columns import site_arrays

    base = _snapshot()
    lonely = NodeState("n9", "z", "gw", 1000, 1024, 1000, 1024)
    snap = ClusterSnapshot(
        (*base.nodes, lonely), (*base.sites, Site("z", 3.0)), base.links, revision=1
    )
    topo, cols = topology_arrays(snap), site_arrays(snap)
    for a in snap.sites:
        for b in snap.sites:
            i, j = snap.site_index[a.name], snap.site_index[b.name]
            lat, bw = snap.site_latency_ms(a.name, b.name), snap.site_bandwidth_mbps(a.name, b.name)
            assert cols.latency_ms[i, j] == lat and snap.available_bandwidth_row(i)[j] == bw
            assert topo.site_latency_ms[i, j] == np.float32(lat)
            assert topo.site_bandwidth_mbps[i, j] == np.float32(bw)
    z = snap.site_index["z"]
    assert math.isinf(topo.site_latency_ms[0, z]) and topo.site_bandwidth_mbps[0, z] == 0.0
