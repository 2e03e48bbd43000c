"""The same cluster state scores the same in the simulator and in the extender.

Decisions are recorded while the simulator runs a built-in scenario; each recorded snapshot is
then (1) scored by the service over HTTP, (2) sent as a pod through /prioritize, and (3) turned
into the API objects a real cluster would show (Nodes, Pods, EdgeNetwork, NodeMetrics) and fed
through the watch cache. All three must give the simulator's scores.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edge_allocator.cluster import annotations as ann
from edge_allocator.cluster.snapshot import ClusterSnapshot, TaskSpec
from edge_allocator.extender.app import create_app
from edge_allocator.extender.cache import NETWORKS, NODES, PODS, Sample, WatchCache
from edge_allocator.extender.models import ModelManager
from edge_allocator.extender.podtask import task_from_pod
from edge_allocator.extender.service import ExtenderService, StaticSource
from edge_allocator.extender.settings import Settings
from edge_allocator.policy.base import PlacementPolicy
from edge_allocator.policy.registry import get_policy, policy_names
from edge_allocator.sim.engine import PolicyChooser, Simulator
from edge_allocator.sim.scenario import load_scenario

DETERMINISTIC = [n for n in policy_names() if n not in ("random", "round-robin")]
BOUND_AT = "2026-01-01T00:00:00Z"
BOUND_EPOCH = 1_767_225_600.0


class Recorder:
    """The simulator's own chooser, keeping a copy of a few decision points."""

    def __init__(self, policy: PlacementPolicy, every: int = 40, limit: int = 5) -> None:
        self.inner = PolicyChooser(policy)
        self.every, self.limit = every, limit
        self.seen: list[tuple[ClusterSnapshot, TaskSpec, list[str], int]] = []

    def choose(
        self, snapshot: ClusterSnapshot, task: TaskSpec, candidates: Sequence[str], task_id: int
    ) -> int:
        k = self.inner.choose(snapshot, task, candidates, task_id)
        if task_id % self.every == 0 and len(self.seen) < self.limit and len(candidates) > 2:
            self.seen.append((snapshot, task, list(candidates), k))
        return k


@pytest.fixture(scope="module")
def recorded() -> list[tuple[ClusterSnapshot, TaskSpec, list[str], int]]:
    rec = Recorder(get_policy("est-completion"))
    Simulator(load_scenario("factory-floor"), seed=7).run(rec, "est-completion")
    assert len(rec.seen) >= 3, "the scenario should yield several decision points"
    return rec.seen


def task_body(task: TaskSpec) -> dict[str, Any]:
    return {
        "cpuRequestM": task.cpu_request_m,
        "memRequestMib": task.mem_request_mib,
        "dataSourceSite": task.data_source_site,
        "dataSourceNode": task.data_source_node,
        "inputMb": task.input_mb,
        "latencyBudgetMs": task.latency_budget_ms,
        "workCpuS": task.work_cpu_s,
    }


def pod_of(task: TaskSpec, policy: str) -> dict[str, Any]:
    annotations = {
        ann.ANN_DATA_SOURCE_SITE: task.data_source_site,
        ann.ANN_INPUT_MB: repr(task.input_mb),
        ann.ANN_POLICY: policy,
    }
    if task.data_source_node:
        annotations[ann.ANN_DATA_SOURCE_NODE] = task.data_source_node
    if task.latency_budget_ms is not None:
        annotations[ann.ANN_LATENCY_BUDGET_MS] = repr(task.latency_budget_ms)
    requests = {"cpu": f"{task.cpu_request_m}m", "memory": f"{task.mem_request_mib}Mi"}
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u", "annotations": annotations},
        "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
    }


def close(a: float, b: float, policy: str) -> bool:
    return a == b if policy != "gnn" else math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("policy_name", DETERMINISTIC)
