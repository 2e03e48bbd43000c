"""Watch cache: raw API objects in, ClusterSnapshot out, with the load accounting written out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.features import node_arrays
from edge_allocator.cluster.quantity import cpu_millicores, memory_mib
from edge_allocator.cluster.snapshot import INCREMENTAL_KEY, ClusterSnapshot, TaskSpec
from edge_allocator.extender.cache import (
    NETWORKS,
    NODES,
    PODS,
    Sample,
    WatchCache,
    parse_node_metrics,
    parse_pod,
)
from edge_allocator.extender.service import pod_requests
from edge_allocator.extender.wire import Pod


def _c(cpu: str, sidecar: bool = False) -> dict[str, Any]:
    """A container (or init container; ``sidecar``: restartPolicy Always) requesting ``cpu``."""
    c: dict[str, Any] = {"name": "c", "resources": {"requests": {"cpu": cpu}}}
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


def node(name: str, zone: str | None, cpu: str = "4", mem: str = "8Gi", ready: bool = True) -> Any:
    labels = {ann.LABEL_ZONE: zone} if zone else {}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "capacity": {"cpu": cpu, "memory": mem},
            "allocatable": {"cpu": cpu, "memory": mem},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def bound_pod(uid: str, node_name: str, cpu: str, mem: str, *, managed: bool = True) -> Any:
    return {
        "metadata": {
            "uid": uid,
            "name": uid,
            "namespace": "ns",
            "labels": {ann.LABEL_MANAGED: "true"} if managed else {},
        },
        "spec": {
            "nodeName": node_name,
            "containers": [{"resources": {"requests": {"cpu": cpu, "memory": mem}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": "2026-01-01T00:00:10Z",
                }
            ],
        },
    }


NETWORK = {
    "metadata": {"name": "fleet"},
    "spec": {
        "sites": [
            {"name": "a", "intraLatencyMs": 1},
            {"name": "b", "intraLatencyMs": 2, "intraBandwidthMbps": 400},
        ],
        "links": [{"a": "a", "b": "b", "latencyMs": 7, "bandwidthMbps": 50}],
        "nodeOverrides": [{"node": "n3", "site": "b", "nodeClass": "server"}],
    },
}


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def synced_cache(clock: Clock) -> WatchCache:
    cache = WatchCache(min_rebuild_s=0, clock=clock)
    cache.replace(NODES, [node("n1", "a"), node("n2", "b"), node("n3", None), node("n4", None)])
    cache.replace(PODS, [bound_pod("p1", "n1", "500m", "1Gi"), bound_pod("p2", "n1", "1", "512Mi")])
    cache.replace(NETWORKS, [NETWORK])
    for kind in (NODES, PODS, NETWORKS):
        cache.mark_synced(kind)
    return cache


def test_no_snapshot_until_every_kind_synced() -> None:
    cache = WatchCache(min_rebuild_s=0)
    cache.replace(NODES, [node("n1", "a")])
    cache.mark_synced(NODES)
    assert cache.rebuild() is None and cache.current() is None


def test_snapshot_from_objects() -> None:
    cache = synced_cache(Clock(1_767_225_600.0 + 60))  # 2026-01-01T00:01:00Z
    snap = cache.rebuild()
    assert snap is not None
    assert [n.name for n in snap.nodes] == ["n1", "n2", "n3", "n4"]
    assert [s.name for s in snap.sites] == ["a", "b", "unzoned"]
    assert snap.site_latency_ms("a", "b") == 7.0
    assert snap.site_bandwidth_mbps("b", "b") == 400.0  # the site's declared LAN
    assert snap.site_bandwidth_mbps("a", "a") == float("inf")  # none declared
    n1, n3, n4 = snap.node("n1"), snap.node("n3"), snap.node("n4")
    # p1 + p2: max(sum of containers, init 2 cores) per resource: cpu max(1500, 2000) each...
    # per pod: p1 cpu max(500, 2000) = 2000, mem 1024; p2 cpu max(1000, 2000) = 2000, mem 512
    assert (n1.cpu_requested_m, n1.mem_requested_mib, n1.running_tasks) == (4000, 1536, 2)
    assert n1.cpu_usage_m is None  # no metrics: policies fall back to requests
    assert (n3.site, n3.node_class) == ("b", "server")
    assert (n4.site, n4.node_class) == ("unzoned", "default")


def test_updates_and_deletes_are_incremental() -> None:
    clock = Clock(1_767_225_660.0)
    cache = synced_cache(clock)
    first = cache.rebuild()
    assert first is not None
    node_arrays(first)  # what a policy computed on the previous revision
    cache.delete(PODS, {"metadata": {"uid": "p1"}})
    cache.upsert(PODS, bound_pod("p3", "n2", "250m", "256Mi", managed=False))
    second = cache.rebuild()
    assert second is not None and second.revision == first.revision + 1
    # only n1 and n2 changed: the feature rows are patched, and equal a rebuild from scratch
    assert second.derived_cache[INCREMENTAL_KEY][1] == (0, 1)
    patched = node_arrays(second)
    rebuilt = node_arrays(ClusterSnapshot(second.nodes, second.sites, second.links))
    np.testing.assert_array_equal(patched.node_x, rebuilt.node_x)
    assert second.node("n1").cpu_requested_m == 2000
    assert second.node("n2").cpu_requested_m == 2000 and second.node("n2").running_tasks == 0
    assert second.node("n3") is first.node("n3")  # untouched nodes are reused
    cache.upsert(NODES, node("n2", "a", ready=False))
    third = cache.rebuild()
    assert third is not None and not third.node("n2").ready and third.node("n2").site == "a"
    cache.delete(NODES, node("n4", None))
    fourth = cache.rebuild()
    assert fourth is not None and not fourth.has_node("n4")
    assert cache.rebuild() is fourth  # nothing changed: same snapshot


def test_terminal_and_unbound_pods_do_not_count() -> None:
    cache = synced_cache(Clock(1_767_225_660.0))
    done = bound_pod("p9", "n2", "3", "1Gi")
    done["status"]["phase"] = "Succeeded"
    pending = bound_pod("p8", "n2", "3", "1Gi")
    pending["spec"]["nodeName"] = ""
    cache.upsert(PODS, done)
    cache.upsert(PODS, pending)
    snap = cache.rebuild()
    assert snap is not None and snap.node("n2").cpu_requested_m == 0


def test_metrics_plus_pods_bound_since_the_sample() -> None:
    sample_at = 1_767_225_605.0  # 00:00:05, before the pods' 00:00:10 binding
    clock = Clock(sample_at + 30)
    cache = synced_cache(clock)
    cache.set_metrics({"n1": Sample(300, 700, sample_at), "n2": Sample(100, 100, sample_at)})
    snap = cache.rebuild()
    assert snap is not None
    # n1: measured 300m + the two pods bound after the sample (2000m + 2000m)
    assert snap.node("n1").cpu_usage_m == 4300
    assert snap.node("n1").mem_usage_mib == 700 + 1536
    assert snap.node("n2").cpu_usage_m == 100
    clock.t = sample_at + 1000  # stale sample: back to requests
    cache.set_metrics({"n1": Sample(300, 700, sample_at)})
    snap = cache.rebuild()
    assert snap is not None and snap.node("n1").cpu_usage_m is None
    cache.set_metrics(None)
    assert cache.metrics_served is False


def test_assumed_pods_count_until_bound_or_expired() -> None:
    clock = Clock(1_767_225_660.0)
    cache = synced_cache(clock)
    cache.assume("new", "n2", 300, 64)
    snap = cache.rebuild()
    assert snap is not None
    assert (snap.node("n2").cpu_requested_m, snap.node("n2").running_tasks) == (300, 1)
    # the watch shows it bound elsewhere: the assumption goes, the real binding counts
    cache.upsert(PODS, bound_pod("new", "n4", "300m", "64Mi"))
    snap = cache.rebuild()
    assert snap is not None
    assert snap.node("n2").cpu_requested_m == 0 and snap.node("n4").cpu_requested_m == 2000
    cache.assume("other", "n3", 100, 10)
    cache.rebuild()
    clock.t += cache.assume_ttl_s + 1
    snap = cache.rebuild()
    assert snap is not None and snap.node("n3").cpu_requested_m == 0


def _transfer_pod(uid: str, node_name: str, bound: str, **hints: str) -> Any:
    """A bound EdgeTask pod pulling an input (``hints``: annotation suffix -> value)."""
    pod = bound_pod(uid, node_name, "100m", "64Mi")
    pod["metadata"]["annotations"] = {ann.PREFIX + k.replace("_", "-"): v for k, v in hints.items()}
    pod["status"]["conditions"][0]["lastTransitionTime"] = bound
    return pod


def test_inputs_in_flight_are_estimated_from_recent_bindings_and_assumptions() -> None:
    """Links: a-b (0, 50 Mbps), then one per site: a (1, none), b (2, its 400 Mbps LAN),
    unzoned (3). x1 pulls 25 MB from site a onto n2 (site b): 200 Mb alone on 50 Mbps, in
    flight from 00:01:00 until 00:01:04. x2 pulls 10 MB from node n2 onto n3 (b's LAN):
    80 Mb over 400 Mbps, in flight for 0.2 s after 00:01:02."""
    clock = Clock(1_767_225_661.0)  # 2026-01-01T00:01:01Z
    cache = synced_cache(clock)
    cache.upsert(
        PODS, _transfer_pod("x1", "n2", "2026-01-01T00:01:00Z", data_source_site="a", input_mb="25")
    )
    cache.upsert(
        PODS,
        _transfer_pod("x2", "n3", "2026-01-01T00:01:02Z", data_source_node="n2", input_mb="10"),
    )
    cache.upsert(
        PODS, _transfer_pod("x3", "n2", "2026-01-01T00:01:00Z", data_source_node="n2", input_mb="9")
    )
    snap = cache.rebuild()
    assert snap is not None and snap.inflight == (1, 0, 0, 0)  # x2 is bound in the future
    clock.t += 1.1  # 00:01:02.1
    snap = cache.rebuild()
    assert snap is not None and snap.inflight == (1, 0, 1, 0)
    assert snap.available_bandwidth_row(snap.site_index["a"])[snap.site_index["b"]] == 25.0
    clock.t += 0.5  # x2 has arrived; nothing else changed, still a new snapshot
    later = cache.rebuild()
    assert later is not snap and later is not None and later.inflight == (1, 0, 0, 0)
    clock.t += 5.0  # x1 too
    idle = cache.rebuild()
    assert idle is not None and idle.inflight == ()
    assert cache.rebuild() is idle  # nothing due: no new revision
    # the extender's own placement counts at once, before any rebuild
    cache.assume("y", "n2", 100, 64, task=TaskSpec(100, 64, "a", input_mb=5.0))
    assumed = cache.current()
    assert assumed is not None and assumed.inflight == (1, 0, 0, 0)
    # the next one extends that estimate (no replay on the request path); a rebuild's replay
    # of the same pods gives the same counts
    cache.assume("y2", "n3", 100, 64, task=TaskSpec(100, 64, "a", input_mb=5.0))
    again = cache.current()
    assert again is not None and again.inflight == (2, 0, 0, 0)
    cache.upsert(NODES, node("n1", "a", cpu="8"))  # something for the builder to rebuild
    rebuilt = cache.rebuild()
    assert rebuilt is not None and rebuilt is not again and rebuilt.inflight == (2, 0, 0, 0)
    # the same in the pod's annotations when unreadable: the pod still counts, its input not
    cache.upsert(PODS, _transfer_pod("z", "n2", "2026-01-01T00:01:08Z", input_mb="lots"))
    assert parse_pod(_transfer_pod("z", "n2", "2026-01-01T00:01:08Z", input_mb="lots")) is not None


def test_parse_node_metrics_skips_bad_items() -> None:
    items = [
        {
            "metadata": {"name": "n1"},
            "usage": {"cpu": "250m", "memory": "1Gi"},
            "timestamp": "2026-01-01T00:00:00Z",
        },
        {"metadata": {"name": "n2"}, "usage": {"cpu": "x"}},
        {"usage": {}},
    ]
    out = parse_node_metrics(items)
    assert list(out) == ["n1"] and out["n1"].cpu_m == 250 and out["n1"].mem_mib == 1024


def test_quantities() -> None:
    assert [cpu_millicores(q) for q in ("250m", "1", "1.5", "0.0001", 2, "1e3", "100u")] == [
        250,
        1000,
        1500,
        1,
        2000,
        1_000_000,
        1,
    ]
    assert [memory_mib(q) for q in ("128Mi", "1Gi", "1G", "1000", "1.5Gi", "64e6")] == [
        128,
        1024,
        954,
        1,
        1536,
        62,
    ]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        # max(sum of containers, largest init container)
        ({"containers": [_c("500m"), _c("1")], "initContainers": [_c("2")]}, 2000),
        # a sidecar runs beside the containers, and beside every init container after it
        ({"containers": [_c("1")], "initContainers": [_c("500m", True), _c("2")]}, 2500),
        # an init container that runs before the sidecar starts does not add it
        ({"containers": [_c("1")], "initContainers": [_c("2"), _c("500m", True)]}, 2000),
        # pod-level requests replace the container total; the overhead comes on top
        (
            {
                "containers": [_c("1"), _c("1")],
                "resources": {"requests": {"cpu": "3"}},
                "overhead": {"cpu": "100m"},
            },
            3100,
        ),
    ],
)
def test_pod_requests_add_up_as_kube_scheduler_does(spec: dict[str, Any], want: int) -> None:
    """Both readers of a pod (the watch cache for node load, the verbs for the pod being
    placed) give the total kube-scheduler v1.34 computes (component-helpers PodRequests)."""
    obj = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {**spec}}
    assert pod_requests(Pod.model_validate(obj))[0] == want
    obj["spec"]["nodeName"] = "n1"
    info = parse_pod(obj)
    assert info is not None and info.cpu_m == want


def test_events_that_change_no_node_state_make_no_new_revision() -> None:
    cache = synced_cache(Clock(1_767_225_660.0))
    first = cache.rebuild()
    assert first is not None
    # p1 turns from Running to Running with a new condition: same node, same requests
    again = bound_pod("p1", "n1", "500m", "1Gi")
    again["status"]["conditions"].append({"type": "Ready", "status": "True"})
    cache.upsert(PODS, again)
    assert cache.rebuild() is first
    # a node update that changes nothing the scheduler sees (a heartbeat)
    cache.upsert(NODES, node("n2", "b"))
    assert cache.rebuild() is first
    # a real change still makes a new revision, patched at that node only
    cache.upsert(PODS, bound_pod("p5", "n2", "250m", "256Mi"))
    second = cache.rebuild()
    assert second is not None and second.revision == first.revision + 1
    assert second.derived_cache[INCREMENTAL_KEY][1] == (1,)
