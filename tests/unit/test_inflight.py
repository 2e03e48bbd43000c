"""Transfers estimated in flight: hand-computed arrivals, the bandwidth they leave, replay."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge_allocator.cluster.inflight import InflightTransfers, TransferStart, replay, transfer_path
from edge_allocator.cluster.snapshot import ClusterSnapshot, Link, NodeState, Site, TaskSpec


def _snapshot(inflight: tuple[int, ...] = ()) -> ClusterSnapshot:
    """a --(100 Mbps)-- b --(10 Mbps)-- c; site b has a 200 Mbps LAN."""
    sites = (Site("a"), Site("b", 1.0, intra_bandwidth_mbps=200.0), Site("c"))
    links = (Link("a", "b", 2.0, 100.0), Link("b", "c", 3.0, 10.0))
    nodes = tuple(
        NodeState(n, s, "x", 4000, 8192, 4000, 8192)
        for n, s in (("a1", "a"), ("b1", "b"), ("b2", "b"), ("c1", "c"))
    )
    return ClusterSnapshot(nodes, sites, links, inflight=inflight)


def test_arrivals_are_estimated_from_the_share_at_the_start() -> None:
    """800 Mb alone on 100 Mbps: in at 8 s. 400 Mb started at 1 s beside it: 50 Mbps, in at
    9 s. The counts rise at each start and fall at each estimated arrival."""
    est = InflightTransfers([100.0])
    assert est.start(0.0, (0,), 800.0) == pytest.approx(8.0)
    assert est.counts(0.5) == (1,)
    assert est.start(1.0, (0,), 400.0) == pytest.approx(9.0)
    assert est.counts(1.0) == (2,) and est.next_arrival() == pytest.approx(8.0)
    assert est.counts(8.5) == (1,)
    assert est.counts(9.0) == () and len(est) == 0 and math.isinf(est.next_arrival())


def test_nothing_is_in_flight_without_links_or_input() -> None:
    est = InflightTransfers([100.0])
    assert est.start(2.0, (), 800.0) == 2.0
    assert est.start(2.0, (0,), 0.0) == 2.0
    assert est.counts(2.0) == ()


def test_the_same_tuple_until_the_counts_change() -> None:
    """A snapshot producer compares by identity to know whether to publish a new revision."""
    est = InflightTransfers([100.0, 10.0])
    est.start(0.0, (0, 1), 10.0)
    first = est.counts(0.1)
    assert est.counts(0.2) is first
    est.start(0.3, (1,), 10.0)
    assert est.counts(0.3) is not first and est.counts(0.3) == (1, 2)


def test_available_bandwidth_shares_each_link_with_the_transfers_in_flight() -> None:
    """Links: a-b 0, b-c 1, then one per site (a 2, b 3, c 4). Two transfers on a-b and one
    on b's LAN: from a, b gets 100 / 3; c gets min(100 / 3, 10 / 1); b-to-b gets 200 / 2."""
    snap = _snapshot(inflight=(2, 0, 0, 1, 0))
    idx = snap.site_index
    from_a = snap.available_bandwidth_row(idx["a"])
    assert from_a.tolist() == pytest.approx([math.inf, 100.0 / 3, 10.0])
    from_b = snap.available_bandwidth_row(idx["b"])
    assert from_b[idx["b"]] == pytest.approx(100.0)
    idle = _snapshot()
    assert idle.available_bandwidth_row(idx["a"]).tolist() == [math.inf, 100.0, 10.0]
    # the network time a policy reads: 2 ms + 10 MB over 100/3 Mbps
    task = TaskSpec(500, 256, "a", input_mb=10.0)
    assert snap.network_time_ms(task, snap.node("b1")) == pytest.approx(
        2.0 + 80.0 / (100 / 3) * 1000
    )
    assert idle.network_time_ms(task, idle.node("b1")) == pytest.approx(2.0 + 800.0)


def test_transfer_paths_cross_the_links_and_the_sites_own_network() -> None:
    snap = _snapshot()
    paths, capacity = snap.transfer_links()
    assert capacity == [100.0, 10.0, math.inf, 200.0, math.inf]
    assert transfer_path(snap, TransferStart(0, "p", "a", None, 5, "c1")) == (0, 1)
    assert transfer_path(snap, TransferStart(0, "p", None, "b1", 5, "b2")) == (3,)  # b's LAN
    assert transfer_path(snap, TransferStart(0, "p", "b", "b1", 5, "b1")) == ()  # its own node
    assert transfer_path(snap, TransferStart(0, "p", "a", None, 5, "a1")) == ()  # a: no LAN
    assert transfer_path(snap, TransferStart(0, "p", "mars", None, 5, "a1")) == ()
    assert paths[0][2] == (0, 1)


def test_replay_gives_the_counts_the_incremental_estimate_kept() -> None:
    """Whoever keeps only the placements (the extender) reconstructs what whoever kept the
    estimator (the simulator) had, whatever order the placements are listed in."""
    snap = _snapshot()
    _, capacity = snap.transfer_links()
    rng = np.random.default_rng(7)
    nodes = ["a1", "b1", "b2", "c1"]
    starts = [
        TransferStart(
            float(t), f"p{k:03d}", str(rng.choice(["a", "b", "c"])), None, float(mb), str(n)
        )
        for k, (t, mb, n) in enumerate(
            zip(
                np.sort(rng.uniform(0, 20, 60)),
                rng.uniform(1, 40, 60),
                rng.choice(nodes, 60),
                strict=True,
            )
        )
    ]
    est = InflightTransfers(capacity)
    for s in starts:
        est.start(s.at, transfer_path(snap, s), s.input_mb * 8.0)
    for now in (5.0, 12.5, 20.0, 60.0):
        expect = InflightTransfers(capacity)
        for s in starts:
            if s.at <= now:
                expect.start(s.at, transfer_path(snap, s), s.input_mb * 8.0)
        shuffled = [starts[i] for i in rng.permutation(len(starts)) if starts[i].at <= now]
        counts, nxt = replay(snap, shuffled, now)
        assert counts == expect.counts(now)
        assert nxt == expect.next_arrival()
    assert est.counts(20.0) == replay(snap, starts, 20.0)[0]


def test_the_metric_names_each_shareable_link_and_site_network() -> None:
    from edge_allocator.cluster.inflight import inflight_by_link

    busy = inflight_by_link(_snapshot(inflight=(2, 0, 0, 1, 0)))
    assert busy == {"a<->b": 2, "b<->c": 0, "b": 1}  # sites a and c declare no bandwidth
    assert inflight_by_link(_snapshot()) == {"a<->b": 0, "b<->c": 0, "b": 0}
