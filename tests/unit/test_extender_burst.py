"""A burst sees its own placements: the extender's assumption is in the very next snapshot read.

Without that, every pod of a burst is scored on the cluster as it was before the burst and a
spreading policy piles them all onto the node that looked emptiest.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest
from test_extender_cache import NETWORK, Clock, bound_pod, node
from test_extender_helpers import pod

from edge_allocator.cluster.features import node_arrays
from edge_allocator.cluster.snapshot import ClusterSnapshot
from edge_allocator.extender.cache import NETWORKS, NODES, PODS, Sample, WatchCache
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.service import ExtenderService, SnapshotSource, StaticSource
from edge_allocator.extender.wire import ExtenderArgs

T0 = 1_767_225_660.0
NODE_NAMES = [f"n{i}" for i in range(5)]


def equal_fleet(clock: Clock, cpu: str = "8") -> WatchCache:
    """Equal empty nodes in site ``a``; the builder thread is not started (nothing rebuilds
    unless the test calls ``rebuild``)."""
    cache = WatchCache(min_rebuild_s=0, clock=clock)
    cache.replace(NODES, [node(n, "a", cpu=cpu, mem="16Gi") for n in NODE_NAMES])
    cache.replace(PODS, [])
    cache.replace(NETWORKS, [NETWORK])
    for kind in (NODES, PODS, NETWORKS):
        cache.mark_synced(kind)
    assert cache.rebuild() is not None
    return cache


def _row(snap: ClusterSnapshot | None, name: str) -> tuple[int, int, int]:
    assert snap is not None
    n = snap.node(name)
    return n.cpu_requested_m, n.mem_requested_mib, n.running_tasks


def test_every_assumption_of_a_burst_is_visible_to_the_next_read() -> None:
    clock = Clock(T0)
    cache = equal_fleet(clock)
    node_arrays(cache.current())  # a policy's features on the pre-burst snapshot
    want: Counter[str] = Counter()
    for i in range(40):
        target = NODE_NAMES[(i * 3) % len(NODE_NAMES)]
        before = cache.current()
        assert before is not None
        cache.assume(f"burst-{i}", target, 250, 64)
        want[target] += 1
        snap = cache.current()  # no rebuild in between
        assert snap is not None and snap is not before
        assert snap.revision > before.revision
        assert _row(snap, target) == (250 * want[target], 64 * want[target], want[target])
    snap = cache.current()
    assert snap is not None
    # the patched rows give the same features as a snapshot built from scratch
    patched = node_arrays(snap)
    fresh = node_arrays(ClusterSnapshot(snap.nodes, snap.sites, snap.links))
    np.testing.assert_array_equal(patched.node_x, fresh.node_x)
    # the builder recomputes the same numbers from its records: nothing is counted twice
    rebuilt = cache.rebuild()
    assert rebuilt is not None
    for name in NODE_NAMES:
        assert _row(rebuilt, name) == _row(snap, name)


def test_reassuming_a_pod_moves_it_and_binding_replaces_the_assumption() -> None:
    clock = Clock(T0)
    cache = equal_fleet(clock)
    cache.assume("p", "n1", 500, 128)
    assert _row(cache.current(), "n1") == (500, 128, 1)
    cache.assume("p", "n2", 500, 128)  # a later cycle chose another node for the same pod
    assert _row(cache.current(), "n1") == (0, 0, 0)
    assert _row(cache.current(), "n2") == (500, 128, 1)
    # the watch shows it bound on n3: the assumption goes, the binding counts
    cache.upsert(PODS, bound_pod("p", "n3", "500m", "128Mi"))
    snap = cache.rebuild()
    assert _row(snap, "n2") == (0, 0, 0)
    assert _row(snap, "n3")[2] == 1
    cache.assume("p", "n4", 500, 128)  # already bound: an assumption must not count again
    assert _row(cache.current(), "n4") == (0, 0, 0)


def test_assumption_before_first_sync_waits_for_the_first_snapshot() -> None:
    clock = Clock(T0)
    cache = WatchCache(min_rebuild_s=0, clock=clock)
    cache.assume("early", "n0", 100, 10)
    assert cache.current() is None
    cache.replace(NODES, [node("n0", "a")])
    for kind in (NODES, PODS, NETWORKS):
        cache.mark_synced(kind)
    assert _row(cache.rebuild(), "n0") == (100, 10, 1)


def test_measured_usage_grows_with_the_assumption() -> None:
    clock = Clock(T0)
    cache = equal_fleet(clock)
    cache.set_metrics({"n0": Sample(1000, 2000, T0 - 1)})
    cache.rebuild()
    cache.assume("p", "n0", 300, 30)
    snap = cache.current()
    assert snap is not None
    assert (snap.node("n0").cpu_usage_m, snap.node("n0").mem_usage_mib) == (1300, 2030)
    assert snap.node("n1").cpu_usage_m is None  # no sample: still falls back to requests
    rebuilt = cache.rebuild()
    assert rebuilt is not None and rebuilt.node("n0").cpu_usage_m == 1300


def _burst(
    source: SnapshotSource, policy: str, pods: int, names: list[str], cpu: str = "500m"
) -> Counter[str]:
    """Prioritize ``pods`` equal pods one after another (as kube-scheduler's cycle does);
    count each one's top-ranked node."""
    service = ExtenderService(source, ModelManager(policy))
    tops: Counter[str] = Counter()
    for i in range(pods):
        body: dict[str, Any] = {
            "Pod": pod(f"p{i}", site="a", uid=f"uid-{i}", cpu=cpu, mem="256Mi"),
            "NodeNames": names,
        }
        scores = service.prioritize(ExtenderArgs.model_validate(body))
        top = [host for host, score in scores if score == 10]
        assert len(top) == 1
        tops[top[0]] += 1
    return tops


# kube-default spreads by least-allocated requests on any node size; est-completion spreads
# when a pod's burst limit (2x its 500m request) uses all the free CPU of a 1-core node
@pytest.mark.parametrize(("policy", "node_cpu"), [("kube-default", "8"), ("est-completion", "1")])
def test_a_burst_of_equal_pods_gets_no_more_than_its_fair_share_per_node(
    policy: str, node_cpu: str
) -> None:
    cache = equal_fleet(Clock(T0), cpu=node_cpu)
    pods = 10
    tops = _burst(cache, policy, pods, NODE_NAMES)
    assert sum(tops.values()) == pods
    assert max(tops.values()) <= math.ceil(pods / len(NODE_NAMES)), tops
    assert set(tops) == set(NODE_NAMES)


def test_a_burst_spreads_while_the_builder_thread_runs() -> None:
    """The same with the real background builder rebuilding concurrently."""
    cache = equal_fleet(Clock(T0))
    cache.start()
    try:
        tops = _burst(cache, "kube-default", 15, NODE_NAMES)
    finally:
        cache.stop()
    assert max(tops.values()) == 3 and set(tops) == set(NODE_NAMES), tops


def test_without_the_assumption_the_burst_piles_onto_one_node() -> None:
    """The control: the same burst on a frozen snapshot lands every pod on one node."""
    cache = equal_fleet(Clock(T0))
    frozen = StaticSource(cache.current())
    tops = _burst(frozen, "kube-default", 10, NODE_NAMES)
    assert tops == Counter({"n0": 10})
    assert len(frozen.assumed) == 10