def test_service_scores_equal_simulator_scores(
    recorded: list[tuple[ClusterSnapshot, TaskSpec, list[str], int]], policy_name: str
) -> None:
    policy = get_policy(policy_name)
    for snap, task, cands, _ in recorded:
        service = ExtenderService(StaticSource(snap), ModelManager(policy_name))
        c = TestClient(create_app(service, Settings()))
        expected = policy.score(snap, task, cands)
        # (1) what-if scoring of the simulator's own task
        body = {"task": task_body(task), "candidates": cands, "policy": policy_name}
        r = c.post("/v1/score", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        by_node = {x["node"]: x["raw"] for x in out["candidates"]}
        feasible = [n for n in cands if n not in out["filtered"]]
        assert feasible, "the simulator only offers candidates within budget"
        for n in feasible:
            assert close(by_node[n], expected[cands.index(n)], policy_name), n
        # (2) the same task as a pod (a live pod has no known work: work_cpu_s is None)
        pod = pod_of(task, policy_name)
        live_task = dataclasses.replace(task, work_cpu_s=None)
        assert (
            task_from_pod(
                pod["metadata"]["annotations"], (task.cpu_request_m, task.mem_request_mib), snap
            )
            == live_task
        )
        r = c.post("/prioritize", json={"Pod": pod, "NodeNames": cands})
        assert r.status_code == 200
        live_expected = policy.score(snap, live_task, cands)
        assert service.wait_recorded("ns", "p")  # the record follows the answer
        rec = service.log.get(("ns", "p"))
        assert rec is not None
        for cand in rec[1].candidates:
            assert close(cand.raw, live_expected[cands.index(cand.node)], policy_name)


def cluster_objects(
    snap: ClusterSnapshot,
) -> tuple[list[Any], list[Any], list[Any], dict[str, Sample]]:
    nodes, pods = [], []
    samples: dict[str, Sample] = {}
    for n in snap.nodes:
        cap = {"cpu": f"{n.cpu_capacity_m}m", "memory": f"{n.mem_capacity_mib}Mi"}
        alloc = {"cpu": f"{n.cpu_allocatable_m}m", "memory": f"{n.mem_allocatable_mib}Mi"}
        nodes.append(
            {
                "metadata": {
                    "name": n.name,
                    "labels": {ann.LABEL_ZONE: n.site, ann.LABEL_NODE_CLASS: n.node_class},
                },
                "status": {
                    "capacity": cap,
                    "allocatable": alloc,
                    "conditions": [{"type": "Ready", "status": "True" if n.ready else "False"}],
                },
            }
        )

        def pod(uid: str, cpu: int, mem: int, managed: bool, node: str = n.name) -> dict[str, Any]:
            return {
                "metadata": {
                    "uid": uid,
                    "labels": {ann.LABEL_MANAGED: "true"} if managed else {},
                },
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"resources": {"requests": {"cpu": f"{cpu}m", "memory": f"{mem}Mi"}}}
                    ],
                },
                "status": {
                    "phase": "Running",
                    "conditions": [
                        {"type": "PodScheduled", "status": "True", "lastTransitionTime": BOUND_AT}
                    ],
                },
            }

        pods.append(pod(f"{n.name}-sys", n.cpu_requested_m, n.mem_requested_mib, False))
        pods += [pod(f"{n.name}-t{i}", 0, 0, True) for i in range(n.running_tasks)]
        if n.cpu_usage_m is not None and n.mem_usage_mib is not None:
            samples[n.name] = Sample(n.cpu_usage_m, n.mem_usage_mib, BOUND_EPOCH + 10)
    network = {
        "metadata": {"name": "sim"},
        "spec": {
            "sites": [
                {
                    "name": s.name,
                    "intraLatencyMs": s.intra_latency_ms,
                    "intraBandwidthMbps": s.intra_bandwidth_mbps,
                }
                for s in snap.sites
            ],
            "links": [
                {
                    "a": lk.a,
                    "b": lk.b,
                    "latencyMs": lk.latency_ms,
                    "bandwidthMbps": lk.bandwidth_mbps,
                }
                for lk in snap.links
            ],
        },
    }
    return nodes, pods, [network], samples


@pytest.mark.parametrize("policy_name", DETERMINISTIC)
def test_watch_cache_rebuilds_the_simulator_snapshot(
    recorded: list[tuple[ClusterSnapshot, TaskSpec, list[str], int]], policy_name: str
) -> None:
    policy = get_policy(policy_name)
    for snap, task, cands, _ in recorded[:2]:
        nodes, pods, networks, samples = cluster_objects(snap)
        cache = WatchCache(min_rebuild_s=0, clock=lambda: BOUND_EPOCH + 20)
        cache.replace(NODES, nodes)
        cache.replace(PODS, pods)
        cache.replace(NETWORKS, networks)
        cache.set_metrics(samples)
        for kind in (NODES, PODS, NETWORKS):
            cache.mark_synced(kind)
        rebuilt = cache.rebuild()
        assert rebuilt is not None
        assert set(rebuilt.nodes) == set(snap.nodes)
        assert set(rebuilt.sites) == set(snap.sites)
        assert set(rebuilt.links) == set(snap.links)
        want = policy.score(snap, task, cands)
        got = policy.score(rebuilt, task, cands)
        assert all(close(g, w, policy_name) for g, w in zip(got, want, strict=True))
